"""`citychain demo`: a short run of the live city ends with a verified chain."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
from cli_helpers import cli_command, cli_env, free_port, run_cli

from citychain.node.demo import DEMO_MARKER


def test_demo_runs_and_verifies(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = run_cli("demo", "--home", home, "--duration", 5, "--citizens", 20, "--rate", 300,
                     "--rpc-port", free_port(), timeout=90)
    assert result.returncode == 0, result.stderr
    match = re.search(r"chain verified: (\d+) blocks, (\d+) txs", result.stdout)
    assert match, result.stdout
    # 20 registrations, 20 grants and 20 mints at least, then transfers
    assert int(match[2]) > 60
    assert "refused" in result.stdout
    assert (home / DEMO_MARKER).exists()
    again = run_cli("verify", "--home", home)
    assert again.returncode == 0, again.stderr


def test_demo_serves_the_http_api_while_it_runs(tmp_path: Path) -> None:
    api_port = free_port()
    process = subprocess.Popen(
        cli_command("demo", "--home", tmp_path / "demo", "--duration", 8, "--citizens", 10,
                    "--rate", 100, "--rpc-port", free_port(), "--api-port", api_port),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if line.startswith("api: "):
                url = line.split()[1]
                break
        assert url == f"http://127.0.0.1:{api_port}", url
        status = httpx.get(f"{url}/v1/status", timeout=10).json()
        assert status["driver"] == "solo" and status["chain_id"]
        blocks = httpx.get(f"{url}/v1/blocks", params={"limit": 1}, timeout=10).json()
        assert blocks["items"][0]["height"] >= 1
        rest, errors = process.communicate(timeout=90)
        assert process.returncode == 0, errors
        assert "chain verified" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_invalid_demo_in_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = run_cli("demo", "--home", tmp_path, "--duration", 1, "--citizens", 2)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "not a demo home" in lines[0], result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
