"""State protocols: the read/write view handlers see, branches, and the versioned store.

Modules only ever see a :class:`StateView`. The application owns a :class:`VersionedStore`
(SQLite by default, memory for tests) and hands each transaction a branch that is written back
only when the transaction succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class ReadView(Protocol):
    """Read access to state at one point in time. Iteration is in ascending key-byte order."""

    def get(self, key: bytes) -> bytes | None:
        """Return the value stored at ``key``, or None."""

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Yield (key, value) for start <= key < end (end None: no upper bound), ascending."""


class StateView(ReadView, Protocol):
    """Read/write access. Writes are buffered until the owner writes the branch back."""

    def set(self, key: bytes, value: bytes) -> None:
        """Store ``value`` at ``key`` (value may be empty bytes, never None)."""

    def delete(self, key: bytes) -> None:
        """Remove ``key``; deleting an absent key is a no-op."""

    def branch(self) -> Branch:
        """Return a child view whose writes reach this view only on ``write()``."""


class Branch(StateView, Protocol):
    def write(self) -> None:
        """Apply this branch's writes to its parent."""


class WorkingSet(StateView, Protocol):
    """The pending state of the block being executed, on top of the last committed version."""

    def compute_root(self) -> bytes:
        """Return the Merkle root the state would have if committed now (nothing persisted)."""

    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """Return the pending writes sorted by key (None marks a delete)."""


def prefix_end(prefix: bytes) -> bytes | None:
    """Return the smallest key greater than every key starting with ``prefix`` (None: unbounded)."""
    trimmed = bytearray(prefix)
    while trimmed:
        if trimmed[-1] != 0xFF:
            trimmed[-1] += 1
            return bytes(trimmed)
        trimmed.pop()
    return None


def iterate_prefix(view: ReadView, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, value) for every key that starts with ``prefix``, ascending."""
    return view.iterate(prefix, prefix_end(prefix))
