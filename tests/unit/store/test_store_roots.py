"""Roots: equal to the from-scratch reference, the same on both stores, and independent of write
order and of how the writes are split across blocks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import both_stores, close_all, keys, values

from citychain.core.merkle import EMPTY_ROOT, compute_root_from_items
from citychain.store import MemoryStore

blocks = st.lists(st.dictionaries(keys, st.one_of(st.none(), values), max_size=12),
                  min_size=1, max_size=8)


def apply(state: dict[bytes, bytes], writes: dict[bytes, bytes | None]) -> None:
    for key, value in writes.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value


@settings(max_examples=250, deadline=None)
@given(blocks)
def test_every_block_root_equals_the_reference(history: list[dict[bytes, bytes | None]]) -> None:
    stores = both_stores()
    state: dict[bytes, bytes] = {}
    try:
        for height, writes in enumerate(history, start=1):
            apply(state, writes)
            expected = compute_root_from_items(state)
            for store in stores:
                working = store.begin()
                for key, value in writes.items():
                    if value is None:
                        working.delete(key)
                    else:
                        working.set(key, value)
                assert working.compute_root() == expected
                assert store.commit(working, height) == expected
                assert store.latest_root == expected
        for store in stores:
            assert store.audit() == []
    finally:
        close_all(stores)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, values, max_size=30), st.randoms(use_true_random=False))
def test_root_ignores_write_order(items: dict[bytes, bytes], rng: object) -> None:
    order = sorted(items)
    rng.shuffle(order)  # type: ignore[attr-defined]
    first, second = MemoryStore(), MemoryStore()
    for store, keys_in_order in ((first, sorted(items)), (second, order)):
        working = store.begin()
        for key in keys_in_order:
            working.set(key, items[key])
        store.commit(working, 1)
    assert first.latest_root == second.latest_root == compute_root_from_items(items)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, values, max_size=30), st.lists(st.integers(0, 4), max_size=30),
       st.dictionaries(keys, values, max_size=8))
def test_root_ignores_how_writes_are_split_across_blocks(
        items: dict[bytes, bytes], cuts: list[int], scratch: dict[bytes, bytes]) -> None:
    """Writing the same final state in one block, or in several with temporary values that are
    later overwritten or deleted, gives the same root."""
    one = MemoryStore()
    working = one.begin()
    for key, value in items.items():
        working.set(key, value)
    one.commit(working, 1)

    many = both_stores()
    try:
        for store in many:
            height = 0
            working = store.begin()
            for key, value in scratch.items():  # temporary writes, undone below
                working.set(key, value + b"~")
            for index, (key, value) in enumerate(sorted(items.items())):
                working.set(key, value)
                if index < len(cuts) and cuts[index] == 0:
                    height += 1
                    store.commit(working, height)
                    working = store.begin()
            for key in scratch:
                if key in items:
                    working.set(key, items[key])
                else:
                    working.delete(key)
            store.commit(working, height + 1)
            assert store.latest_root == one.latest_root
    finally:
        close_all(many)


def test_no_op_writes_change_nothing() -> None:
    for store in both_stores():
        working = store.begin()
        working.set(b"a", b"1")
        working.set(b"b", b"2")
        root = store.commit(working, 1)
        working = store.begin()
        working.set(b"a", b"1")  # same value
        working.delete(b"zz")  # absent key
        assert working.compute_root() == root
        assert store.commit(working, 2) == root
        row = store._get_version(2)
        assert row is not None and row.node_count == 0  # no node rewritten
        assert store._changes_at(2) == []  # and no write recorded
        assert store.audit() == []
        store.close()


def test_deleting_everything_gives_the_empty_root() -> None:
    for store in both_stores():
        working = store.begin()
        for index in range(40):
            working.set(bytes([index]), b"v")
        store.commit(working, 1)
        working = store.begin()
        for index in range(40):
            working.delete(bytes([index]))
        assert store.commit(working, 2) == EMPTY_ROOT
        assert list(store.reader().iterate(b"")) == []
        assert store.audit() == []
        store.close()


def test_empty_block_keeps_the_root() -> None:
    for store in both_stores():
        working = store.begin()
        working.set(b"k", b"v")
        root = store.commit(working, 1)
        assert store.commit(store.begin(), 2) == root
        assert store.root_at(1) == store.root_at(2) == root
        assert store.audit() == []
        store.close()
