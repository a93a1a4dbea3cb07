"""Helpers for CLI tests: invoking the app in-process or as a child process, free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from citychain.cli.main import app
from citychain.node.keyring import Keyring

GENESIS_TIME_NS = 1_700_000_000_000_000_000


def cli(*args: object) -> Result:
    """Run the CLI in-process (typer's CliRunner) with stdout and stderr kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args], env={"CITYCHAIN_HOME": None,
                                                               "CITYCHAIN_NODE": None})


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYCHAIN_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli_command(*args: object) -> list[str]:
    """The argv that runs the CLI in a child process."""
    return [sys.executable, "-m", "citychain.cli", *(str(a) for a in args)]


def run_cli(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout,
                          env=cli_env(), check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_error_line(result: Result | subprocess.CompletedProcess[str]) -> str:
    """Assert stderr is exactly one `error: ...` line and return it."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@dataclass
class City:
    home: Path
    url: str = ""

    def did(self, name: str) -> str:
        return Keyring(self.home / "keyring").info(name).did
