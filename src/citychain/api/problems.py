"""Errors as ``application/problem+json`` (RFC 9457) carrying the chain's code and the field.

Every error the gateway returns goes through :class:`Problem`: a chain error keeps its codespace
and code (the same the CLI and ABCI report); the gateway's own problems use codespace ``api``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from citychain.core.errors import lookup_error

__all__ = [
    "API_CODES",
    "PROBLEM_JSON",
    "Problem",
    "chain_problem",
    "install_handlers",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"

API_CODES: dict[str, tuple[int, int]] = {
    # title: (code in codespace "api", HTTP status)
    "invalid_request": (1, 400),
    "not_provable": (2, 400),
    "not_found": (3, 404),
    "rate_limited": (4, 429),
    "node_unavailable": (5, 503),
    "node_error": (6, 502),
    "commit_timeout": (7, 504),
    "method_not_allowed": (8, 405),
}


class Problem(Exception):
    """An error answer: HTTP status, chain codespace and code, a title, a detail and a field."""

    def __init__(self, status: int, codespace: str, code: int, title: str, detail: str, *,
                 field: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.codespace, self.code = status, codespace, code
        self.title, self.detail, self.field = title, detail, field
        self.headers = headers or {}

    @classmethod
    def api(cls, title: str, detail: str, *, field: str = "",
            headers: dict[str, str] | None = None) -> Problem:
        code, status = API_CODES[title]
        return cls(status, "api", code, title, detail, field=field, headers=headers)

    def to_value(self, instance: str = "") -> dict[str, Any]:
        return {"type": f"urn:citychain:error:{self.codespace}:{self.code}", "title": self.title,
                "status": self.status, "detail": self.detail, "code": self.code,
                "codespace": self.codespace, "field": self.field, "instance": instance}


def chain_problem(codespace: str, code: int, log: str, field: str, *,
                  status: int = 422) -> Problem:
    """The problem for a chain error the node reported (a refused tx or query)."""
    error = lookup_error(codespace, code)
    title = error.description if error is not None else "chain error"
    return Problem(status, codespace or "abci", code, title, log or title, field=field)


def problem_response(problem: Problem, instance: str = "") -> JSONResponse:
    return JSONResponse(problem.to_value(instance), status_code=problem.status,
                        media_type=PROBLEM_JSON, headers=problem.headers)


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


def install_handlers(app: FastAPI) -> None:
    """Route every error (ours, FastAPI's validation errors, unknown routes) to problem+json."""

    @app.exception_handler(Problem)
    async def on_problem(request: Request, problem: Problem) -> JSONResponse:
        return problem_response(problem, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        field = _field_of(tuple(first.get("loc") or ()))
        message = str(first.get("msg") or "invalid request")
        where = field or ".".join(str(p) for p in first.get("loc") or ())  # e.g. a missing body
        detail = f"{where}: {message}" if where else message
        return problem_response(Problem.api("invalid_request", detail, field=field),
                                request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            problem = Problem.api("not_found", f"no route {request.url.path}")
        elif error.status_code == 405:
            problem = Problem.api("method_not_allowed",
                                  f"{request.method} is not allowed on {request.url.path}",
                                  headers=dict(error.headers or {}))  # Allow (RFC 9110)
        else:
            problem = Problem(error.status_code, "api", 0, "http_error", str(error.detail))
        return problem_response(problem, request.url.path)
