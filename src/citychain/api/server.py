"""Run the gateway with uvicorn (``citychain api``; part of ``citychain demo``)."""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn

from citychain.api.app import create_app
from citychain.api.gateway import GatewaySettings

__all__ = ["GatewayThread", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _config(settings: GatewaySettings, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level,
                          access_log=False, lifespan="on", ws="websockets-sansio")


def serve(settings: GatewaySettings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          log_level: str = "warning") -> None:
    """Serve until interrupted (SIGINT/SIGTERM stop it cleanly)."""
    uvicorn.Server(_config(settings, host, port, log_level)).run()


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
        self._server = uvicorn.Server(_config(settings, host, self.port, "warning"))
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
