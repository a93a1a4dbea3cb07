"""The bounded cache: capacity, oldest-first eviction, refresh and discard."""

from __future__ import annotations

from citychain.store.cache import BoundedCache


def test_capacity_is_kept_by_dropping_the_oldest() -> None:
    cache: BoundedCache[int, str] = BoundedCache(16)
    for key in range(100):
        cache.put(key, str(key))
        assert len(cache) <= 16
    assert cache.get(99) == "99"
    assert cache.get(0) is None
    assert min(cache.entries) > 80


def test_refresh_makes_an_entry_newest() -> None:
    cache: BoundedCache[int, str] = BoundedCache(8)
    cache.put_many({key: str(key) for key in range(8)})
    cache.refresh_many({0: "zero"})
    cache.put_many({key: str(key) for key in range(8, 11)})
    assert cache.get(0) == "zero"
    assert cache.get(1) is None


def test_discard_and_disabled_cache() -> None:
    cache: BoundedCache[int, str] = BoundedCache(8)
    cache.put_many({1: "a", 2: "b"})
    cache.discard_many([1, 3])
    assert (cache.get(1), cache.get(2)) == (None, "b")
    off: BoundedCache[int, str] = BoundedCache(0)
    off.put(1, "a")
    off.put_many({2: "b"})
    assert len(off) == 0
