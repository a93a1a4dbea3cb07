"""The gateway's shared parts: settings, the node backend and the modules it knows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from citychain.api.node import NodeBackend
from citychain.core.module import Module

if TYPE_CHECKING:
    from citychain.api.metrics import GatewayMetrics

__all__ = ["Gateway", "GatewaySettings", "gateway_of"]


@dataclass(frozen=True)
class GatewaySettings:
    """How one gateway runs. Defaults suit a node and its gateway on one machine."""

    node_url: str = "http://127.0.0.1:26657"
    rate_limit: float = 200.0
    """Requests per second each client (by IP) may make on average; 0 turns limits off."""
    rate_burst: int = 400
    """Requests a client may make at once before the average applies."""
    commit_timeout: float = 30.0
    """How long ``POST /v1/txs`` with ``wait=commit`` waits before answering 504."""
    event_poll_seconds: float = 0.2
    """How often the event stream looks for a new block."""


@dataclass
class Gateway:
    settings: GatewaySettings
    node: NodeBackend
    modules: list[Module] = field(default_factory=list)
    metrics: GatewayMetrics = field(init=False)

    def module(self, name: str) -> Module | None:
        for module in self.modules:
            if module.name == name:
                return module
        return None

    def module_of_event(self, event_type: str) -> str:
        """The module that declares ``event_type`` ("" if none does)."""
        for module in self.modules:
            if event_type in module.event_types:
                return module.name
        return ""


def gateway_of(request: Request) -> Gateway:
    """FastAPI dependency: the gateway the app was built with."""
    gateway: Gateway = request.app.state.gateway
    return gateway
