"""The gateway's off-chain store (SQLite): readings by id, sealed batches, per-device progress.

Every write is one transaction committed with WAL and ``synchronous=FULL`` (fsync at commit), so a
reading whose transaction returned survives a crash of the process or the machine; the gateway
acknowledges readings to the broker only after that. One connection per thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citychain.iot.reading import Reading

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL UNIQUE,
    device TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    value INTEGER NOT NULL,
    sig BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'accepted',
    batch_id BLOB
);
CREATE INDEX IF NOT EXISTS readings_pending ON readings (status, n);
CREATE TABLE IF NOT EXISTS device_progress (
    device TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    last_ts_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL UNIQUE,
    merkle_root BLOB NOT NULL UNIQUE,
    leaves BLOB NOT NULL,
    devices TEXT NOT NULL,
    first_reading_ms INTEGER NOT NULL,
    last_reading_ms INTEGER NOT NULL,
    reading_count INTEGER NOT NULL,
    previous_batch_id BLOB NOT NULL,
    status TEXT NOT NULL,
    height INTEGER NOT NULL DEFAULT 0,
    tx_hash TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    sends INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rejections (
    reason TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
"""

ACCEPTED = "accepted"      # stored, not yet in a batch
BATCHED = "batched"        # in a sealed batch
DROPPED = "dropped"        # its device was inactive when the batch was sealed: never anchored
UNANCHORABLE = "unanchorable"  # its batch was refused for a reason re-sealing cannot fix
SEALED = "sealed"          # batch written with its root; its anchor tx may or may not be sent
ANCHORED = "anchored"      # the chain holds the root (height, tx hash known)


@dataclass(frozen=True)
class StoredReading:
    reading: Reading
    received_ms: int
    status: str
    batch_id: bytes | None


@dataclass(frozen=True)
class Batch:
    """A sealed batch: the leaves (reading ids, in order) and the fields MsgAnchorBatch lists."""

    batch_id: bytes
    merkle_root: bytes
    leaves: tuple[bytes, ...]
    devices: tuple[str, ...]
    first_reading_ms: int
    last_reading_ms: int
    reading_count: int
    previous_batch_id: bytes
    status: str = SEALED
    height: int = 0
    tx_hash: str = ""
    error: str = ""
    sends: int = 0


