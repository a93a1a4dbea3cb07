"""Helpers shared by the store tests: store factories and a dict model of versioned state."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from hypothesis import strategies as st

from citychain.core.merkle import compute_root_from_items
from citychain.store import MemoryStore, SqliteStore
from citychain.store.versioned import VersionedStoreBase

# Keys with shared prefixes, the empty key and the extremes of byte order, plus random ones.
ALPHABET = [b"", b"\x00", b"a", b"aa", b"ab", b"abc", b"b", b"k1", b"k2", b"k3", b"\xff",
            b"\xff\xff", b"z" * 40]
keys = st.one_of(st.sampled_from(ALPHABET), st.binary(max_size=3))
values = st.binary(max_size=8)


def both_stores(directory: Path | None = None) -> list[VersionedStoreBase]:
    """A fresh MemoryStore and SqliteStore (in memory, or a file under ``directory``)."""
    path = ":memory:" if directory is None else str(directory / "state.db")
    return [MemoryStore(), SqliteStore(path)]


def snapshot(store: VersionedStoreBase, height: int | None = None) -> dict[bytes, bytes]:
    """The whole state at ``height``, checking that iteration is strictly ascending."""
    rows = list(store.reader(height).iterate(b""))
    assert all(a[0] < b[0] for a, b in itertools.pairwise(rows)), "not ascending"
    return dict(rows)


def expected_range(state: dict[bytes, bytes], start: bytes,
                   end: bytes | None) -> list[tuple[bytes, bytes]]:
    return sorted((key, value) for key, value in state.items()
                  if key >= start and (end is None or key < end))


def check_root(store: VersionedStoreBase, state: dict[bytes, bytes]) -> None:
    assert store.latest_root == compute_root_from_items(state)


def close_all(stores: list[VersionedStoreBase]) -> None:
    for store in stores:
        store.close()


def walk_history(store: VersionedStoreBase) -> Iterator[tuple[int, dict[bytes, bytes]]]:
    for height in range(store.first_height, store.latest_height + 1):
        yield height, snapshot(store, height)


def commit_writes(store: VersionedStoreBase, height: int,
                  writes: dict[bytes, bytes | None]) -> bytes:
    """Commit ``writes`` (None deletes) as ``height``; return the new root."""
    working = store.begin()
    for key, value in writes.items():
        if value is None:
            working.delete(key)
        else:
            working.set(key, value)
    return store.commit(working, height)
