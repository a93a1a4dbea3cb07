"""Writable views over committed state: the block's working set and the branches nested on it.

Reads fall through the chain branch -> ... -> working set -> committed base version; writes stay
in the view that made them until ``write()`` hands them to the parent. Iteration merges every
level in ascending key order. The working set computes the new root from its pending writes
with one batch update of the tree (:class:`citychain.store.tree.TreeUpdate`) and caches the
result until the next write, so ``compute_root()`` followed by ``commit()`` does the work once.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256 as _sha256
from typing import Protocol

from citychain.core.merkle import EMPTY_ROOT
from citychain.store.errors import KeyTooLargeError
from citychain.store.tree import Node, NodeLoader, TreeUpdate

MAX_KEY_SIZE = 1024

_MISSING = object()


class BaseView(Protocol):
    """What a working set needs from its committed base version."""

    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]: ...


def check_key(key: bytes) -> None:
    """Raise unless ``key`` is a byte string the store accepts.

    Raises:
        TypeError: ``key`` is not bytes.
        KeyTooLargeError: ``key`` is longer than MAX_KEY_SIZE bytes.
    """
    if type(key) is not bytes:
        raise TypeError(f"state keys are bytes, got {type(key).__name__}")
    if len(key) > MAX_KEY_SIZE:
        raise KeyTooLargeError(f"state key of {len(key)} bytes exceeds {MAX_KEY_SIZE}",
                               field="key", required=MAX_KEY_SIZE, available=len(key))


def _check_value(value: bytes) -> None:
    if type(value) is not bytes:
        raise TypeError(f"state values are bytes, got {type(value).__name__}")


def merge_sorted(base: Iterator[tuple[bytes, bytes]],
                 pending: list[tuple[bytes, bytes | None]]) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``base`` (ascending) overlaid with ``pending`` (ascending; None deletes)."""
    index = 0
    count = len(pending)
    for key, value in base:
        while index < count and pending[index][0] < key:
            pending_key, pending_value = pending[index]
            index += 1
            if pending_value is not None:
                yield pending_key, pending_value
        if index < count and pending[index][0] == key:
            pending_value = pending[index][1]
            index += 1
            if pending_value is not None:
                yield key, pending_value
            continue
        yield key, value
    while index < count:
        pending_key, pending_value = pending[index]
        index += 1
        if pending_value is not None:
            yield pending_key, pending_value


def _pending_range(keys: list[bytes], writes: dict[bytes, bytes | None], start: bytes,
                   end: bytes | None) -> list[tuple[bytes, bytes | None]]:
    low = bisect_left(keys, start)
    high = len(keys) if end is None else bisect_left(keys, end, low)
    return [(key, writes[key]) for key in keys[low:high]]


class OverlayBranch:
    """A nested branch: its writes reach the parent only on :meth:`write`."""

    __slots__ = ("_parent", "_writes")

    def __init__(self, parent: OverlayBranch | WorkingState) -> None:
        self._parent = parent
        self._writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        value = self._writes.get(key, _MISSING)
        if value is _MISSING:
            return self._parent.get(key)
        return value  # type: ignore[return-value]

    def set(self, key: bytes, value: bytes) -> None:
        """Raises TypeError (key or value not bytes) or KeyTooLargeError."""
        check_key(key)
        _check_value(value)
        self._writes[key] = value

    def delete(self, key: bytes) -> None:
        """Raises TypeError (key not bytes) or KeyTooLargeError."""
        check_key(key)
        self._writes[key] = None

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        writes = self._writes
        if not writes:
            return self._parent.iterate(start, end)
        pending = _pending_range(sorted(writes), writes, start, end)
        return merge_sorted(self._parent.iterate(start, end), pending)

    def branch(self) -> OverlayBranch:
        return OverlayBranch(self)

    def write(self) -> None:
        """Apply this branch's writes to its parent (the branch is then empty)."""
        writes = self._writes
        if writes:
            self._writes = {}
            self._parent._apply(writes)

    def _apply(self, writes: dict[bytes, bytes | None]) -> None:
        self._writes.update(writes)


@dataclass(frozen=True)
class ComputedRoot:
    """The result of applying a working set's writes to its base tree."""

    root_hash: bytes
    root: Node | None
    update: TreeUpdate
    keys: list[bytes]  # changed keys in path order (parallel to update.effective)
    values: list[bytes | None]

    def effective_changes(self) -> list[tuple[bytes, bytes | None]]:
        """Return the writes that changed the state, sorted by key (None: deleted)."""
        effective = self.update.effective
        keys = self.keys
        values = self.values
        out = [(keys[index], values[index]) for index in range(len(keys)) if effective[index]]
        out.sort()
        return out


