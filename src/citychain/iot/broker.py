"""A Mosquitto broker of our own on a free loopback port (the demo and the IoT tests).

In memory (no persistence), anonymous, listening on 127.0.0.1 only; it queues every QoS 1
message for a gateway's session while the gateway is down (ADR 0008 §4).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

INSTALL_HINT = "sh scripts/install_mosquitto.sh"


def find_mosquitto() -> str | None:
    """The mosquitto binary on PATH or in /usr/sbin (where Debian puts it), if installed."""
    found = shutil.which("mosquitto")
    if found is None and Path("/usr/sbin/mosquitto").is_file():
        found = "/usr/sbin/mosquitto"
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_config(port: int, host: str = "127.0.0.1") -> str:
    """The mosquitto.conf text of a broker on ``host:port``."""
    return (f"listener {port} {host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # The gateway acks after its commit; let two whole chunks be in flight (the default
            # chunk is 4,000), and queue every QoS 1 message for a gateway's session while it
            # is down.
            "max_inflight_messages 10000\n"
            "max_queued_messages 0\n"
            "log_dest stderr\n")


class Broker:
    """A Mosquitto process: config and log in ``directory``, port chosen free at start."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.host = host
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "mosquitto.log"

    def start(self, timeout: float = 10.0) -> Broker:
        """Start it and wait until its port accepts connections.

        Raises:
            RuntimeError: mosquitto is not installed, exited, or did not open its port.
        """
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError(f"mosquitto is not installed: run {INSTALL_HINT}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        conf = self.directory / "mosquitto.conf"
        conf.write_text(broker_config(self.port, self.host))
        with self.log.open("wb") as out:
            # Its own session: a Ctrl-C in the terminal is for us, and we stop it in order.
            self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-500:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not open its port")

    def stop(self) -> None:
        """Terminate it (kill after 10 s) and reap it; a no-op when it is not running."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["INSTALL_HINT", "Broker", "broker_config", "find_mosquitto", "free_port"]
