"""Shared fixtures of the integration tests: a started in-memory chain and its cast of keys."""

from __future__ import annotations

import pytest

from citychain.testing.chain import Cast, ChainRunner, memory_chain


@pytest.fixture
def chain() -> tuple[ChainRunner, Cast]:
    """A chain at height 1 on an in-memory store, with the default cast."""
    return memory_chain()
