"""Query indexes in the stores: written with the block that wrote their source records, read at
any retained height, left out of the root, rebuilt when missing or redefined, audited."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import both_stores, close_all, commit_writes

from citychain.core.query_index import QueryIndex
from citychain.store import MemoryStore, SqliteStore
from citychain.store.versioned import VersionedStoreBase


def _tags(key: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    """Record b"s" + id -> b"red,blue": entry b"t" + tag + b"/" + id -> id, per tag."""
    return [(b"t" + tag + b"/" + key[1:], key[1:]) for tag in value.split(b",") if tag]


TAGS = (QueryIndex("tags", 1, b"s", b"t", _tags),)
TAGS_V2 = (QueryIndex("tags", 2, b"s", b"t", _tags),)


def commit(store: VersionedStoreBase, writes: dict[bytes, bytes | None]) -> None:
    commit_writes(store, store.latest_height + 1, writes)


HISTORY: list[dict[bytes, bytes | None]] = [
    {b"s1": b"red,blue", b"other": b"x"},
    {b"s2": b"blue"},
    {b"s3": b"red", b"other": b"y"},
    {b"s2": None},  # a deleted record drops its entries
    {b"s1": b"red"},  # a rewritten record: the entries of its new value, at its new height
]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VersionedStoreBase]:
    made = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "state.db")
    yield made
    made.close()


def test_entries_appear_at_the_height_of_their_record(store: VersionedStoreBase) -> None:
    assert store.attach_indexes(TAGS) == 0
    for writes in HISTORY:
        commit(store, writes)
    assert store.index_entries() == [(b"tred/1", 5, b"1"), (b"tred/3", 3, b"3")]
    assert list(store.index_reader(3).iterate(b"t")) == [(b"tred/3", b"3")]
    assert store.index_reader(4).get(b"tred/3") == b"3"
    assert store.index_reader(2).get(b"tred/3") is None
    assert store.index_reader().get(b"tred/3") == b"3"
    assert store.reader().get(b"tred/3") is None  # not in the authenticated state
    assert store.audit() == []


def test_the_root_does_not_depend_on_the_indexes(store: VersionedStoreBase) -> None:
    plain = MemoryStore()
    store.attach_indexes(TAGS)
    for writes in HISTORY:
        commit(store, writes)
        commit(plain, writes)
        assert store.latest_root == plain.latest_root
    plain.close()


def test_attaching_later_rebuilds_the_same_entries_and_heights(store: VersionedStoreBase) -> None:
    live = MemoryStore()
    live.attach_indexes(TAGS)
    for writes in HISTORY:
        commit(store, writes)
        commit(live, writes)
    progress: list[tuple[int, int]] = []
    assert store.attach_indexes(TAGS, lambda done, total: progress.append((done, total))) == 2
    assert progress[-1] == (2, 2)
    assert store.index_entries() == live.index_entries()
    assert store.attach_indexes(TAGS) is None  # same definitions: kept
    live.close()


def test_a_changed_definition_is_rebuilt(store: VersionedStoreBase) -> None:
    store.attach_indexes(TAGS)
    for writes in HISTORY:
        commit(store, writes)
    before = store.index_entries()
    assert store.attach_indexes(TAGS_V2) == 2  # rebuilt from the latest state
    assert store.index_entries() == before


def test_commits_without_the_indexes_make_the_next_attach_rebuild(
        store: VersionedStoreBase) -> None:
    store.attach_indexes(TAGS)
    commit(store, HISTORY[0])
    store.attach_indexes(())
    commit(store, HISTORY[1])  # would leave tblue/2 out of a kept index
    assert store.attach_indexes(TAGS) == 3
    assert (b"tblue/2", 2, b"2") in store.index_entries()


def test_sqlite_keeps_the_index_across_reopen_and_rebuilds_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.attach_indexes(TAGS)
    for writes in HISTORY:
        commit(store, writes)
    before = store.index_entries()
    store.close()
    store = SqliteStore(path)
    assert store.index_entries() == before
    assert store.attach_indexes(TAGS) is None
    store.close()
    with sqlite3.connect(path) as conn:  # a file written before query indexes existed
        conn.execute("DROP TABLE query_index")
        conn.execute("DROP TABLE query_index_info")
    store = SqliteStore(path)
    try:
        assert store.index_entries() == []
        assert store.attach_indexes(TAGS) == 2
        assert store.index_entries() == before
        assert store.audit() == []
    finally:
        store.close()


def test_the_audit_names_missing_extra_and_changed_entries(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.attach_indexes(TAGS)
    for writes in HISTORY[:3]:
        commit(store, writes)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM query_index WHERE key = ?", (b"tred/1",))
        conn.execute("UPDATE query_index SET height = 1 WHERE key = ?", (b"tred/3",))
        conn.execute("INSERT INTO query_index VALUES (?, 1, ?)", (b"tgreen/9", b"9"))
    store = SqliteStore(path)
    try:
        assert store.audit() == []  # no indexes attached: the audit cannot know them
        store._indexes = TAGS  # attach without the rebuild attach_indexes would do
        problems = store.audit()
        assert len(problems) == 3
        assert any(b"tred/1".hex() in p and "missing" in p for p in problems)
        assert any(b"tgreen/9".hex() in p and "no source record" in p for p in problems)
        assert any(b"tred/3".hex() in p and "height 1" in p and "height 3" in p
                   for p in problems)
    finally:
        store.close()


@settings(max_examples=40, deadline=None)
@given(blocks=st.lists(st.dictionaries(
    st.sampled_from([b"s1", b"s2", b"s3", b"s4", b"k"]),
    st.one_of(st.none(), st.sampled_from([b"a", b"a,b", b"b,c", b""])), max_size=4),
    max_size=8))
def test_commits_keep_the_index_a_rebuild_would_give_in_both_stores(
        blocks: list[dict[bytes, bytes | None]]) -> None:
    stores = both_stores()
    try:
        for store in stores:
            store.attach_indexes(TAGS)
        for writes in blocks:
            for store in stores:
                commit(store, writes)
        memory, sqlite = stores
        assert memory.index_entries() == sqlite.index_entries()
        assert memory.index_entries() == memory.derived_index_entries()
        assert memory.audit() == [] and sqlite.audit() == []
        for height in range(memory.first_height, memory.latest_height + 1):
            assert list(memory.index_reader(height).iterate(b"")) == list(
                sqlite.index_reader(height).iterate(b""))
    finally:
        close_all(stores)


WRITER = """
import random, sys
from citychain.core.query_index import QueryIndex
from citychain.store import SqliteStore

def tags(key, value):
    return [(b"t" + tag + b"/" + key[1:], key[1:]) for tag in value.split(b",") if tag]

store = SqliteStore(sys.argv[1])
store.attach_indexes((QueryIndex("tags", 1, b"s", b"t", tags),))
rng = random.Random(int(sys.argv[2]))
height = store.latest_height
while True:
    working = store.begin()
    for _ in range(rng.randint(1, 300)):
        record = b"s" + rng.randrange(1 << 30).to_bytes(4, "big")
        working.set(record, b",".join(rng.sample([b"a", b"b", b"c", b"d"], rng.randint(0, 3))))
    height += 1
    store.commit(working, height)
    print(height, flush=True)
"""


def test_sigkill_mid_commit_leaves_index_and_state_at_the_same_block(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    rng = random.Random()
    for cycle in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(cycle)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        assert writer.stdout.readline().strip(), "the writer did not commit"
        time.sleep(rng.uniform(0.0, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=30)
        store = SqliteStore(path)
        try:
            store._indexes = (QueryIndex("tags", 1, b"s", b"t", _tags),)
            assert store.audit() == []  # every entry of every committed record, no other
            assert store.attach_indexes(store._indexes) is None  # nothing to rebuild
        finally:
            store.close()
