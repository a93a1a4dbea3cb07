"""`citychain demo`: a short run of the live city ends with a verified chain (and, with the IoT
part on, with its feed values recomputed from their anchored batches)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
from cli_helpers import cli_command, cli_env, free_port, run_cli

from citychain.node.demo import DEMO_MARKER


def test_demo_runs_and_verifies(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = run_cli("demo", "--home", home, "--duration", 5, "--citizens", 20, "--rate", 300,
                     "--rpc-port", free_port(), "--no-iot", timeout=90)
    assert result.returncode == 0, result.stderr
    assert "iot" not in result.stdout.lower(), result.stdout
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


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command:
            found.append(command)
    return found


def test_demo_runs_the_iot_city(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = run_cli("demo", "--home", home, "--duration", 10, "--citizens", 20, "--rate", 200,
                     "--rpc-port", free_port(), "--api-port", 0, "--devices", 40, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    anchored = re.search(r"IoT stopped: (\d+) published, (\d+) accepted, (\d+) refused, "
                         r"(\d+) readings anchored in (\d+) batches", result.stdout)
    assert anchored, result.stdout
    published, accepted, refused, readings, batches = map(int, anchored.groups())
    assert published > 100 and accepted == published and refused == 0, anchored[0]
    assert readings == accepted and batches >= 1, anchored[0]
    verified = re.search(r"feeds verified: (\d+) values", result.stdout)
    assert verified and int(verified[1]) >= 2, result.stdout  # both feeds at least once
    assert re.search(r"citychain iot verify [0-9a-f]{64} --node ", result.stdout), result.stdout
    # The street-lighting contract was created, signed and funded: it is active (waiting for
    # its 20 s hold, longer than this run) or already released.
    assert re.search(r"contract 1: (active, milestone pending|completed, milestone released)",
                     result.stdout), result.stdout
    assert "chain verified" in result.stdout
    assert (home / "iot" / "readings.db").exists()
    # Broker (its config lives in the home) and gateway (--home) are gone.
    assert processes_mentioning(str(home)) == []
