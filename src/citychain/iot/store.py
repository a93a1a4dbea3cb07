"""The gateway's off-chain store: readings by id, sealed batches, per-device progress, in a
SQLite file (the default) or a PostgreSQL database (a ``postgresql://`` or ``postgres://`` URL).

Every write is one transaction, durable when it returns, so a reading whose transaction returned
survives a crash of the process or the machine; the gateway acknowledges readings to the broker
only after that. SQLite: WAL and ``synchronous=FULL`` (fsync at commit). PostgreSQL: every
writing connection sets ``synchronous_commit=on`` (the server's default; COMMIT returns once its
WAL record is flushed to disk) whatever the server is configured with. Writes of several
statements are serialized as SQLite's write lock serializes them: ``BEGIN IMMEDIATE`` on SQLite,
``BEGIN`` and a SHARE ROW EXCLUSIVE lock of the store's tables on PostgreSQL (readers are not
blocked), so row numbers ``n`` follow commit order on both. One connection per thread. The
read-only store never writes: SQLite ``mode=ro`` connections, PostgreSQL sessions with
``default_transaction_read_only``; neither creates the schema.

The SQL is written once, in SQLite's spelling with ``?`` placeholders; :class:`Dialect` holds
the few differences (column types, how a write transaction begins) and the PostgreSQL
connection turns ``?`` into ``%s``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, overload
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from citychain.iot.reading import Reading

if TYPE_CHECKING:
    import psycopg

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_SECONDS = 10
SQLITE_CHECKPOINT_PAGES = 10_000   # WAL pages between automatic checkpoints (~40 MiB)
SQLITE_CACHE_KIB = 65_536          # page cache of each writing connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    n {row_number},
    id {blob} NOT NULL UNIQUE,
    device TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq {integer} NOT NULL,
    ts_ms {integer} NOT NULL,
    value {integer} NOT NULL,
    sig {blob} NOT NULL,
    received_ms {integer} NOT NULL,
    status TEXT NOT NULL DEFAULT 'accepted',
    batch_id {blob},
    series {integer}
);
CREATE INDEX IF NOT EXISTS readings_pending ON readings (status, n);
CREATE TABLE IF NOT EXISTS series (
    n {row_number},
    device TEXT NOT NULL,
    stream TEXT NOT NULL,
    UNIQUE (device, stream)
);
CREATE TABLE IF NOT EXISTS device_progress (
    device TEXT PRIMARY KEY,
    last_seq {integer} NOT NULL,
    last_ts_ms {integer} NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    n {row_number},
    id {blob} NOT NULL UNIQUE,
    merkle_root {blob} NOT NULL UNIQUE,
    leaves {blob} NOT NULL,
    devices TEXT NOT NULL,
    first_reading_ms {integer} NOT NULL,
    last_reading_ms {integer} NOT NULL,
    reading_count {integer} NOT NULL,
    previous_batch_id {blob} NOT NULL,
    status TEXT NOT NULL,
    height {integer} NOT NULL DEFAULT 0,
    tx_hash TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    sends {integer} NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rejections (
    reason TEXT PRIMARY KEY,
    count {integer} NOT NULL
);
CREATE TABLE IF NOT EXISTS reading_counts (
    status TEXT PRIMARY KEY,
    count {integer} NOT NULL
);
INSERT INTO reading_counts (status, count) SELECT status, COUNT(*) FROM readings
    WHERE NOT EXISTS (SELECT 1 FROM reading_counts) GROUP BY status;
CREATE TABLE IF NOT EXISTS progress_mark (
    id {integer} PRIMARY KEY,
    n {integer} NOT NULL
);
INSERT INTO progress_mark (id, n) SELECT 0, (SELECT COALESCE(MAX(n), 0) FROM readings)
    WHERE NOT EXISTS (SELECT 1 FROM progress_mark);
"""
TABLES = ("readings", "device_progress", "batches", "rejections", "reading_counts",
          "progress_mark", "series")
