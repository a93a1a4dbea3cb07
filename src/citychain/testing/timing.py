"""Store wrappers that time the block commit path, for benchmarks: compute_root of each working
set and the store's commit, added up in a :class:`StoreTimings` the caller reads and resets."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from citychain.core.state import WorkingSet


@dataclass
class StoreTimings:
    """Seconds spent in compute_root and in the store's commit since the last reset."""

    compute_root_s: float = 0.0
    store_commit_s: float = 0.0

    def reset(self) -> None:
        self.compute_root_s = 0.0
        self.store_commit_s = 0.0


class TimingWorkingSet:
    """A working set that times compute_root; everything else goes to the real one."""

    def __init__(self, inner: WorkingSet, timings: StoreTimings) -> None:
        self.inner = inner
        self._timings = timings

    def compute_root(self) -> bytes:
        started = time.perf_counter()
        root = self.inner.compute_root()
        self._timings.compute_root_s += time.perf_counter() - started
        return root

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TimingStore:
    """Wraps a store: times ``compute_root`` of its working sets and ``commit``; everything
    else goes to the real store."""

    def __init__(self, inner: Any, timings: StoreTimings) -> None:
        self.inner = inner
        self.timings = timings

    def begin(self) -> TimingWorkingSet:
        return TimingWorkingSet(self.inner.begin(), self.timings)

    def commit(self, working: TimingWorkingSet, height: int,
               meta: dict[str, bytes] | None = None) -> bytes:
        started = time.perf_counter()
        root: bytes = self.inner.commit(working.inner, height, meta)
        self.timings.store_commit_s += time.perf_counter() - started
        return root

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
