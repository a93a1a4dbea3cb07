"""`citychain api`: serve the HTTP gateway (FastAPI) for one node."""

from __future__ import annotations

from typing import Annotated

import typer

from citychain.api.gateway import GatewaySettings
from citychain.api.server import DEFAULT_HOST, DEFAULT_PORT, serve
from citychain.cli.common import HomeOption, NodeOption, echo, resolve_node_url
from citychain.cli.errors import UsageFailure

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def api(
    home: HomeOption = None,
    node: NodeOption = None,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. Loopback by default; anything else needs "
                       "--public.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=1, max=65535,
                                      help="Port to listen on.")] = DEFAULT_PORT,
    public: Annotated[bool, typer.Option(
        "--public", help="Allow a non-loopback --host (put a TLS proxy in front).")] = False,
    rate_limit: Annotated[float, typer.Option(
        "--rate-limit", min=0, help="Requests per second per client on average (0: no "
                                    "limit).")] = GatewaySettings.rate_limit,
    rate_burst: Annotated[int, typer.Option(
        "--rate-burst", min=1, help="Requests a client may make at once.")
    ] = GatewaySettings.rate_burst,
    commit_timeout: Annotated[float, typer.Option(
        "--commit-timeout", min=1, help="Seconds a wait=commit submission waits before 504.")
    ] = GatewaySettings.commit_timeout,
    log_level: Annotated[str, typer.Option(
        "--log-level", help="uvicorn log level (critical, error, warning, info, debug).")
    ] = "warning",
) -> None:
    """Serve the HTTP API for one node (reads via its query path, writes as signed txs).

    OpenAPI at /openapi.json and /docs, Prometheus metrics at /metrics, live events at
    /v1/events (SSE) and /v1/events/ws. See docs/api.md.
    """
    if host not in LOOPBACK and not public:
        raise UsageFailure(f"--host {host} is not loopback; pass --public to serve it")
    settings = GatewaySettings(node_url=resolve_node_url(node, home), rate_limit=rate_limit,
                               rate_burst=rate_burst, commit_timeout=commit_timeout)
    echo(f"citychain gateway on http://{host}:{port} for the node at {settings.node_url}")
    serve(settings, host=host, port=port, log_level=log_level)



