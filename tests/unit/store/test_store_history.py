"""Versions by height: historical reads and iteration, commit rules, working-set lifetime, meta."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import (
    both_stores,
    close_all,
    commit_writes,
    expected_range,
    keys,
    snapshot,
    values,
)

from citychain.core.errors import HeightNotAvailableError
from citychain.core.merkle import compute_root_from_items
from citychain.store import (
    CommitHeightError,
    KeyTooLargeError,
    MemoryStore,
    SqliteStore,
    StaleWorkingSetError,
    StoreClosedError,
)
from citychain.store.versioned import SCAN_BATCH, VersionedStoreBase
from citychain.testing.state import DictState


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VersionedStoreBase]:
    opened: VersionedStoreBase = (MemoryStore() if request.param == "memory"
                                  else SqliteStore(tmp_path / "state.db"))
    yield opened
    opened.close()


# ---------------------------------------------------------------- historical reads
@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(keys, st.one_of(st.none(), values), max_size=10), min_size=1,
                max_size=6), keys, st.one_of(st.none(), keys))
def test_reads_and_ranges_at_every_height(history: list[dict[bytes, bytes | None]],
                                          start: bytes, end: bytes | None) -> None:
    stores = both_stores()
    states: list[dict[bytes, bytes]] = []
    state: dict[bytes, bytes] = {}
    try:
        for height, writes in enumerate(history, start=1):
            for key, value in writes.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            states.append(dict(state))
            for store in stores:
                commit_writes(store, height, writes)
        for store in stores:
            for height, expected in enumerate(states, start=1):
                view = store.reader(height)
                assert list(view.iterate(start, end)) == expected_range(expected, start, end)
                for key in set(expected) | {start, b"absent"}:
                    assert view.get(key) == expected.get(key)
                    value, _proof = store.prove(key, height)
                    assert value == expected.get(key)
                assert store.root_at(height) == compute_root_from_items(expected)
    finally:
        close_all(stores)


def test_iteration_longer_than_one_scan_batch(store: VersionedStoreBase) -> None:
    count = SCAN_BATCH * 3 + 7
    commit_writes(store, 1, {index.to_bytes(2, "big"): b"v1" for index in range(count)})
    commit_writes(store, 2, {index.to_bytes(2, "big"): b"v2" for index in range(0, count, 2)})
    latest = list(store.reader().iterate(b""))
    assert [key for key, _ in latest] == [index.to_bytes(2, "big") for index in range(count)]
    assert [value for _, value in latest[:4]] == [b"v2", b"v1", b"v2", b"v1"]
    old = list(store.reader(1).iterate(b"\x00\x10", b"\x03\x00"))
    assert old == [(index.to_bytes(2, "big"), b"v1") for index in range(16, 768)]


def test_reader_keeps_its_height_after_commits(store: VersionedStoreBase) -> None:
    commit_writes(store, 1, {b"a": b"1", b"b": b"1"})
    view = store.reader()
    iterator = view.iterate(b"")
    assert next(iterator) == (b"a", b"1")
    commit_writes(store, 2, {b"a": b"2", b"b": None, b"c": b"2"})
    assert list(iterator) == [(b"b", b"1")]
    assert view.get(b"b") == b"1"
    assert list(view.iterate(b"")) == [(b"a", b"1"), (b"b", b"1")]
    assert snapshot(store) == {b"a": b"2", b"c": b"2"}


def test_working_set_keeps_reading_its_base_after_the_store_advances(
        store: VersionedStoreBase) -> None:
    commit_writes(store, 1, {b"a": b"1"})
    old = store.begin()
    old.set(b"x", b"mine")
    commit_writes(store, 2, {b"a": b"2", b"b": b"2"})
    assert old.get(b"a") == b"1"
    assert old.get(b"b") is None
    assert list(old.iterate(b"")) == [(b"a", b"1"), (b"x", b"mine")]
    with pytest.raises(StaleWorkingSetError) as info:
        store.commit(old, 3)
    assert info.value.details == {"required": 2, "available": 1}


def test_working_set_begun_before_the_first_commit_reads_empty_after_it(
        store: VersionedStoreBase) -> None:
    early = store.begin()
    commit_writes(store, 3, {b"a": b"1"})
    assert early.get(b"a") is None
    assert list(early.iterate(b"")) == []


# ---------------------------------------------------------------- heights
def test_first_commit_may_start_at_any_height(store: VersionedStoreBase) -> None:
    assert (store.latest_height, store.latest_root) == (0, bytes(32))
    commit_writes(store, 5, {b"a": b"1"})
    assert (store.first_height, store.latest_height) == (5, 5)
    commit_writes(store, 6, {b"a": b"2"})
    assert store.reader(5).get(b"a") == b"1"
    with pytest.raises(HeightNotAvailableError) as info:
        store.reader(4)
    assert "height 4" in info.value.message and "5..6" in info.value.message
    assert info.value.details == {"required": 4, "available": [5, 6]}


@pytest.mark.parametrize("height", [0, 3, -1])
def test_invalid_reader_height(store: VersionedStoreBase, height: int) -> None:
    commit_writes(store, 1, {b"a": b"1"})
    commit_writes(store, 2, {b"a": b"2"})
    with pytest.raises(HeightNotAvailableError) as info:
        store.reader(height)
    assert (info.value.codespace, info.value.code) == ("core", 18)
    with pytest.raises(HeightNotAvailableError):
        store.prove(b"a", height)
    with pytest.raises(HeightNotAvailableError):
        store.root_at(height)


def test_reader_before_any_commit_is_empty(store: VersionedStoreBase) -> None:
    assert list(store.reader().iterate(b"")) == []
    assert store.reader(0).get(b"a") is None
    with pytest.raises(HeightNotAvailableError, match="no committed height yet"):
        store.reader(1)


@pytest.mark.parametrize("height", [1, 2, 4, 10])
def test_invalid_commit_height(store: VersionedStoreBase, height: int) -> None:
    commit_writes(store, 1, {b"a": b"1"})
    commit_writes(store, 2, {b"a": b"2"})
    working = store.begin()
    working.set(b"a", b"3")
    with pytest.raises(CommitHeightError) as info:
        store.commit(working, height)
    assert (info.value.codespace, info.value.code) == ("store", 2)
    assert info.value.details == {"required": 3, "available": height}
    assert store.latest_height == 2
    assert store.reader().get(b"a") == b"2"
    assert store.commit(working, 3)


def test_invalid_first_commit_height(store: VersionedStoreBase) -> None:
    with pytest.raises(CommitHeightError):
        store.commit(store.begin(), 0)


def test_invalid_commit_of_a_foreign_working_set(store: VersionedStoreBase) -> None:
    other = MemoryStore()
    with pytest.raises(StaleWorkingSetError):
        store.commit(other.begin(), 1)
    with pytest.raises(StaleWorkingSetError):
        store.commit(DictState(), 1)  # type: ignore[arg-type]
    with pytest.raises(StaleWorkingSetError):
        store.commit(store.begin().branch(), 1)  # type: ignore[arg-type]


def test_invalid_second_commit_of_the_same_base(store: VersionedStoreBase) -> None:
    first, second = store.begin(), store.begin()
    first.set(b"a", b"1")
    second.set(b"a", b"2")
    store.commit(first, 1)
    with pytest.raises(StaleWorkingSetError):
        store.commit(second, 2)
    with pytest.raises(StaleWorkingSetError):
        store.commit(first, 2)  # already committed: its base is now old


# ---------------------------------------------------------------- working sets and branches
def test_compute_root_is_cached_until_the_next_write(store: VersionedStoreBase) -> None:
    working = store.begin()
    working.set(b"a", b"1")
    computed = working.computed()
    assert working.computed() is computed
    working.branch().write()  # an empty branch changes nothing
    assert working.computed() is computed
    working.set(b"b", b"1")
    assert working.computed() is not computed
    assert store.commit(working, 1) == working.compute_root()


def test_branch_writes_reach_the_parent_once(store: VersionedStoreBase) -> None:
    working = store.begin()
    branch = working.branch()
    branch.set(b"a", b"1")
    branch.write()
    working.delete(b"a")
    branch.write()  # nothing pending any more: must not bring "a" back
    assert working.get(b"a") is None
    assert working.changes() == [(b"a", None)]


def test_changes_are_sorted_and_include_deletes(store: VersionedStoreBase) -> None:
    working = store.begin()
    working.set(b"b", b"2")
    working.delete(b"c")
    working.set(b"a", b"")
    assert working.changes() == [(b"a", b""), (b"b", b"2"), (b"c", None)]


def test_empty_value_is_a_value(store: VersionedStoreBase) -> None:
    commit_writes(store, 1, {b"k": b""})
    assert store.reader().get(b"k") == b""
    assert store.prove(b"k")[0] == b""
    assert list(store.reader().iterate(b"")) == [(b"k", b"")]


def test_invalid_key_and_value_types(store: VersionedStoreBase) -> None:
    working = store.begin()
    with pytest.raises(TypeError):
        working.set("a", b"1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        working.set(b"a", "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        working.branch().set(b"a", None)  # type: ignore[arg-type]
    with pytest.raises(KeyTooLargeError) as info:
        working.set(b"k" * 1025, b"1")
    assert (info.value.codespace, info.value.code) == ("store", 4)
    working.set(b"k" * 1024, b"1")


# ---------------------------------------------------------------- metadata and lifecycle
def test_meta_is_committed_with_the_state(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    assert store.get_meta("chain_id") is None
    working = store.begin()
    working.set(b"a", b"1")
    store.commit(working, 1, meta={"chain_id": b"city-1", "app": b"v1"})
    store.commit(store.begin(), 2, meta={"chain_id": b"city-1", "app": b"v2"})
    assert store.get_meta("app") == b"v2"
    store.close()
    reopened = SqliteStore(tmp_path / "state.db")
    assert (reopened.get_meta("chain_id"), reopened.get_meta("app")) == (b"city-1", b"v2")
    assert reopened._meta_rows() == [(1, "app", b"v1"), (1, "chain_id", b"city-1"),
                                     (2, "app", b"v2")]
    assert reopened.audit() == []
    with pytest.raises(TypeError):
        reopened.commit(reopened.begin(), 3, meta={"x": "text"})  # type: ignore[dict-item]
    reopened.close()


def test_reopen_restores_the_latest_version(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    for height in range(1, 6):
        commit_writes(store, height, {bytes([height]): bytes([height]) * 3, b"\x01": None})
    root = store.latest_root
    store.close()
    reopened = SqliteStore(tmp_path / "state.db")
    assert (reopened.first_height, reopened.latest_height, reopened.latest_root) == (1, 5, root)
    commit_writes(reopened, 6, {b"z": b"z"})
    assert reopened.audit() == []
    reopened.close()


def test_closed_store_refuses_work(store: VersionedStoreBase) -> None:
    store.close()
    store.close()  # closing twice is harmless
    for call in (store.begin, store.reader, lambda: store.prove(b"a"), store.audit):
        with pytest.raises(StoreClosedError):
            call()


def test_invalid_commit_after_another_writer(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "state.db")
    second = SqliteStore(tmp_path / "state.db")
    commit_writes(first, 1, {b"a": b"1"})
    working = second.begin()
    working.set(b"a", b"2")
    with pytest.raises(StaleWorkingSetError, match="another writer"):
        second.commit(working, 1)
    second.close()
    assert first.audit() == []
    first.close()
