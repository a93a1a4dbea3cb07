"""Run the gateway with uvicorn (``citychain api``; part of ``citychain demo``)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time

import httpx
import uvicorn

from citychain.api.app import create_app
from citychain.api.events import end_streams
from citychain.api.gateway import GatewaySettings

__all__ = ["GatewayProcess", "GatewayThread", "free_port", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _config(settings: GatewaySettings, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level,
                          access_log=False, lifespan="on", ws="websockets-sansio")


class _Server(uvicorn.Server):
    """uvicorn's server that first ends the open event streams: they would hold its wait for
    open connections forever."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        end_streams(self.config.app)
        await super().shutdown(sockets)


def serve(settings: GatewaySettings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          log_level: str = "warning") -> None:
    """Serve until interrupted (SIGINT/SIGTERM stop it cleanly)."""
    _Server(_config(settings, host, port, log_level)).run()


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class GatewayThread:
    """The gateway in a background thread of this process (the demo, tests)."""

    def __init__(self, settings: GatewaySettings, *, host: str = DEFAULT_HOST,
                 port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._server = _Server(_config(settings, host, self.port, "warning"))
        self._thread = threading.Thread(target=self._server.run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> GatewayThread:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if self._server.started:
                return self
            deadline.wait(0.05)
        raise RuntimeError(f"the gateway did not start on {self.url} within {timeout} s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        logging.getLogger(__name__).debug("gateway on %s stopped", self.url)


class GatewayProcess:
    """The gateway as a child process (``citychain api``), so it does not share this process's
    interpreter lock with a node running here (the demo)."""

    def __init__(self, node_url: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 rate_limit: float = GatewaySettings.rate_limit) -> None:
        self.host = host
        self.port = port if port and _is_free(host, port) else free_port(host)
        self.node_url = node_url
        self.rate_limit = rate_limit
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        """Start it and wait until /healthz answers.

        Raises:
            RuntimeError: it exited or did not answer within ``timeout``.
        """
        self._process = subprocess.Popen(
            [sys.executable, "-m", "citychain.cli", "api", "--node", self.node_url,
             "--host", self.host, "--port", str(self.port), "--rate-limit", f"{self.rate_limit}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = (self._process.stderr.read() if self._process.stderr else b"").decode()
                raise RuntimeError(f"the gateway exited: {error.strip()[-500:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the gateway did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None


def _is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
