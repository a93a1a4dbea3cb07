"""Assertions shared by integration tests: exact error codes and untouched committed state."""

from __future__ import annotations

from dataclasses import dataclass

from citychain.app.types import TxResult
from citychain.core.errors import ChainError
from citychain.testing.chain import ChainRunner


@dataclass(frozen=True)
class Before:
    """The committed state and app hash of a chain at one moment."""

    app_hash: bytes
    state: dict[bytes, bytes]

    @classmethod
    def of(cls, runner: ChainRunner) -> Before:
        return cls(runner.app_hash, runner.snapshot())


def assert_error(result: TxResult, error: type[ChainError]) -> None:
    """The result carries exactly ``error``'s codespace and code."""
    found = (result.codespace, result.code)
    assert found == (error.codespace, error.code), (
        f"expected {error.__name__} {error.codespace}/{error.code}, got "
        f"{result.codespace}/{result.code}: {result.log}")


def assert_ok(result: TxResult) -> None:
    assert result.ok, f"{result.codespace}/{result.code}: {result.log}"


def assert_unchanged(runner: ChainRunner, before: Before) -> None:
    """Nothing committed since ``before`` changed a key, and the app hash is the same."""
    after = runner.snapshot()
    assert changed_keys(before.state, after) == []
    assert runner.app_hash == before.app_hash


def changed_keys(before: dict[bytes, bytes], after: dict[bytes, bytes]) -> list[bytes]:
    """Keys added, removed or rewritten between two snapshots, sorted."""
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
