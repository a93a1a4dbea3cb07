"""Per-client rate limits: a token bucket per client address; over the limit is a 429 problem
with ``Retry-After`` (whole seconds, at least 1)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """``rate`` requests per second on average with bursts of ``burst``; remembers at most
    ``max_clients`` clients (the least recently seen are forgotten first)."""

    def __init__(self, rate: float, burst: int, *, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, client: str, now: float | None = None) -> float:
        """Take one token for ``client``; return 0 when allowed, else seconds until a token."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
