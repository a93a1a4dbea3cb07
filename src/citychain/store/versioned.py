"""The versioned store logic shared by the memory and SQLite backends.

A backend keeps five things: the latest key/values, the effective writes of every height
(``changes``), the tree nodes of every height, one version row per height (root, root node id,
the run of node ids that height created, a digest of the metadata), and the metadata history.
This class turns them into the store API: working sets, atomic commits, reads and proofs at any
retained height, and an audit. Backends implement the ``_``-prefixed storage primitives; every
primitive is called with ``self._lock`` held, except node loads (nodes never change once
written, so a backend may serve them from a lock-free cache).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256 as _sha256

from citychain.core.errors import HeightNotAvailableError
from citychain.core.merkle import EMPTY_ROOT, Proof
from citychain.core.state import ReadView, WorkingSet
from citychain.store.errors import (
    CommitHeightError,
    StaleWorkingSetError,
    StoreClosedError,
    StoreCorruptionError,
)
from citychain.store.overlay import WorkingState, check_key
from citychain.store.tree import FIRST_NODE_ID, Node, chunk_end, finalize_nodes, walk

SCAN_BATCH = 256


@dataclass(frozen=True)
class VersionRow:
    """What the store records for one committed height."""

    height: int
    root: bytes
    root_id: int  # 0: empty tree
    first_node: int  # the nodes this height created have ids first_node .. + node_count - 1
    node_count: int
    meta_digest: bytes


@dataclass(frozen=True)
class CommitBatch:
    """Everything one commit persists, in one transaction."""

    version: VersionRow
    changes: list[tuple[bytes, bytes | None]]  # effective writes, sorted by key
    nodes: list[Node]  # new tree nodes, contiguous ids from version.first_node
    meta: list[tuple[str, bytes]]  # metadata entries whose value changed, sorted by name
    replaced: list[int]  # ids of nodes of the previous tree this version no longer holds


def compute_meta_digest(meta: dict[str, bytes]) -> bytes:
    """Return the digest of a metadata map (sorted names, length-prefixed names and values)."""
    digest = _sha256(b"citychain.store.meta")
    for name in sorted(meta):
        encoded = name.encode()
        value = meta[name]
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
        digest.update(len(value).to_bytes(4, "big") + value)
    return digest.digest()


def _check_meta(meta: dict[str, bytes] | None) -> list[tuple[str, bytes]]:
    if meta is None:
        return []
    if not isinstance(meta, dict):
        raise TypeError("meta must be a dict of str -> bytes")
    for name, value in meta.items():
        if type(name) is not str or not name:
            raise TypeError(f"meta names are non-empty str, got {name!r}")
        if type(value) is not bytes:
            raise TypeError(f"meta value {name!r} is {type(value).__name__}, not bytes")
    return sorted(meta.items())


class HeightView:
    """A read-only view of the state at one committed height (see ``reader``)."""

    __slots__ = ("_store", "height")

    def __init__(self, store: VersionedStoreBase, height: int) -> None:
        self._store = store
        self.height = height

    def get(self, key: bytes) -> bytes | None:
        """Raises StoreCorruptionError if the stored history is damaged."""
        return self._store._get_at(key, self.height)

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Yield (key, value) for start <= key < end at this height, ascending. Raises
        StoreCorruptionError if the stored history is damaged."""
        return self._store._iterate_at(start, end, self.height)


