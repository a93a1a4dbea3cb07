"""Exit codes of the CLI and the one-line error a failing command prints on stderr."""

from __future__ import annotations

import json
from typing import Any

from citychain.client.rpc import NodeUnreachableError, RpcError
from citychain.client.verify import VerificationError
from citychain.consensus.solo.node import HandshakeError
from citychain.core.errors import ChainError
from citychain.node.home import HomeError
from citychain.node.keyring import KeyringError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNVERIFIED = 4

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (EXIT_FAILED, "the chain refused the request (a ChainError: rejected or failed tx, "
                  "invalid query), the audit found an inconsistency, or a local file "
                  "(home, key, genesis) is missing or invalid"),
    (EXIT_USAGE, "usage error: unknown command, missing or malformed option or value"),
    (EXIT_UNREACHABLE, "the node could not be reached (or did not answer in time)"),
    (EXIT_UNVERIFIED, "verification failed: a proof, signature or header did not check out"),
)


class CliError(Exception):
    """A failure the CLI reports as one line on stderr and an exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class UsageFailure(CliError):
    exit_code = EXIT_USAGE


class NodeUnreachable(CliError):
    exit_code = EXIT_UNREACHABLE


class VerificationFailed(CliError):
    exit_code = EXIT_UNVERIFIED


def format_chain_error(codespace: str, code: int, message: str, field: str = "") -> str:
    """Return ``[codespace/code] message (field f)``: how every chain error reads in the CLI."""
    text = f"[{codespace}/{code}] {message}"
    if field:
        text += f" (field {field})"
    return text


def rejected(result: dict[str, Any]) -> CliError:
    """Return the error for a failed tx or query result as the node reported it."""
    return CliError(format_chain_error(str(result.get("codespace") or "core"),
                                       int(result.get("code") or 0), str(result.get("log")),
                                       str(result.get("info") or "")))


def node_error(exc: RpcError) -> CliError:
    """Classify a client RpcError: transport failures are 'unreachable', the rest are refusals."""
    if isinstance(exc, NodeUnreachableError):
        return NodeUnreachable(str(exc))
    return CliError(str(exc))


def describe(exc: BaseException) -> tuple[int, str] | None:
    """Map an exception to (exit code, one-line message); None for exceptions we do not own."""
    if isinstance(exc, CliError):
        return exc.exit_code, exc.message
    if isinstance(exc, ChainError):
        return EXIT_FAILED, format_chain_error(exc.codespace, exc.code, exc.message,
                                               exc.field or "")
    if isinstance(exc, RpcError):
        error = node_error(exc)
        return error.exit_code, error.message
    if isinstance(exc, VerificationError):
        return EXIT_UNVERIFIED, f"verification failed: {exc}"
    if isinstance(exc, (HomeError, KeyringError, HandshakeError)):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, json.JSONDecodeError):
        return EXIT_FAILED, f"the answer is not valid JSON: {exc}"
    if _is_click_exception(exc):
        # Typer vendors click, so match its exceptions by their interface, not by class.
        message = str(exc.format_message())  # type: ignore[attr-defined]
        code = int(exc.exit_code)  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        if code == EXIT_USAGE and ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        return code, message
    return None


def _is_click_exception(exc: BaseException) -> bool:
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


def one_line(text: str) -> str:
    """Collapse a message to a single line."""
    return " ".join(text.split())
