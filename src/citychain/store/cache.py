"""A bounded two-generation cache: recently used entries survive, the rest age out in bulk."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class GenerationalCache(Generic[K, V]):
    """Holds at most ``capacity`` entries (approximately LRU, O(1) per operation).

    New and recently read entries go to the young generation; when it is full it becomes the
    old generation and the previous old one is dropped. A hit in the old generation promotes
    the entry. ``young.get`` may be called directly as the fast path of a hot lookup (falling
    back to :meth:`get` on a miss). Reads take no lock: each step is one dict operation, atomic
    under the GIL, and a racing rotation can only turn a hit into a miss.
    """

    def __init__(self, capacity: int) -> None:
        self._limit = max(1, capacity // 2)
        self.enabled = capacity > 0
        self.young: dict[K, V] = {}
        self._old: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        """Return the cached value or None."""
        value = self.young.get(key)
        if value is None:
            value = self._old.get(key)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        """Cache ``value`` (not None) under ``key``."""
        if not self.enabled:
            return
        young = self.young
        young[key] = value
        if len(young) >= self._limit:
            self._old = young
            self.young = {}

    def put_many(self, items: dict[K, V]) -> None:
        """Cache every entry of ``items`` (values not None)."""
        if not self.enabled:
            return
        young = self.young
        young.update(items)
        if len(young) >= self._limit:
            self._old = young
            self.young = {}

    def discard(self, key: K) -> None:
        """Forget ``key``."""
        self.young.pop(key, None)
        self._old.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self.young = {}
        self._old = {}

    def __len__(self) -> int:
        return len(self.young) + len(self._old)
