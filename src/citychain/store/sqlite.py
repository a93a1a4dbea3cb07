"""SqliteStore: the versioned state store in one SQLite file (WAL, synchronous=FULL).

Tables (see docs/adr/0002-authenticated-state.md)::

    state    (key PRIMARY KEY, value)                   latest key/values (index range scans)
    changes  (height, first_key, data)                  the effective writes of every height,
                                                        packed ~3.5 KiB per row in key order
    nodes    (chunk PRIMARY KEY, data)                  32 fixed-size tree node records per row
    versions (height PRIMARY KEY, root, root_id, first_node, node_count, meta_digest)
    meta     (height, name, value)                      metadata history (values as they change)

Each commit is one ``BEGIN IMMEDIATE .. COMMIT`` transaction, so a crash at any instant leaves
exactly the last committed height. A commit only appends to the WAL and syncs it; copying WAL
frames back into the database file (the checkpoint) runs on a background thread with its own
connection, off the commit path. One connection is shared by all threads behind the store's
lock; tree nodes (immutable once written) and latest values are served from bounded in-memory
caches.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator
from operator import itemgetter

from citychain.store.cache import BoundedCache
from citychain.store.errors import StaleWorkingSetError, StoreCorruptionError, StoreFormatError
from citychain.store.tree import CHUNK_NODES, RECORD_SIZE, Node, decode_record, encode_chunks
from citychain.store.versioned import CommitBatch, IndexRow, VersionedStoreBase, VersionRow

SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE changes (height INTEGER NOT NULL, first_key BLOB NOT NULL, "
    "data BLOB NOT NULL, PRIMARY KEY (height, first_key))",
    "CREATE TABLE nodes (chunk INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE versions (height INTEGER PRIMARY KEY, root BLOB NOT NULL, "
    "root_id INTEGER NOT NULL, first_node INTEGER NOT NULL, node_count INTEGER NOT NULL, "
    "meta_digest BLOB NOT NULL)",
    "CREATE TABLE meta (height INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL, "
    "PRIMARY KEY (height, name)) WITHOUT ROWID",
)

# Query indexes (node-local, outside the tree; see citychain.core.query_index). Added to format
# 1 without a version bump: a database written before them gets the tables on open, and the
# application's attach_indexes rebuilds the entries.
_INDEX_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS query_index (key BLOB PRIMARY KEY, height INTEGER NOT NULL, "
    "value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS query_index_info (position INTEGER PRIMARY KEY, "
    "signature TEXT NOT NULL)",
)
_INDEX_UPSERT = ("INSERT INTO query_index (key, height, value) VALUES (?, ?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                 "height = excluded.height")
_INDEX_GET = "SELECT value FROM query_index WHERE key = ? AND height <= ?"
_INDEX_SCAN = ("SELECT key, value FROM query_index WHERE key >= ? AND height <= ? "
               "ORDER BY key LIMIT ?")
_INDEX_SCAN_TO = ("SELECT key, value FROM query_index WHERE key >= ? AND key < ? "
                  "AND height <= ? ORDER BY key LIMIT ?")

_GET = "SELECT value FROM state WHERE key = ?"
_SCAN = "SELECT key, value FROM state WHERE key >= ? ORDER BY key LIMIT ?"
_SCAN_TO = "SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key LIMIT ?"
_NODE = "SELECT substr(data, ?, ?) FROM nodes WHERE chunk = ?"
_CHUNK = "SELECT data FROM nodes WHERE chunk = ?"
_UPSERT = ("INSERT INTO state (key, value) VALUES (?, ?) "
           "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
_VERSION = ("SELECT height, root, root_id, first_node, node_count, meta_digest FROM versions "
            "WHERE height = ?")
_VERSIONS_AFTER = ("SELECT height, root, root_id, first_node, node_count, meta_digest "
                   "FROM versions WHERE height > ? ORDER BY height LIMIT 1024")
_INSERT_VERSION = ("INSERT INTO versions (height, root, root_id, first_node, node_count, "
                   "meta_digest) VALUES (?, ?, ?, ?, ?, ?)")

# Memory budget by default: ~80 MiB of decoded nodes (~400 bytes each with their dict entry),
# ~160 MiB of raw node chunks (~85 bytes a node: a 1M-key tree fits), ~20 MiB of latest values,
# 32 MiB of SQLite page cache.
DEFAULT_NODE_CACHE = 200_000  # decoded tree nodes
DEFAULT_CHUNK_CACHE = 40_000  # raw node chunks of 48 records
DEFAULT_VALUE_CACHE = 100_000  # latest values
DEFAULT_PAGE_CACHE_MIB = 32


log = logging.getLogger(__name__)

_ENTRY = struct.Struct(">HI")  # key length, value length (DELETED: the key was deleted)
_DELETED = 0xFFFFFFFF
CHANGE_ROW_BYTES = 3500


def encode_changes(changes: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes]]:
    """Pack sorted (key, value or None) writes into (first key, data) rows of ~3.5 KiB."""
    rows: list[tuple[bytes, bytes]] = []
    parts: list[bytes] = []
    size = 0
    first = b""
    pack = _ENTRY.pack
    for key, value in changes:
        if value is None:
            entry = pack(len(key), _DELETED) + key
        else:
            entry = pack(len(key), len(value)) + key + value
        if parts and size + len(entry) > CHANGE_ROW_BYTES:
            rows.append((first, b"".join(parts)))
            parts = []
            size = 0
        if not parts:
            first = key
        parts.append(entry)
        size += len(entry)
    if parts:
        rows.append((first, b"".join(parts)))
    return rows


def decode_changes(height: int, first_key: bytes,
                   data: bytes) -> list[tuple[bytes, bytes | None]]:
    """Unpack one row of :func:`encode_changes`.

    Raises:
        StoreCorruptionError: the row is truncated, out of order, or its first key is wrong.
    """
    out: list[tuple[bytes, bytes | None]] = []
    offset = 0
    size = len(data)
    unpack = _ENTRY.unpack_from
    previous: bytes | None = None
    while offset < size:
        if offset + _ENTRY.size > size:
            raise StoreCorruptionError(f"change row (height {height}, first key "
                                       f"{first_key.hex()[:40]}) is truncated")
        key_size, value_size = unpack(data, offset)
        offset += _ENTRY.size
        key = data[offset:offset + key_size]
        offset += key_size
        value: bytes | None = None
        if value_size != _DELETED:
            value = data[offset:offset + value_size]
            offset += value_size
        if offset > size or (previous is not None and key <= previous) or (
                previous is None and key != first_key):
            raise StoreCorruptionError(f"change row (height {height}, first key "
                                       f"{first_key.hex()[:40]}) is malformed")
        out.append((key, value))
        previous = key
    if not out:
        raise StoreCorruptionError(f"change row (height {height}, first key "
                                   f"{first_key.hex()[:40]}) is empty")
    return out


class _Checkpointer:
    """Checkpoints the WAL (PASSIVE: never blocks the writer) after each commit, on its own
    thread and connection. A crash mid-checkpoint is harmless: the WAL still holds the frames."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="citychain-state-checkpoint",
                                        daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = FULL")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # retried after the next commit
                    log.warning("state database checkpoint failed: %s", exc)
        finally:
            conn.close()


