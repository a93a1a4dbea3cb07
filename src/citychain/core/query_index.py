"""Query indexes: node-local lookups derived from committed state and left out of the app hash.

Some lookups are needed only by queries, never by a state transition: "which batches list this
device" is the example. Keeping such an entry in the authenticated state costs a tree insert per
entry in every block, and buys a proof that queries which read ranges cannot offer anyway. A
:class:`QueryIndex` says instead how to derive the entries from records that *are* in the
authenticated state; the store writes them in the same transaction as the block that wrote the
records, and rebuilds them from the state when they are missing or their definition changed.

A record's entries are always those derived from its current value, each recorded at the
height of the record's latest write; a query at an older height sees the entries recorded at or
below it. For write-once records (anchors, for instance) that is exactly the index as it was at
that height. A record rewritten or deleted later drops its old entries from every height's view
(the price of an index that a rebuild from the latest state reproduces exactly). Entries of
different records must not share a key. Every entry can be checked against its source record,
which is provable.

Queries read an index through :class:`IndexedView`, which serves keys under an index's prefix
from the index and everything else from the state, so a query function does not know where a
key lives.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from citychain.core.state import ReadView, prefix_end

Derive = Callable[[bytes, bytes], Iterable[tuple[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class QueryIndex:
    """One index: ``derive(key, value)`` maps a record stored under ``source`` to the index
    entries (key under ``prefix``, value) it adds. ``version`` changes whenever ``derive``
    changes what it returns; a store rebuilds an index whose name, version or prefixes differ
    from what it last built."""

    name: str
    version: int
    source: bytes
    prefix: bytes
    derive: Derive

    def signature(self) -> str:
        """The text a store keeps to tell whether its entries were built by this definition."""
        return f"{self.name}:{self.version}:{self.source.hex()}:{self.prefix.hex()}"


def check_indexes(indexes: Sequence[QueryIndex]) -> None:
    """Raise ValueError unless names are unique and no index's prefix overlaps another's or any
    source prefix (an index must never shadow state an index is derived from)."""
    names = [index.name for index in indexes]
    if len(set(names)) != len(names):
        raise ValueError(f"query index names must be unique, got {names}")
    prefixes = [index.prefix for index in indexes]
    for position, index in enumerate(indexes):
        if not index.prefix or not index.source:
            raise ValueError(f"query index {index.name!r}: empty prefix or source")
        for other in prefixes[:position] + [item.source for item in indexes]:
            if other.startswith(index.prefix) or index.prefix.startswith(other):
                raise ValueError(f"query index {index.name!r}: prefix {index.prefix.hex()} "
                                 f"overlaps {other.hex()}")


def derive_entries(indexes: Sequence[QueryIndex],
                   changes: Iterable[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes]]:
    """Return the entries ``changes`` (key, value or None: deleted) add, sorted by key.

    Deletes add nothing. Raises whatever a ``derive`` raises on a record it cannot decode
    (state is written only by handlers, so that is a bug, not input), and ValueError for an
    entry outside the index's prefix.
    """
    entries: dict[bytes, bytes] = {}
    for key, value in changes:
        if value is None:
            continue
        for index in indexes:
            if key.startswith(index.source):
                for entry_key, entry_value in index.derive(key, value):
                    if not entry_key.startswith(index.prefix):
                        raise ValueError(f"query index {index.name!r} derived key "
                                         f"{entry_key.hex()} outside its prefix")
                    entries[entry_key] = entry_value
    return sorted(entries.items())


class IndexedView:
    """A read-only view: keys under ``prefixes`` come from ``index``, all others from ``state``.

    Keys of an index prefix that the state also holds (a chain that kept them in state before
    the index existed) are read from the index only, so both kinds of chain answer the same.
    """

    __slots__ = ("_index", "_prefixes", "_state")

    def __init__(self, state: ReadView, index: ReadView, prefixes: Sequence[bytes]) -> None:
        self._state = state
        self._index = index
        self._prefixes = tuple(sorted(prefixes))

    def _indexed(self, key: bytes) -> bool:
        return any(key.startswith(prefix) for prefix in self._prefixes)

    def get(self, key: bytes) -> bytes | None:
        return self._index.get(key) if self._indexed(key) else self._state.get(key)

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Yield start <= key < end ascending: state keys outside the index prefixes merged with
        index entries inside them."""
        inside = [prefix for prefix in self._prefixes
                  if _overlaps(start, end, prefix, prefix_end(prefix))]
        if not inside:
            return self._state.iterate(start, end)
        for prefix in inside:
            high = prefix_end(prefix)
            if start >= prefix and (high is None or (end is not None and end <= high)):
                return self._index.iterate(start, end)  # wholly inside one index
        return self._merged(start, end)

    def _merged(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        state = ((key, value) for key, value in self._state.iterate(start, end)
                 if not self._indexed(key))
        return heapq.merge(state, self._index.iterate(start, end), key=lambda row: row[0])


def _overlaps(start: bytes, end: bytes | None, low: bytes, high: bytes | None) -> bool:
    """Whether [start, end) and [low, high) share a key (None: unbounded above)."""
    return (end is None or low < end) and (high is None or start < high)
