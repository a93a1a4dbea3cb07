"""Fixtures of the oracle unit tests."""

from __future__ import annotations

import pytest
from oracle_world import make_view

from citychain.testing.state import DictState


@pytest.fixture
def view() -> DictState:
    """Identities, five registered devices (one suspended, one foreign) and default params."""
    return make_view()