class ReadingStore:
    """The SQLite file of one gateway; thread-safe by one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._db.executescript(SCHEMA)

    @property
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ ingest
    def commit_readings(self, accepted: Iterable[tuple[Reading, int]],
                        progress: Mapping[str, tuple[int, int]],
                        rejected: Mapping[str, int]) -> None:
        """Store accepted readings (with their receive time), the devices' new last seq and
        timestamp, and rejection counts, in one transaction (durable when this returns)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO readings (id, device, stream, seq, ts_ms, value, sig, received_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.reading_id, r.device, r.stream, r.seq, r.ts_ms, r.value, r.sig, received)
                 for r, received in accepted])
            db.executemany(
                "INSERT INTO device_progress (device, last_seq, last_ts_ms) VALUES (?, ?, ?) "
                "ON CONFLICT(device) DO UPDATE SET last_seq = excluded.last_seq, "
                "last_ts_ms = excluded.last_ts_ms",
                [(device, seq, ts) for device, (seq, ts) in sorted(progress.items())])
            db.executemany(
                "INSERT INTO rejections (reason, count) VALUES (?, ?) ON CONFLICT(reason) "
                "DO UPDATE SET count = count + excluded.count",
                sorted(rejected.items()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def device_progress(self) -> dict[str, tuple[int, int]]:
        """device DID -> (last seq, last ts_ms) of its last accepted reading."""
        rows = self._db.execute("SELECT device, last_seq, last_ts_ms FROM device_progress")
        return {device: (seq, ts) for device, seq, ts in rows}

    def has_reading(self, reading_id: bytes) -> bool:
        row = self._db.execute("SELECT 1 FROM readings WHERE id = ?", (reading_id,)).fetchone()
        return row is not None

    def rejection_counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT reason, count FROM rejections ORDER BY reason"))

    # ------------------------------------------------------------------ batches
    def pending(self, limit: int) -> list[tuple[int, Reading, int]]:
        """Up to ``limit`` accepted, unbatched readings in arrival order: (n, reading, received)."""
        rows = self._db.execute(
            "SELECT n, device, stream, seq, ts_ms, value, sig, id, received_ms FROM readings "
            "WHERE status = ? ORDER BY n LIMIT ?", (ACCEPTED, limit))
        return [(n, Reading.stored(d, s, q, t, v, bytes(g), bytes(i)), rec)
                for n, d, s, q, t, v, g, i, rec in rows]

    def pending_summary(self) -> tuple[int, int | None]:
        """(number of unbatched readings, receive time of the oldest or None)."""
        count, oldest = self._db.execute(
            "SELECT COUNT(*), MIN(received_ms) FROM readings WHERE status = ?",
            (ACCEPTED,)).fetchone()
        return int(count), None if oldest is None else int(oldest)

    def last_batch_id(self) -> bytes:
        """The id of the newest batch (empty: none yet)."""
        row = self._db.execute("SELECT id FROM batches ORDER BY n DESC LIMIT 1").fetchone()
        return b"" if row is None else bytes(row[0])

    def seal(self, batches: list[tuple[Batch, list[int]]], dropped: list[int]) -> None:
        """Write sealed batches (each with the ``n`` of its readings) and mark readings of
        inactive devices dropped, in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for batch, numbers in batches:
                db.execute(
                    "INSERT INTO batches (id, merkle_root, leaves, devices, first_reading_ms, "
                    "last_reading_ms, reading_count, previous_batch_id, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (batch.batch_id, batch.merkle_root, b"".join(batch.leaves),
                     json.dumps(list(batch.devices)), batch.first_reading_ms,
                     batch.last_reading_ms, batch.reading_count, batch.previous_batch_id,
                     SEALED))
                db.executemany("UPDATE readings SET status = ?, batch_id = ? WHERE n = ?",
                               [(BATCHED, batch.batch_id, n) for n in numbers])
            db.executemany("UPDATE readings SET status = ? WHERE n = ?",
                           [(DROPPED, n) for n in dropped])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def batches(self, status: str | None = None) -> list[Batch]:
        """Batches in sealing order (only those with ``status`` when given)."""
        query = ("SELECT id, merkle_root, leaves, devices, first_reading_ms, last_reading_ms, "
                 "reading_count, previous_batch_id, status, height, tx_hash, error, sends "
                 "FROM batches")
        rows = (self._db.execute(query + " ORDER BY n") if status is None else
                self._db.execute(query + " WHERE status = ? ORDER BY n", (status,)))
        return [_batch(row) for row in rows]

    def get_batch(self, batch_id: bytes) -> Batch | None:
        row = self._db.execute(
            "SELECT id, merkle_root, leaves, devices, first_reading_ms, last_reading_ms, "
            "reading_count, previous_batch_id, status, height, tx_hash, error, sends "
            "FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else _batch(row)

    def record_send(self, batch_id: bytes) -> None:
        """Count one broadcast of the batch's anchor (written before the tx leaves)."""
        self._db.execute("UPDATE batches SET sends = sends + 1 WHERE id = ?", (batch_id,))

    def mark_anchored(self, batch_id: bytes, height: int, tx_hash: str) -> None:
        self._db.execute("UPDATE batches SET status = ?, height = ?, tx_hash = ?, error = '' "
                         "WHERE id = ?", (ANCHORED, height, tx_hash, batch_id))

    def unseal_from(self, batch_id: bytes, *, unanchorable: bool) -> int:
        """The chain refused batch ``batch_id``: delete it and every later batch (none of them
        was sent: anchoring goes in order) and return their readings to the pending pool, so
        the next seal re-checks their devices and links to the last anchored batch. With
        ``unanchorable`` the refused batch's own readings are set aside instead. Returns the
        number of readings returned to the pool."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT n FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return 0
            ids = [bytes(r[0]) for r in db.execute(
                "SELECT id FROM batches WHERE n >= ? AND status = ? ORDER BY n", (row[0], SEALED))]
            if unanchorable:
                db.execute("UPDATE readings SET status = ?, batch_id = NULL WHERE batch_id = ?",
                           (UNANCHORABLE, batch_id))
            returned = 0
            for each in ids:
                returned += db.execute(
                    "UPDATE readings SET status = ?, batch_id = NULL WHERE batch_id = ?",
                    (ACCEPTED, each)).rowcount
                db.execute("DELETE FROM batches WHERE id = ?", (each,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return returned

    # ------------------------------------------------------------------ reads
    def get_reading(self, reading_id: bytes) -> StoredReading | None:
        row = self._db.execute(
            "SELECT device, stream, seq, ts_ms, value, sig, received_ms, status, batch_id "
            "FROM readings WHERE id = ?", (reading_id,)).fetchone()
        if row is None:
            return None
        device, stream, seq, ts_ms, value, sig, received, status, batch_id = row
        return StoredReading(Reading(device, stream, seq, ts_ms, value, bytes(sig)), received,
                             status, None if batch_id is None else bytes(batch_id))

    def reading_ids(self) -> list[bytes]:
        return [bytes(row[0]) for row in self._db.execute("SELECT id FROM readings ORDER BY n")]

    def anchored_summary(self) -> tuple[int, int, bytes | None]:
        """(anchored batches, readings in them, the first reading id of the latest one)."""
        batches, readings = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(reading_count), 0) FROM batches WHERE status = ?",
            (ANCHORED,)).fetchone()
        row = self._db.execute("SELECT id FROM batches WHERE status = ? ORDER BY n DESC LIMIT 1",
                               (ANCHORED,)).fetchone()
        latest = None if row is None else self.get_batch(bytes(row[0]))
        first = latest.leaves[0] if latest is not None and latest.leaves else None
        return int(batches), int(readings), first

    def counts(self) -> dict[str, int]:
        """Readings by status and batches by status (``readings_<s>``, ``batches_<s>``)."""
        out: dict[str, int] = {}
        for status, count in self._db.execute(
                "SELECT status, COUNT(*) FROM readings GROUP BY status"):
            out[f"readings_{status}"] = int(count)
        for status, count in self._db.execute(
                "SELECT status, COUNT(*) FROM batches GROUP BY status"):
            out[f"batches_{status}"] = int(count)
        return out


def _batch(row: Any) -> Batch:
    (batch_id, root, leaves, devices, first, last, count, previous, status, height, tx_hash,
     error, sends) = row
    blob = bytes(leaves)
    return Batch(bytes(batch_id), bytes(root),
                 tuple(blob[i:i + 32] for i in range(0, len(blob), 32)),
                 tuple(json.loads(str(devices))), int(first), int(last),
                 int(count), bytes(previous), str(status), int(height),
                 str(tx_hash), str(error), int(sends))


class ReadOnlyReadingStore(ReadingStore):
    """The same store opened read-only (``mode=ro`` connections, no schema written), for
    readers beside the gateway such as the NGSI-LD server: they can never write its file."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no reading store at {path}")
        self.path = path
        self._local = threading.local()
        self._connections = []
        self._lock = threading.Lock()

    @property
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                 isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    # ------------------------------------------------------------------ NGSI-LD reads
    def latest_readings(self, device: str) -> list[StoredReading]:
        """The newest reading of each stream of ``device``, by stream name (readings dropped
        or unanchorable are left out: they will never be anchored)."""
        return self.device_readings(device, last=1)

    def device_readings(self, device: str, *, from_ms: int | None = None,
                        to_ms: int | None = None, last: int | None = None
                        ) -> list[StoredReading]:
        """Readings of ``device`` with ``from_ms <= ts_ms < to_ms`` (either bound optional),
        by stream then time; with ``last`` only the newest ``last`` of each stream. Dropped and
        unanchorable readings are left out. (No index on device and time yet: a scan.)"""
        rows = self._db.execute(
            "SELECT device, stream, seq, ts_ms, value, sig, received_ms, status, batch_id FROM ("
            " SELECT *, ROW_NUMBER() OVER (PARTITION BY stream ORDER BY ts_ms DESC) AS rank"
            " FROM readings WHERE device = ? AND status IN (?, ?)"
            " AND (? IS NULL OR ts_ms >= ?) AND (? IS NULL OR ts_ms < ?))"
            " WHERE (? IS NULL OR rank <= ?) ORDER BY stream, ts_ms",
            (device, ACCEPTED, BATCHED, from_ms, from_ms, to_ms, to_ms, last, last))
        return [StoredReading(Reading(d, s, q, t, v, bytes(g)), rec, status,
                              None if b is None else bytes(b))
                for d, s, q, t, v, g, rec, status, b in rows]
