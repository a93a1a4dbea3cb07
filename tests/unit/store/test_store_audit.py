"""The audit reports every damaged byte of the SQLite database, naming what is wrong."""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from citychain.store import MemoryStore, SqliteStore

KEYS = [b"acct/" + bytes([index]) * 3 for index in range(60)]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with four heights: inserts, updates, deletes, an empty value, metadata."""
    path = tmp_path_factory.mktemp("audit") / "state.db"
    store = SqliteStore(path)
    working = store.begin()
    for key in KEYS:
        working.set(key, b"v1-" + key)
    store.commit(working, 1, meta={"chain_id": b"city"})
    working = store.begin()
    for key in KEYS[::3]:
        working.set(key, b"v2")
    working.set(b"empty", b"")
    store.commit(working, 2, meta={"chain_id": b"city", "app": b"1"})
    working = store.begin()
    for key in KEYS[::5]:
        working.delete(key)
    store.commit(working, 3)
    working = store.begin()
    working.set(KEYS[5], b"back")
    store.commit(working, 4, meta={"app": b"2"})
    assert store.audit() == []
    store.close()
    return path


@pytest.fixture
def database(pristine: Path, tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    shutil.copy(pristine, path)
    return path


def flip(path: Path, table: str, column: str, where: str, params: tuple[object, ...],
         position: int = 0) -> None:
    conn = sqlite3.connect(path)
    try:
        (value,) = conn.execute(f"SELECT {column} FROM {table} WHERE {where}",
                                params).fetchone()
        if isinstance(value, bytes):
            changed: object = bytearray(value)
            changed[position % len(value)] ^= 0x01  # type: ignore[index]
            changed = bytes(changed)  # type: ignore[arg-type]
        elif isinstance(value, str):
            changed = value[:-1] + chr(ord(value[-1]) ^ 1)
        else:
            changed = value + 1
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (changed, *params))
        conn.commit()
    finally:
        conn.close()


def audit(path: Path) -> list[str]:
    store = SqliteStore(path)
    try:
        return store.audit()
    finally:
        store.close()


def test_pristine_database_is_sound(database: Path) -> None:
    assert audit(database) == []


def test_flipped_state_value_is_named(database: Path) -> None:
    key = KEYS[1]
    flip(database, "state", "value", "key = ?", (key,), position=2)
    problems = audit(database)
    assert problems == [f"state row for key {key.hex()} at height 4: value hash differs from "
                        "tree leaf"]


def test_flipped_state_key_is_named(database: Path) -> None:
    flip(database, "state", "key", "key = ?", (KEYS[2],), position=5)
    problems = audit(database)
    assert any("state row for key" in text and "no tree leaf holds this key" in text
               for text in problems), problems
    assert any("no state row holds its key" in text for text in problems), problems


def test_flipped_change_value_is_named(database: Path) -> None:
    flip(database, "changes", "data", "height = 2", (), position=-1)
    problems = audit(database)
    assert any(text.startswith("change row for key") and "at height 2" in text
               for text in problems), problems


def test_flipped_change_header_is_reported(database: Path) -> None:
    flip(database, "changes", "data", "height = 4", (), position=1)
    problems = audit(database)
    assert any("change row" in text and "height 4" in text for text in problems), problems


def test_flipped_tree_node_is_named(database: Path) -> None:
    conn = sqlite3.connect(database)
    chunk = conn.execute("SELECT MIN(chunk) FROM nodes").fetchone()[0]
    conn.close()
    flip(database, "nodes", "data", "chunk = ?", (chunk,), position=81 * 3 + 40)
    problems = audit(database)
    assert any(text.startswith("tree node") and "hash to" in text for text in problems), problems


def test_flipped_child_id_is_reported(database: Path) -> None:
    conn = sqlite3.connect(database)
    chunk, data = conn.execute("SELECT chunk, data FROM nodes ORDER BY chunk DESC").fetchone()
    conn.close()
    offset = len(data) - 81  # the root of the last height is its last node: an internal node
    assert data[offset] == 1
    flip(database, "nodes", "data", "chunk = ?", (chunk,), position=offset + 72)
    assert any("tree node" in text for text in audit(database))


@pytest.mark.parametrize("height", [2, 4])
def test_flipped_root_is_named(database: Path, height: int) -> None:
    flip(database, "versions", "root", "height = ?", (height,), position=7)
    problems = audit(database)
    assert any(f"height {height}" in text and "version row expects" in text
               for text in problems), problems


def test_flipped_meta_value_is_named(database: Path) -> None:
    flip(database, "meta", "value", "name = 'app' AND height = 2", ())
    problems = audit(database)
    assert problems[0] == ("version row of height 2: metadata digest differs from the stored "
                           "metadata")


def test_flipped_meta_digest_is_named(database: Path) -> None:
    flip(database, "versions", "meta_digest", "height = 3", ())
    assert audit(database) == ["version row of height 3: metadata digest differs from the "
                               "stored metadata"]


@pytest.mark.parametrize("column", ["root_id", "first_node", "node_count"])
def test_flipped_version_numbers_are_reported(database: Path, column: str) -> None:
    flip(database, "versions", column, "height = 2", ())
    assert audit(database)


def _cells(path: Path) -> Iterator[tuple[str, str, str, tuple[object, ...], int]]:
    """Every (table, column, row selector, position) worth flipping: each blob at up to 16
    positions (always the first and last byte), each integer and text once."""
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    tables = {"state": ["key", "value"], "changes": ["height", "first_key", "data"],
              "nodes": ["chunk", "data"], "versions": ["height", "root", "root_id", "first_node",
                                                       "node_count", "meta_digest"],
              "meta": ["height", "name", "value"]}
    for table, columns in tables.items():
        rows = conn.execute(f"SELECT rowid, * FROM {table}").fetchall() if table in (
            "changes", "nodes", "versions") else [
            (None, *row) for row in conn.execute(f"SELECT * FROM {table}").fetchall()]
        for row in rows:
            if table == "state" and rng.random() > 0.25:
                continue  # a quarter of the 60 state rows is enough
            where, params = _selector(table, row)
            for index, column in enumerate(columns):
                value = row[index + 1]
                if isinstance(value, bytes) and value:
                    positions = {0, len(value) - 1} | {rng.randrange(len(value))
                                                       for _ in range(14)}
                    for position in sorted(positions):
                        yield table, column, where, params, position
                else:
                    yield table, column, where, params, 0
    conn.close()


def _selector(table: str, row: tuple[object, ...]) -> tuple[str, tuple[object, ...]]:
    if table in ("changes", "nodes", "versions"):
        return "rowid = ?", (row[0],)
    if table == "state":
        return "key = ?", (row[1],)
    return "height = ? AND name = ?", (row[1], row[2])


def test_every_flipped_byte_is_reported(database: Path) -> None:
    checked = 0
    for table, column, where, params, position in list(_cells(database)):
        shutil.copy(database, database.with_suffix(".bak"))
        try:
            flip(database, table, column, where, params, position)
        except sqlite3.IntegrityError:
            continue  # the changed key collides with another row: not a silent change
        problems = audit(database)
        assert problems, f"flipping {table}.{column} at {position} ({where} {params}) went unseen"
        shutil.copy(database.with_suffix(".bak"), database)
        checked += 1
    assert checked > 300


def test_memory_store_audit_reports_damage() -> None:
    store = MemoryStore()
    working = store.begin()
    for key in KEYS[:10]:
        working.set(key, b"v")
    store.commit(working, 1)
    assert store.audit() == []
    store._state[KEYS[3]] = b"w"
    assert store.audit() == [f"state row for key {KEYS[3].hex()} at height 1: value hash "
                             "differs from tree leaf"]


def test_progress_is_reported(database: Path) -> None:
    calls: list[tuple[int, int]] = []
    store = SqliteStore(database)
    assert store.audit(lambda done, total: calls.append((done, total))) == []
    store.close()
    assert calls[0] == (1, 5) and calls[-1] == (5, 5)