PROGRESS_EVERY = 20_000
"""Readings between two writes of the devices' progress: the progress of the readings after
the last write (row number ``progress_mark.n``) is read back from them on open."""


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends: column types and how transactions begin."""

    name: str
    row_number: str                  # the ``n`` column: a row number growing with each insert
    blob: str
    integer: str                     # 64-bit signed
    begin_write: tuple[str, ...]     # opens a write transaction holding the write lock
    begin_schema: tuple[str, ...]    # opens the transaction creating the tables

    def schema(self) -> list[str]:
        text = SCHEMA.format(row_number=self.row_number, blob=self.blob, integer=self.integer)
        return [statement.strip() for statement in text.split(";") if statement.strip()]


SQLITE = Dialect("sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "INTEGER",
                 ("BEGIN IMMEDIATE",), ("BEGIN IMMEDIATE",))
POSTGRES = Dialect(
    "postgresql", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA", "BIGINT",
    ("BEGIN", f"LOCK TABLE {', '.join(TABLES)} IN SHARE ROW EXCLUSIVE MODE"),
    # the tables may not exist yet: two gateways creating them at once queue on a lock key
    ("BEGIN", "SELECT pg_advisory_xact_lock(hashtext('citychain.iot.store schema'))"))


class ReadingStoreError(Exception):
    """The reading store cannot be opened: no such SQLite file or no tables (read-only), or
    the PostgreSQL server could not be reached or refused us. One line naming the store (a
    URL without its password)."""


class ReadingStoreUnavailableError(ReadingStoreError):
    """The PostgreSQL server was lost while the store was in use: the connection broke (a
    server restart, a failover, a terminated session) or cannot be opened again. The next
    call connects anew. A write that raised it may or may not have committed."""


def is_postgres_location(location: Path | str) -> bool:
    """True when ``location`` is a PostgreSQL URL rather than a SQLite file path."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def redact_url(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (the connection will say how): drop what may be a password
        return re.sub(r"password=[^&]*", "password=...", re.sub(r":[^:/@]*@", "@", url))
    user, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{user.partition(':')[0]}@{hosts}" if at else hosts
    query = urlencode([(key, value) for key, value in parse_qsl(parts.query)
                       if key != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _passwords(url: str) -> list[str]:
    """Every password ``url`` may carry (user part, ``password=`` parameter)."""
    found = re.findall(r"//[^:/@]*:([^@/]+)@", url) + re.findall(r"password=([^&]+)", url)
    return [secret for secret in found if secret]


class PendingLeaf(NamedTuple):
    """What sealing needs of an unbatched reading: its device, timestamp and id."""

    device: str
    ts_ms: int
    reading_id: bytes


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class _Connection(Protocol):
    """The calls the store makes on a connection: sqlite3's, which PostgreSQL's wrapper offers."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> _Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> object: ...

    def close(self) -> None: ...


@lru_cache(maxsize=256)
def _postgres_sql(sql: str) -> str:
    return sql.replace("?", "%s")  # no statement of this module has a literal ? or %


class _PostgresConnection:
    """A psycopg connection (autocommit: the store sends BEGIN and COMMIT itself) taking
    the store's ``?`` placeholders; a broken connection raises
    :class:`ReadingStoreUnavailableError`."""

    def __init__(self, connection: psycopg.Connection[Any], location: str) -> None:
        self._connection = connection
        self._location = location

    @property
    def broken(self) -> bool:
        return bool(self._connection.broken or self._connection.closed)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> _Cursor:
        with self._unavailable_when_broken():
            return self._connection.execute(_postgres_sql(sql), parameters)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> object:
        with self._unavailable_when_broken(), self._connection.cursor() as cursor:
            cursor.executemany(_postgres_sql(sql), list(rows))
        return None

    @contextmanager
    def _unavailable_when_broken(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.OperationalError as exc:
            if not self.broken:
                raise
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise ReadingStoreUnavailableError(
                f"lost the connection to the reading store {self._location}: {reason}"
            ) from None

    def close(self) -> None:
        self._connection.close()


class _Backend(Protocol):
    dialect: Dialect
    location: str            # for messages: a file path, or a URL without its password
    path: Path | None

    def connect(self) -> _Connection: ...

    def check_present(self, db: _Connection) -> None: ...

    def has_table(self, db: _Connection, name: str) -> bool: ...

    def has_column(self, db: _Connection, table: str, column: str) -> bool: ...


class _SqliteBackend:
    dialect = SQLITE

    def __init__(self, path: Path, *, read_only: bool) -> None:
        self.path: Path | None = path
        self.location = str(path)
        self.read_only = read_only
        if read_only and not path.exists():
            raise ReadingStoreError(f"no reading store at {path}")
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)

    def connect(self) -> _Connection:
        if self.path is None:
            raise ReadingStoreError("no SQLite path")
        if self.read_only:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                 isolation_level=None, check_same_thread=False)
        else:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # The reading ids are random, so each chunk's commit rewrites about one page of
            # their index per reading. A checkpoint every 10,000 WAL pages (SQLite's default:
            # 1,000) copies a page rewritten by several commits once, and a 64 MiB page cache
            # keeps the index in memory: ~15 -> ~12 us per insert with 150,000 stored.
            db.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
            db.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        db.execute("PRAGMA busy_timeout=10000")
        return db

    def check_present(self, db: _Connection) -> None:
        return None  # the file exists (checked at open)

    def has_table(self, db: _Connection, name: str) -> bool:
        return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (name,)).fetchone() is not None

    def has_column(self, db: _Connection, table: str, column: str) -> bool:
        return db.execute("SELECT 1 FROM pragma_table_info(?) WHERE name = ?",
                          (table, column)).fetchone() is not None


class _PostgresBackend:
    dialect = POSTGRES
    path: Path | None = None

    def __init__(self, url: str, *, read_only: bool) -> None:
        self.url = url
        self.location = redact_url(url)
        self.read_only = read_only

    def connect(self) -> _Connection:
        """A new session: read-only, or with ``synchronous_commit=on``.

        Raises:
            ReadingStoreError: the server cannot be reached or refused the connection.
        """
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            settings: dict[str, Any] = {}
            if "connect_timeout" not in conninfo_to_dict(self.url):
                settings["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
            connection = psycopg.connect(self.url, autocommit=True, **settings)
        except psycopg.Error as exc:
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            reason = reason.replace(self.url, self.location)  # libpq may quote the URL
            for secret in _passwords(self.url):
                reason = reason.replace(secret, "***")
            raise ReadingStoreError(f"cannot connect to the reading store {self.location}: "
                                    f"{reason}") from None
        setting = ("default_transaction_read_only" if self.read_only else "synchronous_commit")
        connection.execute(f"SET {setting} = on")
        return _PostgresConnection(connection, self.location)

    def check_present(self, db: _Connection) -> None:
        if not self.has_table(db, "readings"):
            raise ReadingStoreError(f"no reading store at {self.location} (no readings table)")

    def has_table(self, db: _Connection, name: str) -> bool:
        row = db.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()
        return bool(row[0])

    def has_column(self, db: _Connection, table: str, column: str) -> bool:
        return db.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = "
                          "current_schema() AND table_name = ? AND column_name = ?",
                          (table, column)).fetchone() is not None


def _backend(location: Path | str, *, read_only: bool) -> _Backend:
    if is_postgres_location(location):
        return _PostgresBackend(str(location), read_only=read_only)
    return _SqliteBackend(Path(location), read_only=read_only)


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
    """The store of one gateway (a SQLite file, or a PostgreSQL database when ``location`` is a
    ``postgresql://`` URL), its tables created if missing; thread-safe by one connection per
    thread.

    Raises:
        ReadingStoreError: PostgreSQL cannot be reached or refused the connection.
    """

    _series: dict[tuple[str, str], int] | None

    def __init__(self, location: Path | str) -> None:
        self._open(_backend(location, read_only=False))
        with self._transaction(self._dialect.begin_schema) as db:
            for statement in self._dialect.schema():
                db.execute(statement)
            self._number_series(db)
        # the next progress write covers the readings stored after the last one, too
        unsaved, count = self._progress_after_mark()
        self._unsaved_progress.update(unsaved)
        self._unsaved_readings = count

    def _number_series(self, db: _Connection) -> None:
        """Index the readings by series: a number for each (device, stream), kept in the
        ``series`` table, and ``readings_series`` on (series, ts_ms) for the NGSI-LD reads. A
        store from before the numbers gets them here, and loses the index on (device, stream,
        ts_ms) they replace: its text keys made it ~3x larger, and at 10,000 devices each
        chunk rewrote about one of its pages per reading (~6 us per reading at ingest, against
        ~2 for the numbers)."""
        if not self._backend.has_column(db, "readings", "series"):
            db.execute(f"ALTER TABLE readings ADD COLUMN series {self._dialect.integer}")
            db.execute("INSERT INTO series (device, stream) SELECT DISTINCT device, stream "
                       "FROM readings ORDER BY device, stream")
            db.execute("UPDATE readings SET series = (SELECT n FROM series WHERE "
                       "series.device = readings.device AND series.stream = readings.stream)")
        db.execute("CREATE INDEX IF NOT EXISTS readings_series ON readings (series, ts_ms)")
        db.execute("DROP INDEX IF EXISTS readings_device")

    def _series_numbers(self, db: _Connection, readings: Iterable[Reading]
                        ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """(the series numbers known, those ``readings`` add), the new ones written in the
        caller's transaction; the caller keeps them once it has committed."""
        known = self._series
        if known is None:
            known = self._series = {(str(device), str(stream)): int(n) for n, device, stream
                                    in db.execute("SELECT n, device, stream FROM series")}
        added: dict[tuple[str, str], int] = {}
        for reading in readings:
            pair = (reading.device, reading.stream)
            if pair in known or pair in added:
                continue
            # another gateway on the same PostgreSQL store may have numbered it meanwhile
            db.execute("INSERT INTO series (device, stream) VALUES (?, ?) "
                       "ON CONFLICT (device, stream) DO NOTHING", pair)
            (added[pair],) = db.execute("SELECT n FROM series WHERE device = ? AND stream = ?",
                                        pair).fetchone()
        return known, added

    def _open(self, backend: _Backend) -> None:
        self._backend = backend
        self._dialect = backend.dialect
        self.path = backend.path            # the SQLite file (None for PostgreSQL)
        self.location = backend.location    # the file, or the URL without its password
        self._local = threading.local()
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        # This process's writers queue here rather than in SQLite's busy handler, which
        # polls with sleeps of up to 100 ms (the ingest and seal threads write in turn).
        self._write_lock = threading.Lock()
        self._unsaved_progress: dict[str, tuple[int, int]] = {}  # of the writing thread
        self._unsaved_readings = 0
        self._series = None  # (device, stream) -> series number, loaded by the first commit
        self._db  # noqa: B018  (connect now: a bad URL fails here, not in a worker thread)

    @property
    def _db(self) -> _Connection:
        """This thread's connection; one the server broke (PostgreSQL) is replaced.

        Raises:
            ReadingStoreError: the first connection cannot be opened.
            ReadingStoreUnavailableError: the server broke this thread's connection and a new
                one cannot be opened yet.
        """
        db: _Connection | None = getattr(self._local, "db", None)
        if db is not None and not getattr(db, "broken", False):
            return db
        if db is not None:
            with self._lock:
                self._connections.remove(db)
            db.close()
            self._local.db = None
            self._local.lost = True
        try:
            db = self._backend.connect()
        except ReadingStoreError as exc:
            if getattr(self._local, "lost", False):
                raise ReadingStoreUnavailableError(str(exc)) from None
            raise
        self._local.db, self._local.lost = db, False
        with self._lock:
            self._connections.append(db)
        return db

    @contextmanager
    def _transaction(self, begin: tuple[str, ...] | None = None) -> Iterator[_Connection]:
        """One write transaction (holding the write lock), committed when the block ends and
        rolled back when it raises."""
        db = self._db
        first, *rest = begin or self._dialect.begin_write
        with self._write_lock:
            db.execute(first)
            try:
                for statement in rest:
                    db.execute(statement)
                yield db
            except BaseException:
                with suppress(ReadingStoreUnavailableError):  # gone with the connection
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ ingest
    def commit_readings(self, accepted: Sequence[tuple[Reading, int]],
                        progress: Mapping[str, tuple[int, int]],
                        rejected: Mapping[str, int]) -> None:
        """Store accepted readings (with their receive time) and rejection counts in one
        transaction (durable when this returns). ``progress`` (each device's new last seq and
        timestamp) is written every :data:`PROGRESS_EVERY` readings, with the row number it
        covers: until then the readings themselves hold it (:meth:`device_progress`). At
        10,000 devices a chunk of 500 readings names ~500 devices, and one progress write per
        reading was ~3 us of the ~70 the gateway spends on it."""
        unsaved = {**self._unsaved_progress, **progress}
        due = self._unsaved_readings + len(accepted) >= PROGRESS_EVERY
        with self._transaction() as db:
            known, added = self._series_numbers(db, (r for r, _ in accepted))
            series = {**known, **added} if added else known
            db.executemany(
                "INSERT INTO readings (id, device, stream, series, seq, ts_ms, value, sig, "
                "received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.reading_id, r.device, r.stream, series[r.device, r.stream], r.seq, r.ts_ms,
                  r.value, r.sig, received) for r, received in accepted])
            self._count(db, {ACCEPTED: len(accepted)})
            if due:
                self._write_progress(db, unsaved)
            db.executemany(
                "INSERT INTO rejections (reason, count) VALUES (?, ?) ON CONFLICT(reason) "
                "DO UPDATE SET count = rejections.count + excluded.count",
                sorted(rejected.items()))
        # only once committed: a failed transaction leaves the unsaved progress as it was
        known.update(added)
        if due:
            self._unsaved_progress, self._unsaved_readings = {}, 0
        else:
            self._unsaved_progress = unsaved
            self._unsaved_readings += len(accepted)

    @staticmethod
    def _write_progress(db: _Connection, progress: Mapping[str, tuple[int, int]]) -> None:
        db.executemany(
            "INSERT INTO device_progress (device, last_seq, last_ts_ms) VALUES (?, ?, ?) "
            "ON CONFLICT(device) DO UPDATE SET last_seq = excluded.last_seq, "
            "last_ts_ms = excluded.last_ts_ms",
            [(device, seq, ts) for device, (seq, ts) in sorted(progress.items())])
        db.execute("UPDATE progress_mark SET n = (SELECT COALESCE(MAX(n), 0) FROM readings) "
                   "WHERE id = 0")

    def device_progress(self) -> dict[str, tuple[int, int]]:
        """device DID -> (last seq, last ts_ms) of its last accepted reading: the progress
        written last, then the readings stored after it (seq and ts_ms only grow, so their
        maxima are the last reading's)."""
        progress = {device: (seq, ts) for device, seq, ts in self._db.execute(
            "SELECT device, last_seq, last_ts_ms FROM device_progress")}
        for device, (seq, ts) in self._progress_after_mark()[0].items():
            last_seq, last_ts = progress.get(device, (-1, -1))
            progress[device] = (max(last_seq, seq), max(last_ts, ts))
        return progress

    def _progress_after_mark(self) -> tuple[dict[str, tuple[int, int]], int]:
        """The progress of the readings stored after the last progress write, and how many
        they are (none in a store from before the mark not yet opened for writing)."""
        db = self._db
        if not self._backend.has_table(db, "progress_mark"):
            return {}, 0
        (mark,) = db.execute("SELECT n FROM progress_mark WHERE id = 0").fetchone()
        progress: dict[str, tuple[int, int]] = {}
        count = 0
        for device, seq, ts, readings in db.execute(
                "SELECT device, MAX(seq), MAX(ts_ms), COUNT(*) FROM readings WHERE n > ? "
                "GROUP BY device", (mark,)):
            progress[str(device)] = (int(seq), int(ts))
            count += int(readings)
        return progress, count

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

    def pending_leaves(self, limit: int) -> list[tuple[int, PendingLeaf]]:
        """Up to ``limit`` accepted, unbatched readings in arrival order, as (n, leaf): only
        what sealing reads (cheaper than :meth:`pending` by the columns and objects)."""
        rows = self._db.execute(
            "SELECT n, device, ts_ms, id FROM readings WHERE status = ? ORDER BY n LIMIT ?",
            (ACCEPTED, limit))
        return [(n, PendingLeaf(d, t, bytes(i))) for n, d, t, i in rows]

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
        """Write sealed batches (each with the ``n`` of its readings, in order) and mark
        readings of inactive devices dropped, in one transaction.

        The readings sealed and dropped together are the oldest unbatched ones, so once the
        dropped are marked, the unbatched readings between a batch's first and last ``n`` are
        exactly its own: each batch takes them with one ranged UPDATE (checked by its count).

        Raises:
            ValueError: the ``n`` of a batch are not the unbatched readings of their range
                (nothing is written).
        """
        with self._transaction() as db:
            moved = {DROPPED: sum(db.execute(
                "UPDATE readings SET status = ? WHERE n = ? AND status = ?",
                (DROPPED, n, ACCEPTED)).rowcount for n in dropped), BATCHED: 0}
            for batch, numbers in batches:
                db.execute(
                    "INSERT INTO batches (id, merkle_root, leaves, devices, first_reading_ms, "
                    "last_reading_ms, reading_count, previous_batch_id, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (batch.batch_id, batch.merkle_root, b"".join(batch.leaves),
                     json.dumps(list(batch.devices)), batch.first_reading_ms,
                     batch.last_reading_ms, batch.reading_count, batch.previous_batch_id,
                     SEALED))
                changed = db.execute(
                    "UPDATE readings SET status = ?, batch_id = ? "
                    "WHERE status = ? AND n BETWEEN ? AND ?",
                    (BATCHED, batch.batch_id, ACCEPTED, numbers[0], numbers[-1])).rowcount
                if changed != len(numbers):
                    raise ValueError(f"batch {batch.batch_id.hex()[:16]}: {changed} unbatched "
                                     f"readings in n {numbers[0]}..{numbers[-1]}, "
                                     f"{len(numbers)} expected")
                moved[BATCHED] += changed
            self._count(db, {ACCEPTED: -sum(moved.values()), **moved})

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

    def record_sends(self, batch_ids: Sequence[bytes]) -> None:
        """Count one broadcast of each batch's anchor (written before the txs leave), in one
        transaction."""
        with self._transaction() as db:
            db.executemany("UPDATE batches SET sends = sends + 1 WHERE id = ?",
                           [(batch_id,) for batch_id in batch_ids])

    def mark_anchored(self, batch_id: bytes, height: int, tx_hash: str) -> None:
        self.mark_all_anchored([(batch_id, height, tx_hash)])

    def mark_all_anchored(self, anchored: Sequence[tuple[bytes, int, str]]) -> None:
        """Record batches as anchored: (batch id, height, tx hash) each, in one transaction."""
        with self._transaction() as db:
            db.executemany("UPDATE batches SET status = ?, height = ?, tx_hash = ?, error = '' "
                           "WHERE id = ?", [(ANCHORED, height, tx_hash, batch_id)
                                            for batch_id, height, tx_hash in anchored])

    def unseal_from(self, batch_id: bytes, *, unanchorable: bool) -> int:
        """The chain refused batch ``batch_id``: delete it and every later batch (none of them
        was sent: anchoring goes in order) and return their readings to the pending pool, so
        the next seal re-checks their devices and links to the last anchored batch. With
        ``unanchorable`` the refused batch's own readings are set aside instead. Returns the
        number of readings returned to the pool."""
        with self._transaction() as db:
            row = db.execute("SELECT n FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return 0
            ids = [bytes(r[0]) for r in db.execute(
                "SELECT id FROM batches WHERE n >= ? AND status = ? ORDER BY n", (row[0], SEALED))]
            set_aside = db.execute(
                "UPDATE readings SET status = ?, batch_id = NULL WHERE batch_id = ?",
                (UNANCHORABLE, batch_id)).rowcount if unanchorable else 0
            returned = 0
            for each in ids:
                returned += db.execute(
                    "UPDATE readings SET status = ?, batch_id = NULL WHERE batch_id = ?",
                    (ACCEPTED, each)).rowcount
                db.execute("DELETE FROM batches WHERE id = ?", (each,))
            self._count(db, {BATCHED: -set_aside - returned, UNANCHORABLE: set_aside,
                             ACCEPTED: returned})
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

    @staticmethod
    def _count(db: _Connection, changes: Mapping[str, int]) -> None:
        """Add ``changes`` (status -> readings gained, or lost when negative) to the kept
        counts of readings by status, in the caller's transaction."""
        db.executemany(
            "INSERT INTO reading_counts (status, count) VALUES (?, ?) ON CONFLICT(status) "
            "DO UPDATE SET count = reading_counts.count + excluded.count",
            [(status, change) for status, change in sorted(changes.items()) if change])

    def counts(self) -> dict[str, int]:
        """Readings by status and batches by status (``readings_<s>``, ``batches_<s>``; none
        for a status without any). The readings' counts are kept with every write that changes
        them (a ``GROUP BY`` of the readings scans them all, and the gateway's stats line asks
        every few seconds); a store whose gateway has not opened it since is counted."""
        out: dict[str, int] = {}
        counted = self._backend.has_table(self._db, "reading_counts")
        for status, count in self._db.execute(
                "SELECT status, count FROM reading_counts WHERE count > 0 ORDER BY status"
                if counted else "SELECT status, COUNT(*) FROM readings GROUP BY status"):
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
    """The same store opened read-only (SQLite ``mode=ro`` connections, PostgreSQL read-only
    sessions; no schema written), for readers beside the gateway such as the NGSI-LD server:
    they can never write its data.

    Raises:
        ReadingStoreError: no such SQLite file, no tables in the PostgreSQL database, or the
            server cannot be reached.
    """

    def __init__(self, location: Path | str) -> None:
        self._open(_backend(location, read_only=True))
        self._backend.check_present(self._db)
        self._numbered = False  # readings carry their series (a gateway opened the store)

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
        unanchorable readings are left out.

        Reads the device's series (one per stream) from the ``series`` table, then each
        series' readings in the window from its newest back through the ``readings_series``
        index (series, time), so the cost follows what is returned, not the size of the store.
        A store no gateway has opened since before the series has no such index: its readings
        are scanned."""
        db = self._db
        low = _INT64_MIN if from_ms is None else min(max(from_ms, _INT64_MIN), _INT64_MAX)
        high = _INT64_MAX if to_ms is None else min(max(to_ms - 1, _INT64_MIN), _INT64_MAX)
        limit = _INT64_MAX if last is None else last
        self._numbered = self._numbered or self._backend.has_column(db, "readings", "series")
        if self._numbered:
            streams = [(str(stream), db.execute(
                "SELECT seq, ts_ms, value, sig, received_ms, status, batch_id FROM readings"
                " WHERE series = ? AND ts_ms BETWEEN ? AND ? AND status IN (?, ?)"
                " ORDER BY ts_ms DESC LIMIT ?",
                (number, low, high, ACCEPTED, BATCHED, limit)).fetchall())
                for number, stream in db.execute(
                    "SELECT n, stream FROM series WHERE device = ? ORDER BY stream",
                    (device,)).fetchall()]
        else:
            rows = db.execute(
                "SELECT stream, seq, ts_ms, value, sig, received_ms, status, batch_id"
                " FROM readings WHERE device = ? AND ts_ms BETWEEN ? AND ? AND status IN (?, ?)"
                " ORDER BY stream, ts_ms DESC", (device, low, high, ACCEPTED, BATCHED))
            by_stream: dict[str, list[Any]] = {}
            for stream, *row in rows:
                by_stream.setdefault(str(stream), []).append(row)
            streams = [(stream, found[:limit]) for stream, found in by_stream.items()]
        return [StoredReading(Reading(device, stream, seq, ts, value, bytes(sig)), received,
                              status, None if batch is None else bytes(batch))
                for stream, rows in streams
                for seq, ts, value, sig, received, status, batch in reversed(rows)]


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@overload
def open_reading_store(location: Path | str, *, read_only: Literal[True]) -> ReadOnlyReadingStore:
    ...


@overload
def open_reading_store(location: Path | str, *, read_only: bool = False) -> ReadingStore: ...


def open_reading_store(location: Path | str, *, read_only: bool = False) -> ReadingStore:
    """The reading store at ``location``: a ``postgresql://`` (or ``postgres://``) URL is a
    PostgreSQL database, anything else a SQLite file; ``read_only`` opens it for reading only.

    Raises:
        ReadingStoreError: see :class:`ReadingStore` and :class:`ReadOnlyReadingStore`.
    """
    return ReadOnlyReadingStore(location) if read_only else ReadingStore(location)