def _version(row: tuple[int, bytes, int, int, int, bytes]) -> VersionRow:
    return VersionRow(row[0], bytes(row[1]), row[2], row[3], row[4], bytes(row[5]))


class SqliteStore(VersionedStoreBase):
    """A versioned, authenticated key-value store in one SQLite file. Thread-safe.

    Raises (on open):
        StoreFormatError: the file holds a database of another format or version.
        sqlite3.Error: the file cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, node_cache_size: int = DEFAULT_NODE_CACHE,
                 chunk_cache_size: int = DEFAULT_CHUNK_CACHE,
                 value_cache_size: int = DEFAULT_VALUE_CACHE,
                 page_cache_mib: int = DEFAULT_PAGE_CACHE_MIB) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     cached_statements=64)
        self._nodes: BoundedCache[int, Node] = BoundedCache(node_cache_size)
        self._chunks: BoundedCache[int, bytes] = BoundedCache(chunk_cache_size)
        self._written_chunks: list[tuple[int, bytes]] = []
        self._checkpointer: _Checkpointer | None = None
        self._values: BoundedCache[bytes, tuple[bytes | None]] = BoundedCache(
            value_cache_size)
        try:
            self._configure(page_cache_mib)
            self._load_state()
        except BaseException:
            self._conn.close()
            raise
        if self.path != ":memory:":
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = _Checkpointer(self.path)

    def _configure(self, page_cache_mib: int) -> None:
        conn = self._conn
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and self.path != ":memory:":
            raise StoreFormatError(f"{self.path}: cannot switch the database to WAL mode")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA cache_size = {-1024 * int(page_cache_mib)}")
        conn.execute("PRAGMA temp_store = MEMORY")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and not tables:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif version != SCHEMA_VERSION or not {"state", "changes", "nodes", "versions",
                                               "meta"} <= tables:
            raise StoreFormatError(f"{self.path} is not a citychain state database of format "
                                   f"{SCHEMA_VERSION} (user_version {version})",
                                   required=SCHEMA_VERSION, available=version)
        if not {"query_index", "query_index_info"} <= tables:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _INDEX_SCHEMA:
                    conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ primitives
    def _load_node(self, node_id: int) -> Node:
        node = self._nodes.entries.get(node_id)
        if node is None:
            chunk, index = divmod(node_id, CHUNK_NODES)
            data = self._chunks.get(chunk)
            if data is None:
                with self._lock:
                    row = self._conn.execute(_CHUNK, (chunk,)).fetchone()
                if row is None:
                    raise StoreCorruptionError(f"tree node {node_id} is missing")
                data = row[0]
                self._chunks.put(chunk, data)
            offset = index * RECORD_SIZE
            node = decode_record(node_id, data[offset:offset + RECORD_SIZE])
            self._nodes.put(node_id, node)
        return node

    def _node_lookup(self) -> Callable[[int], Node | None]:
        return self._nodes.entries.get

    def _read_node(self, node_id: int) -> Node:
        chunk, index = divmod(node_id, CHUNK_NODES)
        with self._lock:
            row = self._conn.execute(_NODE, (index * RECORD_SIZE + 1, RECORD_SIZE,
                                              chunk)).fetchone()
        if row is None or not row[0]:
            raise StoreCorruptionError(f"tree node {node_id} is missing")
        return decode_record(node_id, bytes(row[0]))

    def _get_latest(self, key: bytes) -> bytes | None:
        hit = self._values.get(key)
        if hit is not None:
            return hit[0]
        row = self._conn.execute(_GET, (key,)).fetchone()
        value = row[0] if row is not None else None
        self._values.put(key, (value,))
        return value

    def _scan_latest(self, start: bytes, end: bytes | None,
                     limit: int | None) -> list[tuple[bytes, bytes]]:
        count = -1 if limit is None else limit
        if end is None:
            cursor = self._conn.execute(_SCAN, (start, count))
        else:
            cursor = self._conn.execute(_SCAN_TO, (start, end, count))
        return cursor.fetchall()

    def _count_latest(self) -> int:
        count: int = self._conn.execute("SELECT COUNT(*) FROM state").fetchone()[0]
        return count

    def _get_change(self, height: int, key: bytes) -> tuple[bool, bytes | None]:
        row = self._conn.execute(
            "SELECT first_key, data FROM changes WHERE height = ? AND first_key <= ? "
            "ORDER BY first_key DESC LIMIT 1", (height, key)).fetchone()
        if row is None:
            return False, None
        for entry_key, value in decode_changes(height, row[0], row[1]):
            if entry_key == key:
                return True, value
        return False, None

    def _changed_keys_after(self, height: int, start: bytes, end: bytes | None) -> list[bytes]:
        found: set[bytes] = set()
        for changed_height, first_key, data in self._conn.execute(
                "SELECT height, first_key, data FROM changes WHERE height > ?", (height,)):
            for key, _value in decode_changes(changed_height, first_key, data):
                if key >= start and (end is None or key < end):
                    found.add(key)
        return sorted(found)

    def _get_version(self, height: int) -> VersionRow | None:
        row = self._conn.execute(_VERSION, (height,)).fetchone()
        return _version(row) if row is not None else None

    def _height_range(self) -> tuple[int, int] | None:
        low, high = self._conn.execute("SELECT MIN(height), MAX(height) FROM versions").fetchone()
        if low is None:
            return None
        return low, high

    def _iter_versions(self) -> Iterator[VersionRow]:
        after = -1
        while True:
            with self._lock:
                rows = self._conn.execute(_VERSIONS_AFTER, (after,)).fetchall()
            for row in rows:
                yield _version(row)
            if len(rows) < 1024:
                return
            after = rows[-1][0]

    def _changes_at(self, height: int) -> list[tuple[bytes, bytes | None]]:
        out: list[tuple[bytes, bytes | None]] = []
        for first_key, data in self._conn.execute(
                "SELECT first_key, data FROM changes WHERE height = ? ORDER BY first_key",
                (height,)):
            entries = decode_changes(height, first_key, data)
            if out and entries[0][0] <= out[-1][0]:
                raise StoreCorruptionError(f"change rows of height {height} overlap at key "
                                           f"{first_key.hex()[:40]}")
            out.extend(entries)
        return out

    def _meta_rows(self) -> list[tuple[int, str, bytes]]:
        return self._conn.execute(
            "SELECT height, name, value FROM meta ORDER BY height, name").fetchall()

    def _persist(self, batch: CommitBatch) -> None:
        conn = self._conn
        row = batch.version
        height = row.height
        changes = batch.changes
        conn.execute("BEGIN IMMEDIATE")
        try:
            stored = conn.execute("SELECT MAX(height) FROM versions").fetchone()[0]
            if stored != (self._latest.height if self._latest is not None else None):
                raise StaleWorkingSetError(
                    f"the database is at height {stored} but this store last saw height "
                    f"{self.latest_height}: another writer changed it; reopen the store")
            sets = [change for change in changes if change[1] is not None]
            if sets:
                conn.executemany(_UPSERT, sets)
            if len(sets) != len(changes):
                conn.executemany("DELETE FROM state WHERE key = ?",
                                 [(key,) for key, value in changes if value is None])
            if changes:
                conn.executemany("INSERT INTO changes (height, first_key, data) VALUES (?, ?, ?)",
                                 [(height, first, data)
                                  for first, data in encode_changes(changes)])
            chunks = encode_chunks(batch.nodes)
            if chunks:
                conn.executemany("INSERT INTO nodes (chunk, data) VALUES (?, ?)", chunks)
            self._written_chunks = chunks
            conn.execute(_INSERT_VERSION, (height, row.root, row.root_id, row.first_node,
                                           row.node_count, row.meta_digest))
            if batch.meta:
                conn.executemany("INSERT INTO meta (height, name, value) VALUES (?, ?, ?)",
                                 [(height, name, value) for name, value in batch.meta])
            if batch.index_removed:
                conn.executemany("DELETE FROM query_index WHERE key = ?",
                                 [(key,) for key in batch.index_removed])
            if batch.index_entries:
                # in key order: a block's entries (one anchor's thousand devices, say) are
                # scattered over the table, and sorted inserts touch each B-tree page once
                conn.executemany(_INDEX_UPSERT, [(key, height, value)
                                                 for key, value in sorted(batch.index_entries)])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _after_commit(self, batch: CommitBatch) -> None:
        self._values.refresh_many({key: (value,) for key, value in batch.changes})
        self._nodes.discard_many(batch.replaced)  # keep the cache for nodes still in the tree
        self._nodes.put_many(dict(zip(map(itemgetter(1), batch.nodes), batch.nodes,
                                      strict=True)))
        self._chunks.put_many(dict(self._written_chunks))
        self._written_chunks = []
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def _audit_storage(self, problem: Callable[[str], None]) -> None:
        conn = self._conn
        for (result,) in conn.execute("PRAGMA quick_check").fetchall():
            if result != "ok":
                problem(f"sqlite integrity check: {result}")
        expected: Iterator[tuple[int, int, int]] = self._expected_chunks()
        want = next(expected, None)
        after = -1
        while True:
            rows = conn.execute("SELECT chunk, length(data) FROM nodes WHERE chunk > ? "
                                "ORDER BY chunk LIMIT 4096", (after,)).fetchall()
            for chunk, length in rows:
                while want is not None and want[0] < chunk:
                    problem(f"node chunk {want[0]} of height {want[2]} is missing")
                    want = next(expected, None)
                if want is None or want[0] != chunk:
                    problem(f"node chunk {chunk} belongs to no height")
                    continue
                if length != want[1]:
                    problem(f"node chunk {chunk} of height {want[2]} holds {length} bytes, "
                            f"expected {want[1]}")
                want = next(expected, None)
            if len(rows) < 4096:
                break
            after = rows[-1][0]
        while want is not None:
            problem(f"node chunk {want[0]} of height {want[2]} is missing")
            want = next(expected, None)
        if self.first_height:
            stray = conn.execute("SELECT COUNT(*) FROM changes WHERE height < ? OR height > ?",
                                 (self.first_height, self.latest_height)).fetchone()[0]
        else:
            stray = conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0]
        if stray:
            problem(f"{stray} change rows are at heights the store does not hold")

    def _expected_chunks(self) -> Iterator[tuple[int, int, int]]:
        """Yield (chunk, byte length, height) for every node chunk the versions own."""
        for row in self._iter_versions():
            first = row.first_node // CHUNK_NODES
            for offset in range(0, row.node_count, CHUNK_NODES):
                count = min(CHUNK_NODES, row.node_count - offset)
                yield first + offset // CHUNK_NODES, count * RECORD_SIZE, row.height

    def _load_index_signatures(self) -> tuple[str, ...]:
        return tuple(row[0] for row in self._conn.execute(
            "SELECT signature FROM query_index_info ORDER BY position"))

    def _replace_index(self, signatures: tuple[str, ...], rows: Iterator[IndexRow]) -> int:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM query_index")
            conn.execute("DELETE FROM query_index_info")
            conn.executemany(_INDEX_UPSERT, rows)
            conn.executemany("INSERT INTO query_index_info (position, signature) VALUES (?, ?)",
                             list(enumerate(signatures)))
            count: int = conn.execute("SELECT COUNT(*) FROM query_index").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return count

    def _index_get(self, key: bytes, height: int) -> bytes | None:
        row = self._conn.execute(_INDEX_GET, (key, height)).fetchone()
        return row[0] if row is not None else None

    def _index_scan(self, start: bytes, end: bytes | None, height: int,
                    limit: int) -> list[tuple[bytes, bytes]]:
        if end is None:
            return self._conn.execute(_INDEX_SCAN, (start, height, limit)).fetchall()
        return self._conn.execute(_INDEX_SCAN_TO, (start, end, height, limit)).fetchall()

    def _index_rows(self) -> Iterator[IndexRow]:
        yield from self._conn.execute("SELECT key, height, value FROM query_index ORDER BY key")

    def _close_storage(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:  # the WAL stays valid; the next open replays it
                log.warning("state database final checkpoint failed: %s", exc)
        self._nodes.clear()
        self._chunks.clear()
        self._values.clear()
        self._conn.close()
