"""Run one organisation's validator: the ABCI application child and its CometBFT child.

    python -m citychain.node.supervisor --node <testnet>/node2

The application runs as ``python -m citychain.consensus.abci`` on the node's SQLite state, on the
proxy-app address of the node's ``validator.json``; once it prints ``READY <address> <height>``,
the supervisor re-indexes the last blocks' txs up to that height (a kill can leave them out of
CometBFT's tx index for good) and starts CometBFT. The two live and die together: if either exits,
the supervisor stops the other and exits 1 with one line naming which one stopped, its exit code
and, for CometBFT, the reason found in its log (a wrong app hash at height H, for instance).
Nothing is restarted automatically: a restart is a new supervisor, and CometBFT's handshake then
replays into the application whatever blocks it misses. SIGTERM or SIGINT stop CometBFT first, then
the application, and exit 0. CometBFT v0.38 does not exit after a consensus failure (a wrong app
hash, say): it stops consensus and keeps serving RPC, so the supervisor watches its log for
``CONSENSUS FAILURE`` and stops both processes then too.

Layout of a validator directory (written by ``citychain testnet init``)::

    validator.json     name, proxy_app address, ports
    cometbft/          CometBFT home (config/, data/)
    keyring/           the organisation's account key
    data/state.db      the application state
    logs/              app.log, cometbft.log, supervisor.log
    *.pid              supervisor.pid, app.pid, cometbft.pid while running
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from citychain.node.cometbft import (
    CometBftError,
    reindex_recent_events,
    start_cometbft,
    stop_process,
)

READY_TIMEOUT = 120.0
POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class ValidatorDir:
    """The files of one validator node."""

    root: Path

    @property
    def settings_path(self) -> Path:
        return self.root / "validator.json"

    @property
    def cometbft_home(self) -> Path:
        return self.root / "cometbft"

    @property
    def keyring_dir(self) -> Path:
        return self.root / "keyring"

    @property
    def state_db(self) -> Path:
        return self.root / "data" / "state.db"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def pid_path(self, process: str) -> Path:
        return self.root / f"{process}.pid"

    def settings(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.settings_path.read_text())
        return value

    def write_pid(self, process: str, pid: int) -> None:
        """Record ``process``'s pid atomically (a temporary file renamed over the old one), so
        a reader never finds the file empty while it is being rewritten."""
        path = self.pid_path(process)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(f"{pid}\n")
        os.replace(temporary, path)

    def read_pid(self, process: str) -> int | None:
        try:
            return int(self.pid_path(process).read_text().strip())
        except (OSError, ValueError):
            return None


def cometbft_failure_reason(log_path: Path) -> str:
    """The reason CometBFT stopped, as found at the end of its log ('' when none is known)."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(max(0, log_path.stat().st_size - 200_000))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    wrong = list(re.finditer(r"wrong Block\.Header\.AppHash\.?\s*Expected (\w+), got (\w+)",
                             text))
    if wrong:
        last = wrong[-1]
        heights = re.findall(r"height=(\d+)", text[max(0, last.start() - 4000):last.end() + 400])
        where = f" at height {heights[-1]}" if heights else ""
        return (f"app hash mismatch{where}: the block's header carries {last.group(1)}, "
                f"this node's application computed {last.group(2)} for the block before")
    for pattern in (r"(panic: .+)", r"(ERROR: .+)", r"(error .*ABCI.*)", r"(E\[.+)"):
        found = re.findall(pattern, text)
        if found:
            return str(found[-1])[:400]
    return ""


class LogWatcher:
    """Reads what CometBFT appends to its log, looking for a consensus failure.

    After ``CONSENSUS FAILURE!!!`` (for instance a block whose app hash differs from what this
    node's application computed) CometBFT v0.38 stops its consensus routine but keeps the
    process, and so its RPC, alive: the supervisor treats that line as the node stopping.
    """

    MARK = b"CONSENSUS FAILURE!!!"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self._carry = b""

    def consensus_failed(self) -> bool:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return False
        self.offset += len(data)
        window = self._carry + data
        self._carry = window[-len(self.MARK):]
        return self.MARK in window


