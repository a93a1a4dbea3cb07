"""MemoryStore: the versioned state store held in Python dicts (tests, audits, replays).

It keeps the same data as the SQLite store (latest values, per-height writes, every tree node,
version rows, metadata history), so both give the same roots, reads and proofs for the same
history; nothing survives the process.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator

from citychain.store.errors import StoreCorruptionError
from citychain.store.tree import Node
from citychain.store.versioned import CommitBatch, IndexRow, VersionedStoreBase, VersionRow


class MemoryStore(VersionedStoreBase):
    """A versioned, authenticated key-value store in memory. Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self._nodes: dict[int, Node] = {}
        self._state: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []  # sorted keys of _state
        self._changes: dict[int, dict[bytes, bytes | None]] = {}
        self._versions: dict[int, VersionRow] = {}
        self._meta_history: list[tuple[int, str, bytes]] = []
        self._index: dict[bytes, tuple[int, bytes]] = {}  # query index: key -> (height, value)
        self._index_keys: list[bytes] = []  # sorted keys of _index
        self._stored_signatures: tuple[str, ...] = ()

    # ------------------------------------------------------------------ primitives
    def _load_node(self, node_id: int) -> Node:
        node = self._nodes.get(node_id)
        if node is None:
            raise StoreCorruptionError(f"tree node {node_id} is missing")
        return node

    _read_node = _load_node

    def _node_lookup(self) -> Callable[[int], Node | None]:
        return self._nodes.get

    def _get_latest(self, key: bytes) -> bytes | None:
        return self._state.get(key)

    def _scan_latest(self, start: bytes, end: bytes | None,
                     limit: int | None) -> list[tuple[bytes, bytes]]:
        keys = self._keys
        low = bisect_left(keys, start)
        high = len(keys) if end is None else bisect_left(keys, end, low)
        if limit is not None:
            high = min(high, low + limit)
        state = self._state
        return [(key, state[key]) for key in keys[low:high]]

    def _count_latest(self) -> int:
        return len(self._state)

    def _get_change(self, height: int, key: bytes) -> tuple[bool, bytes | None]:
        writes = self._changes.get(height)
        if writes is None or key not in writes:
            return False, None
        return True, writes[key]

    def _changed_keys_after(self, height: int, start: bytes, end: bytes | None) -> list[bytes]:
        found: set[bytes] = set()
        for changed_height in range(height + 1, self.latest_height + 1):
            for key in self._changes.get(changed_height, {}):
                if key >= start and (end is None or key < end):
                    found.add(key)
        return sorted(found)

    def _get_version(self, height: int) -> VersionRow | None:
        return self._versions.get(height)

    def _height_range(self) -> tuple[int, int] | None:
        if not self._versions:
            return None
        return min(self._versions), max(self._versions)

    def _iter_versions(self) -> Iterator[VersionRow]:
        for height in sorted(self._versions):
            yield self._versions[height]

    def _changes_at(self, height: int) -> list[tuple[bytes, bytes | None]]:
        return sorted(self._changes.get(height, {}).items())

    def _meta_rows(self) -> list[tuple[int, str, bytes]]:
        return sorted(self._meta_history)

    def _persist(self, batch: CommitBatch) -> None:
        row = batch.version
        nodes = self._nodes
        for node in batch.nodes:
            nodes[node[1]] = node
        state = self._state
        added: list[bytes] = []
        removed: list[bytes] = []
        for key, value in batch.changes:
            if value is None:
                if state.pop(key, None) is not None:
                    removed.append(key)
            else:
                if key not in state:
                    added.append(key)
                state[key] = value
        self._update_keys(added, removed)
        self._changes[row.height] = dict(batch.changes)
        self._versions[row.height] = row
        self._meta_history.extend((row.height, name, value) for name, value in batch.meta)
        if batch.index_removed:
            for key in batch.index_removed:
                self._index.pop(key, None)
            self._index_keys = sorted(self._index)
        self._put_index((key, row.height, value) for key, value in batch.index_entries)

    def _put_index(self, rows: Iterable[IndexRow]) -> None:
        index = self._index
        added: list[bytes] = []
        for key, height, value in rows:
            if key not in index:
                added.append(key)
            index[key] = (height, value)
        _insert_sorted(self._index_keys, added)

    def _update_keys(self, added: list[bytes], removed: list[bytes]) -> None:
        keys = self._keys
        _insert_sorted(keys, added)
        if len(removed) <= 64:
            for key in removed:
                del keys[bisect_left(keys, key)]
        elif removed:
            gone = set(removed)
            self._keys = [key for key in keys if key not in gone]

    def _after_commit(self, batch: CommitBatch) -> None:
        pass

    def _audit_storage(self, problem: Callable[[str], None]) -> None:
        owned = 0
        for row in self._iter_versions():
            for node_id in range(row.first_node, row.first_node + row.node_count):
                if node_id in self._nodes:
                    owned += 1
        if owned != len(self._nodes):
            problem(f"{len(self._nodes) - owned} stored tree nodes belong to no version")
        if sorted(self._state) != self._keys:
            problem("the sorted key index differs from the stored keys")
        for height in sorted(self._changes):
            if height not in self._versions:
                problem(f"change rows at height {height}: no such version")

    def _load_index_signatures(self) -> tuple[str, ...]:
        return self._stored_signatures

    def _replace_index(self, signatures: tuple[str, ...], rows: Iterator[IndexRow]) -> int:
        listed = list(rows)  # derive everything before changing anything
        self._index = {}
        self._index_keys = []
        self._put_index(listed)
        self._stored_signatures = signatures
        return len(self._index)

    def _index_get(self, key: bytes, height: int) -> bytes | None:
        found = self._index.get(key)
        return found[1] if found is not None and found[0] <= height else None

    def _index_scan(self, start: bytes, end: bytes | None, height: int,
                    limit: int) -> list[tuple[bytes, bytes]]:
        keys = self._index_keys
        index = self._index
        out: list[tuple[bytes, bytes]] = []
        for position in range(bisect_left(keys, start), len(keys)):
            key = keys[position]
            if end is not None and key >= end:
                break
            entry_height, value = index[key]
            if entry_height <= height:
                out.append((key, value))
                if len(out) == limit:
                    break
        return out

    def _index_rows(self) -> Iterator[IndexRow]:
        for key in self._index_keys:
            height, value = self._index[key]
            yield key, height, value

    def _close_storage(self) -> None:
        pass


def _insert_sorted(keys: list[bytes], added: list[bytes]) -> None:
    """Insert ``added`` (keys not in ``keys``) into the sorted list ``keys``."""
    if len(added) <= 64:
        for key in added:
            insort(keys, key)
    else:
        keys.extend(added)
        keys.sort()
