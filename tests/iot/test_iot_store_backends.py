"""The reading store behaves the same on SQLite and on a real PostgreSQL: ingest (readings,
progress, rejections in one transaction), sealing, unsealing and anchoring, reads, the read-only
store that cannot write, and a clear error (also from the CLI's --store) for a PostgreSQL that
cannot be reached."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from iot_harness import free_port
from typer.testing import CliRunner

from citychain.cli.main import app as cli_app
from citychain.core.crypto import PrivateKey
from citychain.iot import store as store_module
from citychain.iot.reading import Reading, sign_reading
from citychain.iot.store import (
    ACCEPTED,
    ANCHORED,
    BATCHED,
    DROPPED,
    SEALED,
    UNANCHORABLE,
    Batch,
    PendingLeaf,
    ReadingStore,
    ReadingStoreError,
    ReadOnlyReadingStore,
    open_reading_store,
    redact_url,
)
from citychain.testing.postgres import PostgresServer

CHAIN_ID = "store-city"
KEY_A = PrivateKey.from_secret("store-test/a")
KEY_B = PrivateKey.from_secret("store-test/b")
T0 = 1_800_000_000_000
WRITE_REFUSED = (sqlite3.OperationalError, psycopg.errors.ReadOnlySqlTransaction)
DUPLICATE = (sqlite3.IntegrityError, psycopg.errors.UniqueViolation)


def readings(key: PrivateKey, count: int, *, stream: str = "pm25", start: int = 1,
             step_ms: int = 1000) -> list[Reading]:
    return [sign_reading(key, CHAIN_ID, stream, start + i, T0 + (start + i) * step_ms, 10 + i)
            for i in range(count)]


def batch_of(store: ReadingStore, pending: list[tuple[int, Reading, int]], tag: bytes
             ) -> tuple[Batch, list[int]]:
    ids = tuple(reading.reading_id for _, reading, _ in pending)
    batch = Batch(tag * 32, bytes(reversed(tag)) * 32, ids,
                  tuple(sorted({reading.device for _, reading, _ in pending})),
                  min(reading.ts_ms for _, reading, _ in pending),
                  max(reading.ts_ms for _, reading, _ in pending), len(ids),
                  store.last_batch_id())
    return batch, [n for n, _, _ in pending]


@pytest.fixture
def store(store_location: Path | str) -> Iterator[ReadingStore]:
    opened = open_reading_store(store_location)
    try:
        yield opened
    finally:
        opened.close()


def test_commit_readings_stores_progress_and_rejections(store: ReadingStore) -> None:
    first, second = readings(KEY_A, 3), readings(KEY_B, 2)
    store.commit_readings([(r, T0 + 5) for r in first], {KEY_A.did: (3, first[-1].ts_ms)},
                          {"bad_signature": 2, "replayed": 1})
    store.commit_readings([(r, T0 + 9) for r in second], {KEY_B.did: (2, second[-1].ts_ms)},
                          {"replayed": 4})

    assert store.device_progress() == {KEY_A.did: (3, first[-1].ts_ms),
                                       KEY_B.did: (2, second[-1].ts_ms)}
    assert store.rejection_counts() == {"bad_signature": 2, "replayed": 5}
    assert store.has_reading(first[0].reading_id)
    assert not store.has_reading(bytes(32))
    assert store.reading_ids() == [r.reading_id for r in first + second]
    assert [(reading, received) for _, reading, received in store.pending(10)] == [
        *((r, T0 + 5) for r in first), *((r, T0 + 9) for r in second)]
    assert [reading for _, reading, _ in store.pending(2)] == first[:2]
    assert store.pending_summary() == (5, T0 + 5)
    stored = store.get_reading(second[1].reading_id)
    assert stored is not None
    assert stored.reading == second[1] and stored.reading.reading_id == second[1].reading_id
    assert (stored.received_ms, stored.status, stored.batch_id) == (T0 + 9, ACCEPTED, None)
    assert store.get_reading(bytes(32)) is None
    assert store.counts() == {"readings_accepted": 5}


def test_invalid_duplicate_reading_rolls_back_the_whole_commit(store: ReadingStore) -> None:
    first = readings(KEY_A, 2)
    store.commit_readings([(first[0], T0)], {KEY_A.did: (1, first[0].ts_ms)}, {})
    with pytest.raises(DUPLICATE):
        store.commit_readings([(first[1], T0), (first[0], T0)],
                              {KEY_A.did: (2, first[1].ts_ms)}, {"replayed": 1})
    assert store.reading_ids() == [first[0].reading_id]
    assert store.device_progress() == {KEY_A.did: (1, first[0].ts_ms)}
    assert store.rejection_counts() == {}
    store.commit_readings([(first[1], T0)], {KEY_A.did: (2, first[1].ts_ms)}, {})  # usable
    assert store.pending_summary() == (2, T0)


def written_progress(store: ReadingStore) -> dict[str, tuple[int, int]]:
    """The rows of device_progress only (what was written at the last mark)."""
    rows = store._db.execute("SELECT device, last_seq, last_ts_ms FROM device_progress")
    return {device: (int(seq), int(ts)) for device, seq, ts in rows}


def test_progress_is_written_every_so_many_readings_and_read_back_from_them(
        store_location: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "PROGRESS_EVERY", 5)
    a, b = readings(KEY_A, 8), readings(KEY_B, 3)
    expected: dict[str, tuple[int, int]] = {}
    store = open_reading_store(store_location)
    try:
        for chunk in ([a[0], b[0]], [a[1], a[2]], [b[1], a[3]], [a[4]], [b[2], a[5]]):
            touched = {r.device: (r.seq, r.ts_ms) for r in chunk}
            store.commit_readings([(r, T0) for r in chunk], touched, {})
            expected.update(touched)
            assert store.device_progress() == expected
            with closing(open_reading_store(store_location, read_only=True)) as reader:
                assert reader.device_progress() == expected
        # written with the third chunk (6 readings), not since: the later ones are read back
        assert written_progress(store) == {KEY_A.did: (4, a[3].ts_ms), KEY_B.did: (2, b[1].ts_ms)}
    finally:
        store.close()
    with closing(open_reading_store(store_location)) as reopened:  # what a restarted gateway reads
        assert reopened.device_progress() == expected
        with pytest.raises(DUPLICATE):  # a failed commit keeps the progress not yet written
            reopened.commit_readings([(a[6], T0), (a[5], T0)], {KEY_A.did: (7, a[6].ts_ms)}, {})
        reopened.commit_readings([(a[6], T0)], {KEY_A.did: (7, a[6].ts_ms)}, {})
        expected[KEY_A.did] = (7, a[6].ts_ms)
        assert reopened.device_progress() == expected
        assert written_progress(reopened) == {KEY_A.did: (4, a[3].ts_ms),
                                              KEY_B.did: (2, b[1].ts_ms)}
        # the next write also covers what was stored after the last one before the restart
        # (b's third reading): a mark past it must not leave it out
        reopened.commit_readings([(a[7], T0)], {KEY_A.did: (8, a[7].ts_ms)}, {})
        expected[KEY_A.did] = (8, a[7].ts_ms)
        assert written_progress(reopened) == reopened.device_progress() == expected


def test_a_store_from_before_the_progress_mark_keeps_its_progress(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(open_reading_store(path)) as store:
        first = readings(KEY_A, 3)
        store.commit_readings([(r, T0) for r in first], {KEY_A.did: (3, first[-1].ts_ms)}, {})
        store._write_progress(store._db, {KEY_A.did: (3, first[-1].ts_ms)})  # as it was
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE progress_mark")
    with closing(open_reading_store(path, read_only=True)) as reader:  # e.g. an NGSI-LD server
        assert reader.device_progress() == {KEY_A.did: (3, first[-1].ts_ms)}
    # opened for writing, the mark starts after every stored reading
    with closing(open_reading_store(path)) as upgraded:
        assert upgraded._db.execute("SELECT n FROM progress_mark").fetchone() == (3,)
        assert upgraded.device_progress() == {KEY_A.did: (3, first[-1].ts_ms)}


def counted(store: ReadingStore) -> dict[str, int]:
    """The readings by status as a scan of them gives it (what ``counts()`` keeps)."""
    return {f"readings_{status}": int(count) for status, count in store._db.execute(
        "SELECT status, COUNT(*) FROM readings GROUP BY status")}


def kept_counts(store: ReadingStore) -> dict[str, int]:
    return {key: value for key, value in store.counts().items() if key.startswith("readings_")}


def test_a_store_from_before_the_kept_counts_is_counted_then_keeps_them(
        store_location: Path | str) -> None:
    chunk = readings(KEY_A, 4)
    with closing(open_reading_store(store_location)) as store:
        store.commit_readings([(r, T0) for r in chunk], {}, {})
        pending = store.pending(10)
        store.seal([batch_of(store, pending[:2], b"\x01")], dropped=[pending[2][0]])
        store._db.execute("DROP TABLE reading_counts")  # as a store from before them
    expected = {"readings_accepted": 1, "readings_batched": 2, "readings_dropped": 1}
    with closing(open_reading_store(store_location, read_only=True)) as reader:
        assert reader.counts() == {**expected, "batches_sealed": 1}  # scanned
    with closing(open_reading_store(store_location)) as upgraded:  # counted once, then kept
        assert kept_counts(upgraded) == expected == counted(upgraded)
        upgraded.seal([batch_of(upgraded, upgraded.pending(1), b"\x02")], dropped=[])
        assert kept_counts(upgraded) == counted(upgraded) == {
            "readings_batched": 3, "readings_dropped": 1}


def test_seal_anchor_and_unseal_from(store: ReadingStore) -> None:
    chunk = readings(KEY_A, 6) + readings(KEY_B, 2)
    store.commit_readings([(r, T0 + i) for i, r in enumerate(chunk)], {}, {})
    assert store.last_batch_id() == b""
    pending = store.pending(10)
    first = batch_of(store, pending[:3], b"\x01")
    store.seal([first], dropped=[pending[6][0]])
    second = batch_of(store, pending[3:6], b"\x02")
    store.seal([second], dropped=[])
    assert store.last_batch_id() == second[0].batch_id
    assert [b.batch_id for b in store.batches()] == [first[0].batch_id, second[0].batch_id]
    assert store.batches(SEALED) == [first[0], second[0]]
    assert store.get_batch(second[0].batch_id) == second[0]
    assert store.get_batch(bytes(32)) is None
    assert [reading for _, reading, _ in store.pending(10)] == [chunk[7]]
    stored = store.get_reading(chunk[1].reading_id)
    assert stored is not None and (stored.status, stored.batch_id) == (BATCHED,
                                                                       first[0].batch_id)
    dropped = store.get_reading(chunk[6].reading_id)
    assert dropped is not None and dropped.status == DROPPED

    store.record_sends([first[0].batch_id])
    store.record_sends([first[0].batch_id])
    store.mark_anchored(first[0].batch_id, 12, "AB" * 32)
    anchored = store.get_batch(first[0].batch_id)
    assert anchored is not None
    assert (anchored.status, anchored.height, anchored.tx_hash, anchored.sends) == (
        ANCHORED, 12, "AB" * 32, 2)
    assert store.anchored_summary() == (1, 3, chunk[0].reading_id)

    assert store.unseal_from(bytes(32), unanchorable=False) == 0
    assert store.unseal_from(second[0].batch_id, unanchorable=False) == 3
    assert [b.batch_id for b in store.batches()] == [first[0].batch_id]
    assert [reading for _, reading, _ in store.pending(10)] == [*chunk[3:6], chunk[7]]
    assert kept_counts(store) == counted(store)
    assert store.counts() == {"readings_accepted": 4, "readings_batched": 3,
                              "readings_dropped": 1, "batches_anchored": 1}

    third = batch_of(store, store.pending(2), b"\x03")
    fourth = batch_of(store, store.pending(10)[2:], b"\x04")
    store.seal([third, fourth], dropped=[])
    assert store.unseal_from(third[0].batch_id, unanchorable=True) == 2
    assert [store.get_reading(r.reading_id).status for r in chunk[3:5]  # type: ignore[union-attr]
            ] == [UNANCHORABLE, UNANCHORABLE]
    assert [reading for _, reading, _ in store.pending(10)] == [chunk[5], chunk[7]]
    assert store.last_batch_id() == first[0].batch_id
    assert kept_counts(store) == counted(store) == {
        "readings_accepted": 2, "readings_batched": 3, "readings_dropped": 1,
        "readings_unanchorable": 2}


def test_pending_leaves_and_a_seal_must_take_every_unbatched_reading_of_its_range(
        store: ReadingStore) -> None:
    chunk = readings(KEY_A, 5)
    store.commit_readings([(r, T0) for r in chunk], {}, {})
    pending = store.pending(10)
    assert store.pending_leaves(3) == [
        (n, PendingLeaf(r.device, r.ts_ms, r.reading_id)) for n, r, _ in pending[:3]]
    skipping = batch_of(store, [pending[0], pending[1], pending[3]], b"\x01")
    with pytest.raises(ValueError, match=r"4 unbatched readings in n \d+\.\.\d+, 3 expected"):
        store.seal([skipping], dropped=[])
    assert store.batches() == [] and store.pending_summary() == (5, T0)  # nothing written
    store.seal([skipping], dropped=[pending[2][0]])  # the reading skipped is dropped: fine
    assert [store.get_reading(r.reading_id).status for r in chunk  # type: ignore[union-attr]
            ] == [BATCHED, BATCHED, DROPPED, BATCHED, ACCEPTED]
    assert kept_counts(store) == counted(store)  # the refused seal changed no count either


def test_writes_from_many_threads_each_with_its_own_connection(store: ReadingStore) -> None:
    keys = [PrivateKey.from_secret(f"store-test/thread-{i}") for i in range(4)]
    failures: list[BaseException] = []

    def ingest(key: PrivateKey) -> None:
        try:
            for chunk in range(10):
                batch = readings(key, 5, start=1 + chunk * 5)
                store.commit_readings([(r, T0) for r in batch],
                                      {key.did: (batch[-1].seq, batch[-1].ts_ms)},
                                      {"replayed": 1})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ingest, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert store.pending_summary() == (200, T0)
    assert store.rejection_counts() == {"replayed": 40}
    assert store.device_progress() == {key.did: (50, T0 + 50_000) for key in keys}
    numbers = [n for n, _, _ in store.pending(500)]
    assert numbers == sorted(numbers)
    assert kept_counts(store) == counted(store) == {"readings_accepted": 200}


def test_read_only_store_reads_and_refuses_writes(store: ReadingStore,
                                                  store_location: Path | str) -> None:
    batch = readings(KEY_A, 2)
    store.commit_readings([(r, T0) for r in batch], {KEY_A.did: (2, batch[-1].ts_ms)}, {})
    reader = open_reading_store(store_location, read_only=True)
    try:
        assert isinstance(reader, ReadOnlyReadingStore)
        assert reader.reading_ids() == [r.reading_id for r in batch]
        more = readings(KEY_A, 1, start=3)
        with pytest.raises(WRITE_REFUSED):
            reader.commit_readings([(more[0], T0)], {KEY_A.did: (3, more[0].ts_ms)}, {})
        with pytest.raises(WRITE_REFUSED):
            reader.record_sends([bytes(32)])
        with pytest.raises(WRITE_REFUSED):
            reader.seal([], dropped=[1])
    finally:
        reader.close()
    assert store.reading_ids() == [r.reading_id for r in batch]
    assert store.device_progress() == {KEY_A.did: (2, batch[-1].ts_ms)}


def test_device_readings_from_to_and_last(store: ReadingStore,
                                          store_location: Path | str) -> None:
    pm25 = readings(KEY_A, 5, step_ms=2000)                        # ts T0+2000 .. T0+10000
    temp = readings(KEY_A, 3, stream="temp", start=6, step_ms=2000)  # T0+12000 .. T0+16000
    other = readings(KEY_B, 2)
    store.commit_readings([(r, T0) for r in pm25 + temp + other], {}, {})
    pending = store.pending(20)
    store.seal([batch_of(store, pending[:2], b"\x05")], dropped=[pending[4][0]])  # pm25[4]
    reader = ReadOnlyReadingStore(store_location)
    try:
        def values(**bounds: int) -> list[tuple[str, int]]:
            return [(s.reading.stream, s.reading.value)
                    for s in reader.device_readings(KEY_A.did, **bounds)]

        assert values() == [("pm25", 10), ("pm25", 11), ("pm25", 12), ("pm25", 13),
                            ("temp", 10), ("temp", 11), ("temp", 12)]
        assert values(from_ms=T0 + 4000, to_ms=T0 + 14000) == [
            ("pm25", 11), ("pm25", 12), ("pm25", 13), ("temp", 10)]
        assert values(last=2) == [("pm25", 12), ("pm25", 13), ("temp", 11), ("temp", 12)]
        assert values(to_ms=T0 + 14000, last=1) == [("pm25", 13), ("temp", 10)]
        latest = reader.latest_readings(KEY_A.did)
        assert [(s.reading, s.status) for s in latest] == [(pm25[3], ACCEPTED),
                                                           (temp[2], ACCEPTED)]
        first = reader.device_readings(KEY_A.did, last=5)[0]
        assert first.status == BATCHED and first.batch_id == b"\x05" * 32
        assert reader.device_readings("did:city:" + "0" * 40) == []
    finally:
        reader.close()


def unnumber(store_location: Path | str) -> None:
    """Turn a store back into one from before the series numbers (with the index on
    (device, stream, ts_ms) that they replaced)."""
    statements = ["DROP INDEX readings_series", "ALTER TABLE readings DROP COLUMN series",
                  "DROP TABLE series",
                  "CREATE INDEX readings_device ON readings (device, stream, ts_ms)"]
    if isinstance(store_location, Path):
        with closing(sqlite3.connect(store_location)) as db:
            for statement in statements:
                db.execute(statement)
            db.commit()
    else:
        with psycopg.connect(store_location) as pg:
            for statement in statements:
                pg.execute(statement)  # type: ignore[arg-type]


def test_a_store_from_before_the_series_is_read_then_numbered_by_the_gateway(
        store: ReadingStore, store_location: Path | str) -> None:
    pm25, temp, other = readings(KEY_A, 4), readings(KEY_A, 2, stream="temp", start=9), \
        readings(KEY_B, 3)
    store.commit_readings([(r, T0) for r in pm25 + other + temp], {}, {})
    store.close()
    unnumber(store_location)
    expected = [(r.stream, r.seq) for r in pm25[2:] + temp]
    with closing(open_reading_store(store_location, read_only=True)) as reader:  # scans
        assert [(s.reading.stream, s.reading.seq)
                for s in reader.device_readings(KEY_A.did, last=2)] == expected
    with closing(open_reading_store(store_location)) as gateway:  # numbers them
        gateway.commit_readings([(r, T0) for r in readings(KEY_B, 1, start=4)], {}, {})
        db = gateway._db
        assert sorted(tuple(row) for row in db.execute("SELECT device, stream FROM series")) \
            == sorted([(KEY_A.did, "pm25"), (KEY_A.did, "temp"), (KEY_B.did, "pm25")])
        assert db.execute("SELECT COUNT(*) FROM readings r JOIN series s ON r.series = s.n "
                          "AND r.device = s.device AND r.stream = s.stream").fetchone()[0] == 10
    with closing(open_reading_store(store_location, read_only=True)) as reader:
        assert [(s.reading.stream, s.reading.seq)
                for s in reader.device_readings(KEY_A.did, last=2)] == expected
        assert [s.reading.seq for s in reader.device_readings(KEY_B.did)] == [1, 2, 3, 4]


def test_device_readings_probe_the_series_index_instead_of_scanning_the_store(
        tmp_path: Path) -> None:
    path = tmp_path / "readings.db"
    with closing(open_reading_store(path)) as store:
        store.commit_readings([(r, T0) for r in readings(KEY_A, 30) + readings(KEY_B, 30)
                               + readings(KEY_A, 5, stream="temp", start=40)], {}, {})
    with closing(open_reading_store(path, read_only=True)) as reader:
        connection = reader._db
        assert isinstance(connection, sqlite3.Connection)
        statements: list[str] = []
        connection.set_trace_callback(statements.append)
        got = reader.device_readings(KEY_A.did, from_ms=T0 + 3000, last=2)
        connection.set_trace_callback(None)
        assert [(s.reading.stream, s.reading.seq) for s in got] == [
            ("pm25", 29), ("pm25", 30), ("temp", 43), ("temp", 44)]
        plans = [" / ".join(row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql))
                 for sql in statements if sql.startswith("SELECT") and "pragma_" not in sql]
    assert len(plans) == 3, statements  # the device's series, then one query per series
    assert "sqlite_autoindex_series" in plans[0] and "SCAN" not in plans[0], plans[0]
    for plan in plans[1:]:
        assert "readings_series" in plan and "SCAN readings" not in plan, plan


def test_invalid_read_only_store_that_does_not_exist(tmp_path: Path, postgres_url: str) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(ReadingStoreError, match="no reading store at"):
        ReadOnlyReadingStore(missing)
    assert not missing.exists()
    with pytest.raises(ReadingStoreError, match=r"no reading store at postgresql://.*no readings"):
        ReadOnlyReadingStore(postgres_url)
    with psycopg.connect(postgres_url) as db:  # and it created nothing
        assert db.execute("SELECT to_regclass('readings')").fetchone() == (None,)


def test_postgres_store_creates_its_schema_once_and_commits_synchronously(
        postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"ALTER DATABASE {postgres_url.rsplit('/', 1)[1]} "
                   "SET synchronous_commit = off")
    stores = [ReadingStore(postgres_url), ReadingStore(postgres_url)]  # schema already there
    try:
        row = stores[1]._db.execute("SHOW synchronous_commit").fetchone()
        assert row[0] == "on"
        assert stores[1].location == postgres_url
        assert stores[1].path is None
    finally:
        for each in stores:
            each.close()
    reader = ReadOnlyReadingStore(postgres_url)
    try:
        row = reader._db.execute("SHOW default_transaction_read_only").fetchone()
        assert row[0] == "on"
    finally:
        reader.close()


def test_invalid_unreachable_postgres_names_the_url_without_password(
        postgres: PostgresServer) -> None:
    url = f"postgresql://city:s3cret@127.0.0.1:{postgres.port}/no_such_database"
    with pytest.raises(ReadingStoreError) as refused:
        ReadingStore(url)
    message = str(refused.value)
    assert message.startswith(
        f"cannot connect to the reading store postgresql://city@127.0.0.1:{postgres.port}/"
        "no_such_database: ")
    assert "s3cret" not in message and "\n" not in message


def test_invalid_malformed_postgres_url_is_refused_without_its_password() -> None:
    with pytest.raises(ReadingStoreError) as refused:
        ReadingStore("postgresql://city:s3cret@[bad/readings?password=other")
    message = str(refused.value)
    assert message.startswith("cannot connect to the reading store postgresql://city@[bad/")
    assert "s3cret" not in message and "other" not in message


def test_redact_url_drops_passwords_only() -> None:
    assert redact_url("postgresql://u:pw@h:5432/db") == "postgresql://u@h:5432/db"
    assert redact_url("postgres://h/db?password=pw&sslmode=disable") == (
        "postgres://h/db?sslmode=disable")
    assert redact_url("postgresql://u@h1:1,h2:2/db") == "postgresql://u@h1:1,h2:2/db"
    assert redact_url("postgresql://u:pw@[bad/db") == "postgresql://u@[bad/db"


@pytest.mark.parametrize("command", [
    ["iot", "verify", "ab" * 32],
    ["iot", "feed", "verify", "lights"],
    ["iot", "feed", "publish", "lights", "--from", "op", "--window-start-ms", "1"],
    ["iot", "ngsi", "--port", "1"],
])
def test_invalid_cli_store_url_is_one_clear_line(command: list[str], tmp_path: Path,
                                                 postgres: PostgresServer,
                                                 postgres_url: str) -> None:
    env = {"CITYCHAIN_HOME": None, "CITYCHAIN_NODE": None}
    home = ["--home", str(tmp_path / "home")]
    closed = f"postgresql://city:s3cret@127.0.0.1:{free_port()}/readings"
    result = CliRunner().invoke(cli_app, [*command, *home, "--store", closed], env=env)
    assert result.exit_code == 2, result.output
    line = f"cannot connect to the reading store {redact_url(closed)}: "
    assert line in result.stderr and "s3cret" not in result.output + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    result = CliRunner().invoke(cli_app, [*command, *home, "--store", postgres_url], env=env)
    assert result.exit_code == 2, result.output
    assert f"no reading store at {postgres_url} (no readings table)" in result.stderr