class VersionedStoreBase(ABC):
    """Working sets, commits, versioned reads, proofs and audit over a storage backend."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._latest: VersionRow | None = None
        self._first_height = 0
        self._next_node_id = FIRST_NODE_ID
        self._meta: dict[str, bytes] = {}
        self._closed = False

    # ================================================================== storage primitives
    @abstractmethod
    def _load_node(self, node_id: int) -> Node:
        """Return node ``node_id`` (may be cached). Raises StoreCorruptionError if missing."""

    def _node_lookup(self) -> Callable[[int], Node | None] | None:
        """Return a fast, non-raising lookup of cached nodes (a dict's ``get``), if any."""
        return None

    @abstractmethod
    def _read_node(self, node_id: int) -> Node:
        """Return node ``node_id`` from storage, bypassing caches (for the audit)."""

    @abstractmethod
    def _get_latest(self, key: bytes) -> bytes | None:
        """Return the latest value of ``key``."""

    @abstractmethod
    def _scan_latest(self, start: bytes, end: bytes | None,
                     limit: int | None) -> list[tuple[bytes, bytes]]:
        """Return up to ``limit`` latest (key, value) with start <= key < end, ascending."""

    @abstractmethod
    def _get_change(self, height: int, key: bytes) -> tuple[bool, bytes | None]:
        """Return (found, value) of the write of ``key`` at ``height``."""

    @abstractmethod
    def _changed_keys_after(self, height: int, start: bytes, end: bytes | None) -> list[bytes]:
        """Return the distinct keys in [start, end) written at heights above ``height``."""

    @abstractmethod
    def _get_version(self, height: int) -> VersionRow | None:
        """Return the version row of ``height``."""

    @abstractmethod
    def _iter_versions(self) -> Iterator[VersionRow]:
        """Yield every version row by ascending height."""

    @abstractmethod
    def _changes_at(self, height: int) -> list[tuple[bytes, bytes | None]]:
        """Return the writes stored for ``height``, sorted by key."""

    @abstractmethod
    def _meta_rows(self) -> list[tuple[int, str, bytes]]:
        """Return every metadata row as (height, name, value), by height then name."""

    @abstractmethod
    def _persist(self, batch: CommitBatch) -> None:
        """Write ``batch`` atomically (all of it or, on any failure, none of it)."""

    @abstractmethod
    def _after_commit(self, batch: CommitBatch) -> None:
        """Update caches once ``batch`` is durable."""

    @abstractmethod
    def _audit_storage(self, problem: Callable[[str], None]) -> None:
        """Report problems of the storage itself (physical checks, rows no version owns)."""

    @abstractmethod
    def _count_latest(self) -> int:
        """Return the number of latest key/values."""

    @abstractmethod
    def _close_storage(self) -> None:
        """Release the storage."""

    # ================================================================== loading
    def _load_state(self) -> None:
        """Initialise the in-memory summary from storage (on open)."""
        heights = self._height_range()
        if heights is None:
            return
        self._first_height = heights[0]
        latest = self._get_version(heights[1])
        if latest is None:
            raise StoreCorruptionError("the latest version row is missing")
        self._latest = latest
        self._next_node_id = chunk_end(latest.first_node + latest.node_count)
        meta: dict[str, bytes] = {}
        for _height, name, value in self._meta_rows():
            meta[name] = value
        self._meta = meta

    @abstractmethod
    def _height_range(self) -> tuple[int, int] | None:
        """Return the lowest and highest stored heights (None: no version stored)."""

    # ================================================================== public API
    @property
    def latest_height(self) -> int:
        """The last committed height (0: nothing committed yet)."""
        latest = self._latest
        return latest.height if latest is not None else 0

    @property
    def latest_root(self) -> bytes:
        """The root at the last committed height (32 zero bytes for an empty state)."""
        latest = self._latest
        return latest.root if latest is not None else EMPTY_ROOT

    @property
    def first_height(self) -> int:
        """The oldest retained height (0: nothing committed yet)."""
        return self._first_height

    def begin(self) -> WorkingState:
        """Return a writable overlay on the latest committed state.

        Raises:
            StoreClosedError: the store was closed.
        """
        with self._lock:
            self._check_open()
            latest = self._latest
            height = latest.height if latest is not None else 0
            return WorkingState(self, HeightView(self, height), height, self.latest_root,
                                latest.root_id if latest is not None else 0,
                                self._next_node_id, self._load_node, self._node_lookup())

    def commit(self, working: WorkingSet, height: int,
               meta: dict[str, bytes] | None = None) -> bytes:
        """Persist ``working``'s changes as version ``height`` in one transaction; return the root.

        ``meta`` entries are stored in the same transaction (see :meth:`get_meta`).

        Raises:
            StaleWorkingSetError: ``working`` is not from this store or its base is not latest.
            CommitHeightError: ``height`` is not latest + 1 (or, first commit, not >= 1).
            TypeError: ``meta`` is not a map of str to bytes.
            StoreClosedError: the store was closed.
        """
        if not isinstance(working, WorkingState) or working.owner is not self:
            raise StaleWorkingSetError("commit() takes a working set begun on this store")
        if type(height) is not int:
            raise TypeError(f"height must be an int, got {type(height).__name__}")
        meta_items = _check_meta(meta)
        computed = working.computed()  # outside the lock: it only reads immutable nodes
        with self._lock:
            self._check_open()
            latest = self.latest_height
            if working.base_height != latest:
                raise StaleWorkingSetError(
                    f"the working set was begun on height {working.base_height} but the store "
                    f"is at height {latest}; begin a new one",
                    required=latest, available=working.base_height)
            if self._latest is None:
                if height < 1:
                    raise CommitHeightError(f"the first commit must be at height >= 1, "
                                            f"got {height}", field="height", required=1,
                                            available=height)
            elif height != latest + 1:
                raise CommitHeightError(f"commit at height {height} refused: the next height "
                                        f"is {latest + 1}", field="height",
                                        required=latest + 1, available=height)
            nodes = finalize_nodes(computed.update, height)
            changed_meta = [(name, value) for name, value in meta_items
                            if self._meta.get(name) != value]
            new_meta = dict(self._meta)
            new_meta.update(changed_meta)
            root = computed.root
            row = VersionRow(height, computed.root_hash, root[1] if root is not None else 0,
                             working.first_node_id, len(nodes), compute_meta_digest(new_meta))
            batch = CommitBatch(row, computed.effective_changes(), nodes, changed_meta,
                                computed.update.replaced)
            self._persist(batch)
            self._latest = row
            if not self._first_height:
                self._first_height = height
            self._next_node_id = chunk_end(row.first_node + row.node_count)
            self._meta = new_meta
            self._after_commit(batch)
            return row.root

    def reader(self, height: int | None = None) -> ReadView:
        """Return a read-only view of the state at ``height`` (None: the latest).

        Raises:
            HeightNotAvailableError: ``height`` is not retained (the error names what is).
            StoreClosedError: the store was closed.
        """
        with self._lock:
            self._check_open()
            return HeightView(self, self._resolve_height(height))

    def root_at(self, height: int) -> bytes:
        """Return the root committed at ``height``.

        Raises:
            HeightNotAvailableError: ``height`` is not retained.
        """
        with self._lock:
            self._check_open()
            resolved = self._resolve_height(height)
            if resolved == 0:
                return EMPTY_ROOT
            return self._version(resolved).root

    def prove(self, key: bytes, height: int | None = None) -> tuple[bytes | None, Proof]:
        """Return the value of ``key`` at ``height`` (None: latest; value None: absent) and the
        membership or non-membership proof of it against ``root_at(height)``.

        Raises:
            HeightNotAvailableError: ``height`` is not retained.
            TypeError, KeyTooLargeError: ``key`` is not an acceptable key.
            StoreCorruptionError: the stored tree and values disagree.
        """
        check_key(key)
        with self._lock:
            self._check_open()
            resolved = self._resolve_height(height)
            keyhash = _sha256(key).digest()
            siblings, node = walk(self._root_node(resolved), int.from_bytes(keyhash, "big"),
                                  self._load_node)
            siblings.reverse()
            if node is None:
                return None, Proof(tuple(siblings))
            body = node[2]
            if body[1:33] != keyhash:
                return None, Proof(tuple(siblings), (body[1:33], body[33:65]))
            value = self._value_of_leaf(key, node, resolved)
            return value, Proof(tuple(siblings))

    def get_meta(self, name: str) -> bytes | None:
        """Return the latest committed metadata value ``name`` (None if never set)."""
        with self._lock:
            return self._meta.get(name)

    def audit(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Re-check everything stored; return human-readable problems (empty: sound).

        Checks every tree node against the hash its parent (or the version row) expects, the
        stored writes of every height against the difference between consecutive trees, the
        latest key/values against the latest tree's leaves, metadata digests, and the storage
        itself. ``progress(done, total)`` is called as heights are checked. Commits wait while
        the audit runs; run it on a stopped node. Damage is reported, never raised.

        Raises:
            StoreClosedError: the store was closed.
        """
        from citychain.store.audit import audit_store

        with self._lock:
            self._check_open()
            return audit_store(self, progress)

    def close(self) -> None:
        """Release the storage; later calls raise StoreClosedError (or fail)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close_storage()

    # ================================================================== internals
    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the state store is closed")

    def _resolve_height(self, height: int | None) -> int:
        latest = self.latest_height
        if height is None or height == latest:
            return latest
        if type(height) is int and self._first_height and self._first_height <= height < latest:
            return height
        available = (f"heights {self._first_height}..{latest}" if self._first_height
                     else "no committed height yet")
        raise HeightNotAvailableError(f"height {height} is not available; the store holds "
                                      f"{available}", field="height", required=height,
                                      available=[self._first_height, latest])

    def _version(self, height: int) -> VersionRow:
        row = self._get_version(height)
        if row is None:
            raise StoreCorruptionError(f"the version row of height {height} is missing")
        return row

    def _root_node(self, height: int) -> Node | None:
        """Return the root node at ``height`` (None: empty; heights before the first commit
        are the empty state)."""
        latest = self._latest
        if latest is None or height < self._first_height:
            return None
        row = latest if height == latest.height else self._version(height)
        return self._load_node(row.root_id) if row.root_id else None

    def _value_of_leaf(self, key: bytes, leaf: Node, height: int) -> bytes:
        """Return the value the leaf of ``key`` commits to, checking it against the leaf."""
        if height == self.latest_height:
            value = self._get_latest(key)
        else:
            found, value = self._get_change(leaf[3], key)
            if not found:
                value = None
        if value is None or _sha256(value).digest() != leaf[2][33:65]:
            raise StoreCorruptionError(f"the stored value of key {key.hex()} at height {height} "
                                       "does not match its tree leaf")
        return value

    def _get_at(self, key: bytes, height: int) -> bytes | None:
        with self._lock:
            if height == self.latest_height:
                return self._get_latest(key)
            return self._get_historical(key, height)

    def _get_historical(self, key: bytes, height: int) -> bytes | None:
        keyhash = _sha256(key).digest()
        _, node = walk(self._root_node(height), int.from_bytes(keyhash, "big"), self._load_node)
        if node is None or node[2][1:33] != keyhash:
            return None
        return self._value_of_leaf(key, node, height)

    def _iterate_at(self, start: bytes, end: bytes | None,
                    height: int) -> Iterator[tuple[bytes, bytes]]:
        lower = start
        while True:
            with self._lock:
                if height != self.latest_height:
                    rows = self._historical_range(lower, end, height)
                    historical = True
                else:
                    rows = self._scan_latest(lower, end, SCAN_BATCH)
                    historical = False
            yield from rows
            if historical or len(rows) < SCAN_BATCH:
                return
            lower = rows[-1][0] + b"\x00"

    def _historical_range(self, start: bytes, end: bytes | None,
                          height: int) -> list[tuple[bytes, bytes]]:
        """The state at an older height in [start, end): the latest rows, with every key written
        since ``height`` replaced by its value then. Costs the range plus the writes since."""
        if self._root_node(height) is None:
            return []
        changed = self._changed_keys_after(height, start, end)
        changed_set = set(changed)
        rows = [row for row in self._scan_latest(start, end, None) if row[0] not in changed_set]
        for key in changed:
            value = self._get_historical(key, height)
            if value is not None:
                rows.append((key, value))
        rows.sort()
        return rows
