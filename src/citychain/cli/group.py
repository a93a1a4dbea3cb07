"""The root command group: every failure becomes one line on stderr and a documented exit code."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from citychain.cli.errors import EXIT_FAILED, EXIT_USAGE, describe, one_line

DEBUG_ENV = "CITYCHAIN_DEBUG"


def print_error(message: str) -> None:
    """Write ``error: <message>`` as exactly one line on stderr."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()


class CityGroup(TyperGroup):
    """A Typer group whose ``main`` owns error reporting (also under typer's CliRunner)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            result = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                  standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except typer.Abort:
            print_error("aborted")
            code = EXIT_FAILED
        except Exception as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                return _finish(EXIT_USAGE, standalone_mode)  # its help text is already printed
            described = describe(exc)
            if described is None:
                if os.environ.get(DEBUG_ENV):
                    traceback.print_exc()
                described = (EXIT_FAILED, f"internal error: {type(exc).__name__}: {exc} "
                                          f"(set {DEBUG_ENV}=1 for a traceback)")
            code, message = described
            print_error(message)
        return _finish(code, standalone_mode)


def _finish(code: int, standalone_mode: bool) -> int:
    if not standalone_mode:
        return code
    sys.exit(code)
