"""Helpers every module's query functions share: checking the parameter map's names."""

from __future__ import annotations

from typing import Any

from citychain.core.errors import InvalidQueryError


def check_query_params(params: dict[str, Any], *, required: tuple[str, ...],
                       optional: tuple[str, ...]) -> None:
    """Raise InvalidQueryError naming a missing required or an unknown parameter."""
    for name in required:
        if name not in params:
            raise InvalidQueryError(f"missing query parameter {name!r}", field=name)
    for name in sorted(params):
        if name not in required and name not in optional:
            raise InvalidQueryError(f"unknown query parameter {name!r}", field=name)
