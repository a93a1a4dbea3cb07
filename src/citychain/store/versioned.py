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
from citychain.core.query_index import QueryIndex, check_indexes, derive_entries
from citychain.core.state import ReadView, WorkingSet, prefix_end
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
    index_entries: list[tuple[bytes, bytes]]  # query index entries to store, by key
    index_removed: list[bytes]  # query index entries of rewritten or deleted source records


IndexRow = tuple[bytes, int, bytes]  # query index entry: key, height it appeared at, value


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


class IndexHeightView:
    """A read-only view of the query index entries that existed at one committed height."""

    __slots__ = ("_store", "height")

    def __init__(self, store: VersionedStoreBase, height: int) -> None:
        self._store = store
        self.height = height

    def get(self, key: bytes) -> bytes | None:
        with self._store._lock:
            return self._store._index_get(key, self.height)

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        lower = start
        while True:
            with self._store._lock:
                rows = self._store._index_scan(lower, end, self.height, SCAN_BATCH)
            yield from rows
            if len(rows) < SCAN_BATCH:
                return
            lower = rows[-1][0] + b"\x00"


class VersionedStoreBase(ABC):
    """Working sets, commits, versioned reads, proofs and audit over a storage backend."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._latest: VersionRow | None = None
        self._first_height = 0
        self._next_node_id = FIRST_NODE_ID
        self._meta: dict[str, bytes] = {}
        self._closed = False
        self._indexes: tuple[QueryIndex, ...] = ()
        self._index_signatures: tuple[str, ...] = ()  # of the entries stored (loaded on open)

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

    @abstractmethod
    def _load_index_signatures(self) -> tuple[str, ...]:
        """Return the signatures of the query indexes whose entries are stored."""

    @abstractmethod
    def _replace_index(self, signatures: tuple[str, ...], rows: Iterator[IndexRow]) -> int:
        """Atomically drop every query index entry, store ``rows`` (a key given twice keeps
        the last) and ``signatures``; return the number of entries stored."""

    @abstractmethod
    def _index_get(self, key: bytes, height: int) -> bytes | None:
        """Return the index entry ``key`` if it appeared at or below ``height``."""

    @abstractmethod
    def _index_scan(self, start: bytes, end: bytes | None, height: int,
                    limit: int) -> list[tuple[bytes, bytes]]:
        """Return up to ``limit`` index entries in [start, end) that appeared at or below
        ``height``, ascending."""

    @abstractmethod
    def _index_rows(self) -> Iterator[IndexRow]:
        """Yield every stored index entry by key."""

    # ================================================================== loading
    def _load_state(self) -> None:
        """Initialise the in-memory summary from storage (on open)."""
        self._index_signatures = self._load_index_signatures()
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
            if self._index_signatures != self._signatures():
                # Entries built by definitions not attached now would go stale: forget them
                # first, so the next attach_indexes rebuilds them.
                self._replace_index((), iter(()))
                self._index_signatures = ()
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
            changes = computed.effective_changes()
            entries, removed = self._index_writes(changes)
            batch = CommitBatch(row, changes, nodes, changed_meta, computed.update.replaced,
                                entries, removed)
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

    # ================================================================== query indexes
    @property
    def indexes(self) -> tuple[QueryIndex, ...]:
        """The query indexes every commit writes (see :meth:`attach_indexes`)."""
        return self._indexes

    def attach_indexes(self, indexes: tuple[QueryIndex, ...],
                       progress: Callable[[int, int], None] | None = None, *,
                       rebuild: bool = False) -> int | None:
        """Write ``indexes``' entries at every commit from now on, and query them at any
        retained height with :meth:`index_reader`.

        A source record's entries are those derived from its current value, each at the
        height of the record's latest write (for write-once records: the height it appeared).
        If the stored entries were built by other definitions (or none: a new index, a store
        written before it existed, commits made without it), or ``rebuild`` is set, they are
        rebuilt from the latest state in one transaction.
        ``progress(done, total)`` counts source records during a rebuild. Returns the number of
        entries rebuilt, or None when the stored ones were kept.

        Raises:
            ValueError: names repeat or prefixes overlap (see ``check_indexes``).
            StoreClosedError: the store was closed.
        """
        indexes = tuple(indexes)
        check_indexes(indexes)
        with self._lock:
            self._check_open()
            self._indexes = indexes
            signatures = self._signatures()
            if signatures == self._index_signatures and not rebuild:
                return None
            total = sum(self._count_prefix(index.source) for index in indexes)
            rows = self._derive_all(indexes, total, progress)
            count = self._replace_index(signatures, rows)
            self._index_signatures = signatures
            return count

    def index_reader(self, height: int | None = None) -> ReadView:
        """Return a read-only view of the query index entries at ``height`` (None: latest).

        Raises:
            HeightNotAvailableError: ``height`` is not retained.
            StoreClosedError: the store was closed.
        """
        with self._lock:
            self._check_open()
            return IndexHeightView(self, self._resolve_height(height))

    def index_entries(self) -> list[IndexRow]:
        """Return every stored query index entry as (key, height, value), by key (for audits
        that compare two stores)."""
        with self._lock:
            self._check_open()
            return list(self._index_rows())

    def derived_index_entries(self) -> list[IndexRow]:
        """Return the entries the attached indexes derive from the latest state, by key: what
        :meth:`index_entries` holds when the index is sound."""
        with self._lock:
            self._check_open()
            rows = {row[0]: row for row in self._derive_all(self._indexes, 0, None)}
            return [rows[key] for key in sorted(rows)]

    def _index_writes(self, changes: list[tuple[bytes, bytes | None]],
                      ) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """Return the index entries a block's writes store and those it removes: a source
        record's entries are always those derived from its current value (so a rewritten or
        deleted record drops the entries of its old value, as a rebuild would)."""
        indexes = self._indexes
        if not indexes:
            return [], []
        sources = tuple(index.source for index in indexes)
        written = [change for change in changes if change[0].startswith(sources)]
        if not written:
            return [], []
        entries = derive_entries(indexes, written)
        old = derive_entries(indexes, [(key, self._get_latest(key)) for key, _ in written])
        kept = {key for key, _ in entries}
        return entries, [key for key, _ in old if key not in kept]

    def _signatures(self) -> tuple[str, ...]:
        return tuple(index.signature() for index in self._indexes)

    def _count_prefix(self, prefix: bytes) -> int:
        return sum(1 for _ in self._iterate_at(prefix, prefix_end(prefix), self.latest_height))

    def _derive_all(self, indexes: tuple[QueryIndex, ...], total: int,
                    progress: Callable[[int, int], None] | None) -> Iterator[IndexRow]:
        """Yield the entries ``indexes`` derive from the latest state, each at the height its
        source record's tree leaf was written (the record's commit height)."""
        root = self._root_node(self.latest_height)
        done = 0
        for index in indexes:
            for key, value in self._iterate_at(index.source, prefix_end(index.source),
                                               self.latest_height):
                _, leaf = walk(root, int.from_bytes(_sha256(key).digest(), "big"),
                               self._load_node)
                if leaf is None:
                    raise StoreCorruptionError(f"key {key.hex()} has a value but no tree leaf")
                for entry_key, entry_value in derive_entries((index,), [(key, value)]):
                    yield entry_key, leaf[3], entry_value
                done += 1
                if progress is not None and (done % 1024 == 0 or done == total):
                    progress(done, total)

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
