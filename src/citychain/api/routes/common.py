"""What every router shares: node errors as problems, JSON-friendly values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from citychain.api.node import NodeAnswerError, NodeUnavailableError, NotFoundError
from citychain.api.problems import Problem
from citychain.api.schemas import ProblemAnswer

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemAnswer, "content": {"application/problem+json": {}},
             "description": description}
    for status, description in [(400, "malformed request (the field is named)"),
                                (404, "not found"),
                                (422, "the chain refused it (chain codespace and code)"),
                                (429, "rate limited (see Retry-After)"),
                                (502, "the node answered wrongly"),
                                (503, "the node cannot be reached")]}


@contextmanager
def node_problems(what: str = "") -> Iterator[None]:
    """Turn the node backend's errors into problems (404, 502, 503)."""
    try:
        yield
    except NotFoundError as exc:
        raise Problem.api("not_found", f"{what or 'it'} was not found: {exc}") from None
    except NodeUnavailableError as exc:
        raise Problem.api("node_unavailable", str(exc)) from None
    except NodeAnswerError as exc:
        raise Problem.api("node_error", str(exc)) from None


def jsonable(value: Any) -> Any:
    """Decoded canonical data as JSON: bytes become hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
