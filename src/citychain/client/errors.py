"""The SDK's exception tree: one base, the gateway's problems by kind, and verification failures.

::

    CitychainError
    ├── ApiError                  the gateway answered application/problem+json
    │   ├── InvalidRequestError   400: a malformed request or parameter (``field`` names it)
    │   ├── NotFoundError         404: unknown tx, block above the tip, unknown query
    │   ├── TxRejectedError       422 on submit: the node refused the tx at check
    │   ├── QueryRejectedError    422 on a query: the chain refused the query
    │   └── RateLimitedError      429: over the per-client limit (``retry_after`` seconds)
    ├── GatewayUnavailableError   cannot connect, or 502 / 503 / 504, or an answer that is not
    │   └── CommitTimeoutError    504 on submit: not committed in time (it may still commit)
    ├── TxFailedError             a committed tx whose result code is not 0 (only on request)
    ├── VerificationError         an answer does not verify against the trusted genesis
    │   └── LightVerificationError  (citychain.client.cometbft) and its typed subclasses
    └── WalletError               a key file or mnemonic cannot be read

``ApiError`` carries the problem's ``status``, ``code``, ``codespace`` (the chain's, or ``api``
for the gateway's own problems), ``field`` and ``detail``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ApiError",
    "CitychainError",
    "CommitTimeoutError",
    "GatewayUnavailableError",
    "InvalidRequestError",
    "NotFoundError",
    "Problem",
    "QueryRejectedError",
    "RateLimitedError",
    "TxFailedError",
    "TxRejectedError",
    "VerificationError",
    "WalletError",
]


class CitychainError(Exception):
    """Base of every error the SDK raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """An ``application/problem+json`` answer (RFC 9457) with the chain's code and field."""

    status: int
    code: int
    codespace: str
    title: str
    detail: str
    field: str = ""
    type: str = ""
    instance: str = ""

    @classmethod
    def from_value(cls, value: Any, status: int) -> Problem:
        """Read a problem body; missing or mistyped members get neutral values (the HTTP status
        stands in for a missing ``status``)."""
        body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}

        def text(name: str) -> str:
            item = body.get(name)
            return item if isinstance(item, str) else ""

        code = body.get("code")
        given = body.get("status")
        return cls(status=given if isinstance(given, int) else status,
                   code=code if isinstance(code, int) and not isinstance(code, bool) else 0,
                   codespace=text("codespace"), title=text("title"), detail=text("detail"),
                   field=text("field"), type=text("type"), instance=text("instance"))


class ApiError(CitychainError):
    """The gateway answered with a problem: ``status``, ``code``, ``codespace``, ``field``,
    ``detail`` (and the whole ``problem``)."""

    def __init__(self, problem: Problem) -> None:
        where = f" (field {problem.field})" if problem.field else ""
        super().__init__(f"{problem.status} {problem.codespace or 'api'}:{problem.code} "
                         f"{problem.title}: {problem.detail}{where}")
        self.problem = problem
        self.status = problem.status
        self.code = problem.code
        self.codespace = problem.codespace
        self.field = problem.field
        self.detail = problem.detail
        self.title = problem.title


class InvalidRequestError(ApiError):
    """400: the request or one of its parameters is malformed (``field`` names it); also a
    proof asked for a query that reads a range (``api:2``)."""


class NotFoundError(ApiError):
    """404: no such tx, block, header or query."""


class TxRejectedError(ApiError):
    """422 on submit: the node refused the tx at check (its sequence was not used)."""


class QueryRejectedError(ApiError):
    """422 on a query: the chain refused the query (``codespace``/``code`` say why)."""


class RateLimitedError(ApiError):
    """429: over the per-client rate limit; retry after ``retry_after`` seconds (None if the
    gateway did not say)."""

    def __init__(self, problem: Problem, retry_after: float | None) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


class GatewayUnavailableError(CitychainError):
    """The gateway cannot be used: no connection, a timeout, 502 (its node answered wrongly),
    503 (its node cannot be reached), 504, or an answer that is not what the API documents.
    ``status`` and ``problem`` are set when the gateway answered."""

    def __init__(self, message: str, *, status: int | None = None,
                 problem: Problem | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


class CommitTimeoutError(GatewayUnavailableError):
    """504 on submit: the tx did not commit in the gateway's time; it may still commit."""


class TxFailedError(CitychainError):
    """A committed tx whose result code is not 0 (its sequence was used). Raised only when the
    caller asks for it (``submit(..., raise_on_failure=True)``)."""

    def __init__(self, hash: str, height: int, code: int, codespace: str, log: str,
                 field: str) -> None:
        where = f" (field {field})" if field else ""
        super().__init__(f"tx {hash} committed at height {height} but failed: "
                         f"{codespace}:{code} {log}{where}")
        self.hash, self.height = hash, height
        self.code, self.codespace, self.log, self.field = code, codespace, log, field


class VerificationError(CitychainError):
    """The answer does not verify: the gateway or node that served it is wrong or lying."""


class WalletError(CitychainError):
    """A key file, seed or mnemonic cannot be read."""
