"""End to end through real processes: init, node start, tx, proven query, tx show, stop, verify."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

from cli_helpers import cli_command, cli_env, free_port, run_cli


def _wait_for_line(process: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r}; got {seen!r}")


def test_node_round_trip_in_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    init = run_cli("init", "--home", home, "--account", "alice:citizen", "--account", "bob",
                   "--balance", "alice:1000000")
    assert init.returncode == 0, init.stderr
    bob = json.loads(run_cli("keys", "show", "bob", "--home", home, "--json").stdout)["did"]

    node = subprocess.Popen(cli_command("node", "start", "--home", home, "--rpc-port", port,
                                        "--block-interval", "0.05"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env())
    try:
        _wait_for_line(node, rf"rpc: http://127\.0\.0\.1:{port}", 30)
        url = f"http://127.0.0.1:{port}"
        sent = run_cli("tx", "bank", "transfer", "--from", "alice", "--to", bob, "--denom",
                       "ucity", "--amount", "250000", "--home", home, "--node", url, "--json")
        assert sent.returncode == 0, sent.stderr
        outcome = json.loads(sent.stdout)
        assert outcome["code"] == 0 and outcome["height"] >= 1

        balance = run_cli("query", "balance", bob, "ucity", "--prove", "--home", home,
                          "--node", url)
        assert balance.returncode == 0, balance.stderr
        assert '"amount": 250000' in balance.stdout
        assert "verified: proof checked against app hash" in balance.stdout

        shown = run_cli("tx", "show", outcome["hash"], "--prove", "--home", home, "--node", url)
        assert shown.returncode == 0, shown.stderr
        assert "verified: inclusion proof" in shown.stdout
        _wait_for_line(node, r"^block\s+\d+\s+txs\s+1\s+failed\s+0\s+app [0-9a-f]{16}", 10)
    finally:
        node.send_signal(signal.SIGINT)
        out, err = node.communicate(timeout=30)
    assert node.returncode == 0, err
    assert "stopped at height" in out

    verified = run_cli("verify", "--home", home)
    assert verified.returncode == 0, verified.stderr
    assert re.match(r"chain verified: \d+ blocks, 1 txs", verified.stdout)


def test_node_start_refuses_a_taken_port(tmp_path: Path) -> None:
    import socket

    home = tmp_path / "home"
    assert run_cli("init", "--home", home).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("node", "start", "--home", home, "--rpc-port", port, "--quiet")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot serve RPC"), result.stderr


def test_node_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_cli("init", "--home", home).returncode == 0
    node = subprocess.Popen(cli_command("node", "start", "--home", home, "--rpc-port",
                                        free_port()),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env())
    try:
        _wait_for_line(node, r"^rpc: http://", 30)
    finally:
        node.send_signal(signal.SIGTERM)
        out, err = node.communicate(timeout=30)
    assert node.returncode == 0, err
    assert "stopped at height 0" in out
