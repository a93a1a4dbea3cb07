"""Build the gateway: a FastAPI app over one node's RPC.

``create_app`` wires the routers, the problem+json handlers, per-client rate limits, latency
metrics and the block tail. The app holds no chain state of its own: everything it answers it
reads from the node when asked, so a restarted gateway answers exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citychain.api import events
from citychain.api.gateway import Gateway, GatewaySettings, gateway_of
from citychain.api.metrics import GatewayMetrics
from citychain.api.node import NodeAnswerError, NodeBackend, NodeUnavailableError
from citychain.api.problems import Problem, install_handlers, problem_response
from citychain.api.ratelimit import RateLimiter
from citychain.api.routes import chain, contracts, queries, txs
from citychain.core.module import Module

__all__ = ["create_app"]

DESCRIPTION = """\
The HTTP gateway of one citychain node. Reads go through the node's query path and can carry
Merkle proofs with the signed header that commits to them; writes are signed transactions only.
Errors are `application/problem+json` with the chain's codespace, code and the offending field.
See docs/api.md.
"""

UNLIMITED = ("/healthz", "/metrics")


def create_app(settings: GatewaySettings | None = None, *,
               modules: list[Module] | None = None,
               node: NodeBackend | None = None) -> FastAPI:
    """The gateway app for the node at ``settings.node_url`` (or the given ``node`` backend).

    ``modules`` are the modules whose queries get routes (default: the node's default set).
    """
    settings = settings or GatewaySettings()
    if modules is None:
        from citychain.node.assemble import default_modules  # composition default only
        modules = default_modules()
    backend = node or NodeBackend(settings.node_url, timeout=settings.commit_timeout + 10)
    gateway = Gateway(settings=settings, node=backend, modules=list(modules))
    gateway.metrics = GatewayMetrics()
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.suppress(NodeUnavailableError, NodeAnswerError):
            await backend.connect()  # else connect lazily on the first request
        tail = asyncio.create_task(gateway.metrics.follow_blocks(
            backend, settings.event_poll_seconds))
        try:
            yield
        finally:
            tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tail
            await backend.close()

    app = FastAPI(title="citychain gateway", version="1", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.gateway = gateway
    install_handlers(app)
    app.include_router(chain.router)
    app.include_router(txs.router)
    app.include_router(queries.build_router(gateway.modules))
    app.include_router(contracts.router)
    app.include_router(events.router)

    @app.get("/metrics", tags=["chain"], summary="Prometheus metrics",
             responses={200: {"content": {"text/plain": {"example":
                 "citychain_block_height 42.0\n"}}}})
    async def get_metrics(request: Request) -> Response:
        state = gateway_of(request)
        await state.metrics.refresh(state.node)
        return Response(state.metrics.render(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(LimitAndMeasure, gateway=gateway, limiter=limiter)
    return app



class LimitAndMeasure:
    """Per-client rate limits (429 + Retry-After) and the latency histogram, as plain ASGI
    middleware (Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, *, gateway: Gateway, limiter: RateLimiter) -> None:
        self.app = app
        self.gateway = gateway
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        client = scope["client"][0] if scope.get("client") else "unknown"
        wait = 0.0 if path in UNLIMITED else self.limiter.acquire(client)
        status = 500
        if wait > 0:
            retry = self.limiter.retry_after(wait)
            limit = self.gateway.settings.rate_limit
            await problem_response(Problem.api(
                "rate_limited", f"over {limit:g} requests/s for {client}; retry in {retry} s",
                headers={"Retry-After": retry}), path)(scope, receive, send)
            status = 429
        else:
            node = self.gateway.node
            if not node.chain_id and path not in UNLIMITED:
                with contextlib.suppress(Exception):
                    await node.connect()

            async def send_and_note(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            await self.app(scope, receive, send_and_note)
        route = scope.get("route")
        self.gateway.metrics.observe_request(scope["method"],
                                             str(getattr(route, "path", "unmatched")), status,
                                             time.perf_counter() - started)
