"""A bounded in-memory cache that forgets its oldest entries in bulk (one dict, O(1) reads)."""

from __future__ import annotations

from itertools import islice
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Holds at most ``capacity`` entries; when full, the oldest-inserted eighth is dropped.

    Reads do not reorder entries (``entries.get`` is the whole fast path and may be called
    directly); an entry that must stay fresh is put again with :meth:`refresh_many`. The tree
    node cache needs nothing more: every commit inserts the nodes it rewrote (the hot top of the
    tree) and discards the ones it replaced, so the cache holds live nodes, newest last.

    Thread-safe under the GIL: every step is one dict operation or one C-level pass.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self.entries: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        """Return the cached value or None."""
        return self.entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Cache ``value`` (not None) under ``key``."""
        if self.capacity:
            entries = self.entries
            entries[key] = value
            if len(entries) > self.capacity:
                self._evict()

    def put_many(self, items: dict[K, V]) -> None:
        """Cache every entry of ``items`` (existing keys keep their age)."""
        if self.capacity:
            self.entries.update(items)
            if len(self.entries) > self.capacity:
                self._evict()

    def refresh_many(self, items: dict[K, V]) -> None:
        """Cache every entry of ``items`` as the newest."""
        if self.capacity:
            pop = self.entries.pop
            for key in items:
                pop(key, None)
            self.put_many(items)

    def discard_many(self, keys: list[K]) -> None:
        """Forget every key of ``keys``."""
        pop = self.entries.pop
        for key in keys:
            pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self.entries.clear()

    def _evict(self) -> None:
        entries = self.entries
        excess = len(entries) - self.capacity + self.capacity // 8
        pop = entries.pop
        for key in list(islice(entries, max(excess, 0))):
            pop(key, None)

    def __len__(self) -> int:
        return len(self.entries)
