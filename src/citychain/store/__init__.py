"""State backends behind core's protocols: versioned, authenticated key-value stores.

Both stores keep every committed height, commit a block atomically, prove any key (membership or
non-membership) against the root of any retained height, and audit themselves. Beside the
authenticated state they keep the node-local query indexes (:mod:`citychain.core.query_index`),
written in the same transaction as the block they derive from. The tree scheme
and the proof verifier live in :mod:`citychain.core.merkle`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from citychain.core.merkle import Proof
from citychain.core.query_index import QueryIndex
from citychain.core.state import ReadView, WorkingSet
from citychain.store.errors import (
    CommitHeightError,
    KeyTooLargeError,
    StaleWorkingSetError,
    StoreClosedError,
    StoreCorruptionError,
    StoreError,
    StoreFormatError,
)
from citychain.store.memory import MemoryStore
from citychain.store.sqlite import SqliteStore

__all__ = [
    "CommitHeightError",
    "KeyTooLargeError",
    "MemoryStore",
    "SqliteStore",
    "StaleWorkingSetError",
    "StoreClosedError",
    "StoreCorruptionError",
    "StoreError",
    "StoreFormatError",
    "VersionedStore",
]


class VersionedStore(Protocol):
    """A store of state versions by block height (see docs/adr/0002-authenticated-state.md)."""

    @property
    def latest_height(self) -> int:
        """The last committed height (0: nothing committed yet)."""

    @property
    def latest_root(self) -> bytes:
        """The root at ``latest_height`` (32 zero bytes for the empty state)."""

    def begin(self) -> WorkingSet:
        """Return a writable overlay on the latest committed state."""

    def commit(self, working: WorkingSet, height: int,
               meta: dict[str, bytes] | None = None) -> bytes:
        """Persist ``working`` as version ``height`` atomically (with ``meta``); return the root.

        Raises:
            CommitHeightError: ``height`` is not latest + 1 (first commit: not >= 1).
            StaleWorkingSetError: ``working`` was begun on an older version or another store.
        """

    def reader(self, height: int | None = None) -> ReadView:
        """Return a read-only view at ``height`` (None: latest).

        Raises:
            citychain.core.errors.HeightNotAvailableError: ``height`` is not retained.
        """

    def root_at(self, height: int) -> bytes:
        """Return the root committed at ``height``.

        Raises:
            citychain.core.errors.HeightNotAvailableError: ``height`` is not retained.
        """

    def prove(self, key: bytes, height: int | None = None) -> tuple[bytes | None, Proof]:
        """Return the value of ``key`` (None: absent) and its proof against ``root_at(height)``.

        Raises:
            citychain.core.errors.HeightNotAvailableError: ``height`` is not retained.
        """

    def attach_indexes(self, indexes: tuple[QueryIndex, ...],
                       progress: Callable[[int, int], None] | None = None, *,
                       rebuild: bool = False) -> int | None:
        """Write ``indexes``' entries at every commit; rebuild them if the stored ones were
        built by other definitions or ``rebuild`` is set (returns the entries rebuilt, or
        None)."""

    def index_reader(self, height: int | None = None) -> ReadView:
        """Return a read-only view of the query index entries at ``height`` (None: latest).

        Raises:
            citychain.core.errors.HeightNotAvailableError: ``height`` is not retained.
        """

    def index_entries(self) -> list[tuple[bytes, int, bytes]]:
        """Return every stored query index entry as (key, height, value), by key."""

    def get_meta(self, name: str) -> bytes | None:
        """Return the latest metadata value committed under ``name``."""

    def audit(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Re-check everything stored; return the problems found (empty: sound)."""

    def close(self) -> None:
        """Release the store."""