class WorkingState:
    """The pending state of one block on top of committed version ``base_height``.

    Implements :class:`citychain.core.state.WorkingSet`. It reads its base version for as long
    as it lives, even after the store has committed newer versions (those reads then take the
    store's historical path); it can only be committed while its base is the latest version.
    """

    __slots__ = ("_base", "_base_get", "_computed", "_fast", "_keys", "_load", "_new_keys",
                 "_writes",
                 "base_height", "base_root", "base_root_id", "first_node_id", "owner")

    def __init__(self, owner: object, base: BaseView, base_height: int, base_root: bytes,
                 base_root_id: int, first_node_id: int, load: NodeLoader,
                 fast: Callable[[int], Node | None] | None = None) -> None:
        self.owner = owner
        self._base = base
        self._base_get: Callable[[bytes], bytes | None] = base.get
        self.base_height = base_height
        self.base_root = base_root
        self.base_root_id = base_root_id
        self.first_node_id = first_node_id
        self._load = load
        self._fast = fast
        self._writes: dict[bytes, bytes | None] = {}
        self._keys: list[bytes] = []  # sorted keys of _writes, minus _new_keys
        self._new_keys: list[bytes] = []
        self._computed: ComputedRoot | None = None

    # ------------------------------------------------------------------ StateView
    def get(self, key: bytes) -> bytes | None:
        """Return the pending or base value of ``key`` (None: absent). Raises
        StoreCorruptionError if the base version's stored data is damaged."""
        value = self._writes.get(key, _MISSING)
        if value is _MISSING:
            return self._base_get(key)
        return value  # type: ignore[return-value]

    def set(self, key: bytes, value: bytes) -> None:
        """Raises TypeError (key or value not bytes) or KeyTooLargeError."""
        check_key(key)
        _check_value(value)
        writes = self._writes
        if key not in writes:
            self._new_keys.append(key)
        writes[key] = value
        self._computed = None

    def delete(self, key: bytes) -> None:
        """Raises TypeError (key not bytes) or KeyTooLargeError."""
        check_key(key)
        writes = self._writes
        if key not in writes:
            self._new_keys.append(key)
        writes[key] = None
        self._computed = None

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Yield (key, value) for start <= key < end, pending writes merged over the base,
        ascending. Writes made while iterating are not seen by that iteration."""
        writes = self._writes
        if not writes:
            return self._base.iterate(start, end)
        pending = _pending_range(self._sorted_keys(), writes, start, end)
        return merge_sorted(self._base.iterate(start, end), pending)

    def branch(self) -> OverlayBranch:
        return OverlayBranch(self)

    def _apply(self, writes: dict[bytes, bytes | None]) -> None:
        own = self._writes
        new_keys = self._new_keys
        for key in writes:
            if key not in own:
                new_keys.append(key)
        own.update(writes)
        self._computed = None

    def _sorted_keys(self) -> list[bytes]:
        new_keys = self._new_keys
        if new_keys:
            keys = self._keys
            if len(new_keys) <= 32:
                for key in new_keys:
                    insort(keys, key)
            else:
                keys.extend(new_keys)
                keys.sort()
            self._new_keys = []
        return self._keys

    # ------------------------------------------------------------------ WorkingSet
    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """Return every pending write sorted by key (None marks a delete)."""
        return sorted(self._writes.items())

    def compute_root(self) -> bytes:
        """Return the root the state would have if committed now (nothing persisted).

        Costs O(changed keys x log(state size)); free when nothing was written since the last
        call. Raises StoreCorruptionError if a stored tree node is damaged.
        """
        return self.computed().root_hash

    def computed(self) -> ComputedRoot:
        """Return (computing it if needed) the new tree for the current writes."""
        computed = self._computed
        if computed is None:
            computed = self._compute()
            self._computed = computed
        return computed

    def _compute(self) -> ComputedRoot:
        writes = self._writes
        hashed = sorted([(_sha256(key).digest(), key) for key in writes])
        keyhashes = [entry[0] for entry in hashed]
        keys = [entry[1] for entry in hashed]
        values = [writes[key] for key in keys]
        paths = [int.from_bytes(keyhash, "big") for keyhash in keyhashes]
        valuehashes = [None if value is None else _sha256(value).digest() for value in values]
        update = TreeUpdate(self._load, self.first_node_id, self._fast, self.base_height + 1)
        base = self._load(self.base_root_id) if self.base_root_id else None
        root = update.apply(base, paths, keyhashes, valuehashes)
        return ComputedRoot(root[0] if root is not None else EMPTY_ROOT, root, update, keys,
                            values)
