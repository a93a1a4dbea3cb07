"""Reads from other threads while commits run: every view stays at one consistent height."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from citychain.core.merkle import verify_proof
from citychain.store import MemoryStore, SqliteStore
from citychain.store.versioned import VersionedStoreBase

KEYS = [bytes([index]) * 2 for index in range(40)]
HEIGHTS = 30


@pytest.mark.parametrize("kind", ["memory", "sqlite", "sqlite-tiny-caches"])
def test_readers_see_one_height_while_commits_run(kind: str, tmp_path: Path) -> None:
    store: VersionedStoreBase
    if kind == "memory":
        store = MemoryStore()
    elif kind == "sqlite":
        store = SqliteStore(tmp_path / "state.db")
    else:  # caches far smaller than the state: evictions race with reads and commits
        store = SqliteStore(tmp_path / "state.db", node_cache_size=16, chunk_cache_size=2,
                            value_cache_size=8)
    working = store.begin()
    for key in KEYS:
        working.set(key, b"1")
    store.commit(working, 1)
    errors: list[str] = []
    done = threading.Event()

    def commit_loop() -> None:
        try:
            for height in range(2, HEIGHTS + 1):
                working = store.begin()
                for key in KEYS:
                    working.set(key, str(height).encode())
                working.delete(KEYS[height % len(KEYS)])
                store.commit(working, height)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))
        finally:
            done.set()

    def read_loop() -> None:
        try:
            while not done.is_set():
                view = store.reader()
                height = view.height  # type: ignore[attr-defined]
                expected = str(height).encode()
                rows = list(view.iterate(b""))
                values = {value for _, value in rows}
                if values != {expected}:
                    errors.append(f"height {height}: iteration saw {sorted(values)}")
                for key in KEYS[:8]:
                    value = view.get(key)
                    if value not in (expected, None):
                        errors.append(f"height {height}: get saw {value!r}")
                    proven, proof = store.prove(key, height)
                    if proven != value or not verify_proof(store.root_at(height), key, value,
                                                           proof):
                        errors.append(f"height {height}: proof of {key.hex()} is wrong")
                base = store.begin()
                before = base.get(KEYS[0])
                base.set(b"mine", b"x")
                if [base.get(KEYS[0]) for _ in range(50)] != [before] * 50:
                    errors.append("a working set's base moved under it")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=commit_loop)] + [
        threading.Thread(target=read_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:5]
    assert store.latest_height == HEIGHTS
    assert store.audit() == []
    store.close()
