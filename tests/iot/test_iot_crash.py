"""Kill -9 the gateway (`citychain iot gateway`, a subprocess) mid-stream and restart it: every
reading the broker acknowledged to the publisher ends up stored, and the chain holds each batch
root exactly once; then `citychain iot verify` proves a reading and refuses a tampered one. On
both stores: a SQLite file and a real PostgreSQL (``--store postgresql://...``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from iot_harness import (
    Broker,
    DeviceClock,
    IotChain,
    Publisher,
    Ticker,
    store_counts,
    stored_ids,
    tamper_reading,
    wait_for,
)
from typer.testing import CliRunner

from citychain.cli.main import app as cli_app
from citychain.iot.reading import Reading
from citychain.iot.store import ANCHORED, ReadingStore

pytestmark = pytest.mark.slow


class GatewayProcess:
    """`python -m citychain.cli iot gateway ...` with its output in files."""

    def __init__(self, chain: IotChain, broker: Broker, store: Path | str, logs: Path) -> None:
        self.args = [sys.executable, "-m", "citychain.cli", "iot", "gateway", "--key", "gw",
                     "--broker", broker.address, "--home", str(chain.home),
                     "--node", chain.rpc_url, "--store", str(store),
                     "--batch-seconds", "0.3", "--batch-readings", "200",
                     "--stats-seconds", "1"]
        self.logs = logs
        self.runs = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.runs += 1
        out = (self.logs / f"gateway-{self.runs}.out").open("w")
        err = (self.logs / f"gateway-{self.runs}.err").open("w")
        env = {**os.environ, "CITYCHAIN_HOME": "", "CITYCHAIN_NODE": ""}
        self.process = subprocess.Popen(self.args, stdout=out, stderr=err, text=True, env=env)
        out.close()
        err.close()
        path = self.logs / f"gateway-{self.runs}.out"
        wait_for(lambda: "iot gateway ready" in path.read_text() or self._died(),
                 timeout=30, what="the gateway to subscribe")
        assert self.process.poll() is None, self.stderr()

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stderr(self) -> str:
        return (self.logs / f"gateway-{self.runs}.err").read_text()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise


def test_kill_9_mid_stream_loses_no_acked_reading_and_anchors_none_twice(
        broker: Broker, chain: IotChain, tmp_path: Path, store_location: Path | str) -> None:
    store_path = store_location
    start_height = chain.height()  # the chain is the module's: both stores' runs anchor on it
    gateway = GatewayProcess(chain, broker, store_path, tmp_path)
    devices = [DeviceClock(chain.key(name)) for name in ("s1", "s2", "s3")]
    publisher = Publisher(broker)
    sent: list[tuple[Reading, object]] = []
    lock = threading.Lock()

    def publish_some() -> None:
        for device in devices:
            reading = device.next(7)
            info = publisher.publish(reading.topic, reading.to_json(), wait=False)
            with lock:
                sent.append((reading, info))

    ticker = Ticker(publish_some, 0.004)
    gateway.start()
    try:
        ticker.start()
        wait_for(lambda: len(stored_ids(store_path)) > 300, what="readings before the kill")
        in_wal = (store_path.with_suffix(".db-wal").exists if isinstance(store_path, Path)
                  else lambda: True)  # SQLite: killed with readings in its write-ahead log
        wait_for(lambda: in_wal() and store_counts(store_path).get("batches_anchored", 0) >= 1,
                 what="a first anchor")
        gateway.kill()
        time.sleep(0.5)            # the broker queues for the gateway's session meanwhile
        # the restarted gateway reads each device on its first reading instead of in pages
        gateway.args.append("--no-preload-devices")
        gateway.start()
        time.sleep(1.0)
        ticker.stop()
        with lock:
            published = list(sent)
        acked = set()
        for reading, info in published:
            info.wait_for_publish(timeout=10)  # type: ignore[attr-defined]
            if info.is_published():  # type: ignore[attr-defined]
                acked.add(reading.reading_id)
        assert len(acked) > 500
        wait_for(lambda: acked <= stored_ids(store_path), timeout=30,
                 what="every acknowledged reading in the store")
        wait_for(lambda: _all_batched_and_anchored(store_path), timeout=30,
                 what="every reading batched and anchored")
        assert gateway.stop() == 0, gateway.stderr()
    finally:
        ticker.stop()
        publisher.close()
        gateway.stop()
    assert "iot gateway: received=" in (tmp_path / "gateway-2.out").read_text()
    assert "preloaded" in (tmp_path / "gateway-1.err").read_text()
    assert "preloaded" not in (tmp_path / "gateway-2.err").read_text()

    store = ReadingStore(store_path)
    try:
        batches = store.batches()
        assert all(batch.status == ANCHORED for batch in batches)
        assert sum(batch.reading_count for batch in batches) == len(store.reading_ids())
        for batch in batches:
            anchor = chain.anchor(batch.merkle_root)
            assert anchor is not None and anchor["batch_id"] == batch.batch_id.hex()
        roots = chain.anchored_roots(after=start_height)
        assert len(roots) == len(set(roots)) == len(batches)
        assert set(roots) == {batch.merkle_root.hex() for batch in batches}
        some_id = store.reading_ids()[len(acked) // 2]
    finally:
        store.close()

    runner = CliRunner()
    env = {"CITYCHAIN_HOME": None, "CITYCHAIN_NODE": None}
    args = ["iot", "verify", some_id.hex(), "--home", str(chain.home), "--node", chain.rpc_url,
            "--store", str(store_path)]
    result = runner.invoke(cli_app, args, env=env)
    assert result.exit_code == 0, result.stderr
    assert "verified: anchored at height" in result.stdout
    result = runner.invoke(cli_app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    proof = json.loads(result.stdout)
    assert proof["verified"] is True and proof["reading_id"] == some_id.hex()
    assert proof["anchor"]["merkle_root"] == proof["merkle_root"]
    tamper_reading(store_path, some_id)
    result = runner.invoke(cli_app, args, env=env)
    assert result.exit_code == 4
    assert "reading NOT verified" in result.stderr


def _all_batched_and_anchored(store_path: Path | str) -> bool:
    counts = store_counts(store_path)
    return all(status in {"readings_batched", "batches_anchored"} for status in counts)
