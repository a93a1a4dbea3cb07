"""`citychain node start --home <validator dir>`: one organisation's app + CometBFT, supervised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from net_harness import prepare_cometbft

from citychain.node.testnet import TestnetOptions, init_testnet, is_running, rpc_call

CITYCHAIN = Path(sys.executable).parent / "citychain"
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _cometbft() -> None:
    prepare_cometbft()


def _height(url: str) -> int:
    try:
        return int(rpc_call(url, "status")["sync_info"]["latest_block_height"])
    except Exception:
        return 0


@pytest.mark.timeout(120)
def test_node_start_runs_a_validator_directory_until_sigint(tmp_path: Path) -> None:
    testnet = init_testnet(tmp_path / "net", TestnetOptions(validators=1,
                                                            chain_id="citychain-nodestart"))
    node = testnet.nodes[0]
    process = subprocess.Popen(
        [str(CITYCHAIN), "node", "start", "--home", str(tmp_path / "net" / node.name)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while _height(node.rpc_url) < 3 and time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            time.sleep(0.5)
        assert _height(node.rpc_url) >= 3, "the validator did not produce blocks"
        assert is_running(testnet, 0)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        output = process.stdout.read().decode()  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert not is_running(testnet, 0), "CometBFT or the application outlived the supervisor"
    assert "application ready" in output and "CometBFT started" in output


def test_invalid_solo_options_on_a_validator_directory(tmp_path: Path) -> None:
    testnet = init_testnet(tmp_path / "net", TestnetOptions(validators=1,
                                                            chain_id="citychain-nodestart"))
    result = subprocess.run(
        [str(CITYCHAIN), "node", "start", "--home",
         str(tmp_path / "net" / testnet.nodes[0].name), "--rpc-port", "0"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "validator directory" in result.stderr and "--rpc-port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