class Supervisor:
    """Starts the application and CometBFT of one validator and watches both."""

    def __init__(self, node: ValidatorDir) -> None:
        self.node = node
        self.settings = node.settings()
        self.app: subprocess.Popen[bytes] | None = None
        self.cometbft: subprocess.Popen[bytes] | None = None
        self.app_height = 0
        self._stop_requested = False

    def say(self, message: str) -> None:
        print(f"citychain supervisor [{self.settings['name']}]: {message}", flush=True)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True

    def start_app(self) -> subprocess.Popen[bytes]:
        """Start the application and wait for its ``READY <address> <height>`` line (or its exit);
        the height it reports is kept in ``app_height``."""
        log_path = self.node.log_dir / "app.log"
        self.node.state_db.parent.mkdir(parents=True, exist_ok=True)
        start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "citychain.consensus.abci", "--db", str(self.node.state_db),
                 "--address", self.settings["proxy_app"]],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.node.write_pid("app", process.pid)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return process
            with log_path.open("rb") as handle:
                handle.seek(start)
                ready = re.search(rb"^READY \S+ (\d+)\r?\n", handle.read(), re.MULTILINE)
            if ready:
                self.app_height = int(ready.group(1))
                return process
            time.sleep(POLL_INTERVAL)
        return process

    def repair_tx_index(self) -> None:
        """Re-index the last blocks' events before CometBFT starts, in case the last run died
        between applying a block and indexing its txs (see ``reindex_recent_events``). A failure
        is reported and the node starts anyway: only ``/tx`` lookups of those blocks suffer."""
        started = time.monotonic()
        try:
            done = reindex_recent_events(self.node.cometbft_home, self.app_height)
        except CometBftError as exc:
            self.say(f"warning: could not re-index the last blocks' txs: {exc}")
            return
        if done is not None:
            self.say(f"re-indexed the txs of heights {done[0]}..{done[1]} in "
                     f"{time.monotonic() - started:.2f} s")

    def run(self) -> int:
        """Run until a signal (exit 0) or until either child exits (exit 1)."""
        self.node.log_dir.mkdir(parents=True, exist_ok=True)
        self.node.write_pid("supervisor", os.getpid())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.request_stop)
        try:
            self.app = self.start_app()
            if self.app.poll() is not None:
                self.say(f"the application exited with code {self.app.returncode} before it "
                         f"was ready; see {self.node.log_dir / 'app.log'}")
                return 1
            self.say(f"application ready on {self.settings['proxy_app']} (pid {self.app.pid})")
            self.repair_tx_index()
            watcher = LogWatcher(self.node.log_dir / "cometbft.log")
            self.cometbft = start_cometbft(self.node.cometbft_home,
                                           self.node.log_dir / "cometbft.log")
            self.node.write_pid("cometbft", self.cometbft.pid)
            self.say(f"CometBFT started (pid {self.cometbft.pid}), rpc on "
                     f"127.0.0.1:{self.settings['rpc_port']}")
            while not self._stop_requested:
                if self.app.poll() is not None:
                    self.say(f"the application (pid {self.app.pid}) exited with code "
                             f"{self.app.returncode}; stopping CometBFT")
                    stop_process(self.cometbft)
                    return 1
                if watcher.consensus_failed():
                    reason = cometbft_failure_reason(self.node.log_dir / "cometbft.log")
                    self.say(f"CometBFT (pid {self.cometbft.pid}) reported a consensus failure"
                             + (f": {reason}" if reason else "")
                             + "; stopping CometBFT and the application")
                    code = stop_process(self.cometbft)
                    self.say(f"CometBFT exited with code {code}")
                    stop_process(self.app)
                    return 1
                if self.cometbft.poll() is not None:
                    reason = cometbft_failure_reason(self.node.log_dir / "cometbft.log")
                    self.say(f"CometBFT (pid {self.cometbft.pid}) exited with code "
                             f"{self.cometbft.returncode}"
                             + (f": {reason}" if reason else "") + "; stopping the application")
                    stop_process(self.app)
                    return 1
                time.sleep(POLL_INTERVAL)
            self.say("stopping CometBFT, then the application")
            return 0
        finally:
            if self.cometbft is not None:
                stop_process(self.cometbft)
            if self.app is not None:
                stop_process(self.app)
            for process in ("cometbft", "app", "supervisor"):
                self.node.pid_path(process).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citychain.node.supervisor",
                                     description="Run one validator: application + CometBFT.")
    parser.add_argument("--node", required=True, help="the validator's directory")
    args = parser.parse_args(argv)
    node = ValidatorDir(Path(args.node))
    if not node.settings_path.exists():
        print(f"citychain supervisor: {node.settings_path} is missing; create the node with "
              "`citychain testnet init`", file=sys.stderr)
        return 2
    return Supervisor(node).run()


if __name__ == "__main__":
    sys.exit(main())
