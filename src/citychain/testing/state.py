"""A plain dict-backed StateView for unit tests of pure module logic (no Merkle tree)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from citychain.core.query_index import IndexedView, QueryIndex, derive_entries
from citychain.core.state import prefix_end

_DELETED = None


class DictState:
    """A StateView over a dict, with branches that write back on ``write()``."""

    def __init__(self, data: dict[bytes, bytes] | None = None,
                 parent: DictState | None = None) -> None:
        self.data: dict[bytes, bytes | None] = dict(data or {})
        self.parent = parent

    def get(self, key: bytes) -> bytes | None:
        if key in self.data:
            return self.data[key]
        return self.parent.get(key) if self.parent is not None else None

    def set(self, key: bytes, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError("state values are bytes")
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data[key] = _DELETED

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        merged = dict(self.parent.iterate(start, end)) if self.parent is not None else {}
        for key, value in self.data.items():
            if key >= start and (end is None or key < end):
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        yield from sorted(merged.items())

    def branch(self) -> DictState:
        return DictState(parent=self)

    def write(self) -> None:
        if self.parent is None:
            raise RuntimeError("write() on a root state")
        self.parent.data.update(self.data)
        self.data = {}

    def snapshot(self) -> dict[bytes, bytes]:
        """Return every live key/value, sorted (for assertions)."""
        return dict(self.iterate(b""))


def query_view(state: DictState, indexes: Sequence[QueryIndex]) -> IndexedView:
    """``state`` as a query sees it on a node: ``indexes``' entries derived from its records,
    served under their prefixes (see core.query_index)."""
    records = [row for index in indexes
               for row in state.iterate(index.source, prefix_end(index.source))]
    entries = DictState(dict(derive_entries(indexes, records)))
    return IndexedView(state, entries, [index.prefix for index in indexes])
