"""Typed errors of the state store (codespace "store"; code 1 is ProofError in core.merkle)."""

from __future__ import annotations

from citychain.core.errors import ChainError


class StoreError(ChainError):
    """Base of the store's errors (abstract: no code of its own)."""

    codespace = "store"


class CommitHeightError(StoreError):
    """A commit names a height other than the next one."""

    code = 2
    description = "commit height is not the next height"


class StaleWorkingSetError(StoreError):
    """A working set was begun on a version that is no longer the latest, or on another store."""

    code = 3
    description = "working set is not based on the latest committed version"


class KeyTooLargeError(StoreError):
    """A key is longer than the store accepts."""

    code = 4
    description = "state key is too long"


class StoreCorruptionError(StoreError):
    """Stored data contradicts itself (a node, a value or a version row is damaged)."""

    code = 5
    description = "stored state is damaged"


class StoreClosedError(StoreError):
    """The store was closed."""

    code = 6
    description = "store is closed"


class StoreFormatError(StoreError):
    """The database was written by an incompatible version of the store."""

    code = 7
    description = "state database has an unknown format"
