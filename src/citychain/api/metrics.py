"""Prometheus metrics of one gateway and its node: blocks, txs, check rejections by code, API
latency, mempool size.

Each app has its own registry (tests build several). Block and tx counts come from a tail that
follows committed blocks; height and mempool size are read from the node at scrape time.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from citychain.api.node import NodeAnswerError, NodeBackend, NodeUnavailableError

__all__ = ["GatewayMetrics"]

log = logging.getLogger(__name__)

disable_created_metrics()  # type: ignore[no-untyped-call]
# the *_created series only add noise to every scrape

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.height = Gauge("citychain_block_height", "Latest committed block height",
                            registry=self.registry)
        self.blocks = Counter("citychain_blocks", "Committed blocks seen by the gateway",
                              registry=self.registry)
        self.txs = Counter("citychain_txs_committed", "Transactions in committed blocks",
                           registry=self.registry)
        self.submitted = Counter("citychain_txs_submitted", "Transactions submitted through "
                                 "this gateway", registry=self.registry)
        self.rejected = Counter("citychain_check_tx_rejections", "Transactions refused at "
                                "check, by codespace and code", ["codespace", "code"],
                                registry=self.registry)
        self.mempool = Gauge("citychain_mempool_size", "Transactions waiting in the mempool",
                             registry=self.registry)
        self.latency = Histogram("citychain_api_request_seconds", "API request latency",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self._followed = -1  # no block seen yet (0 is a height: a chain before its first block)

    def observe_check(self, codespace: str, code: int) -> None:
        self.submitted.inc()
        if code != 0:
            self.rejected.labels(codespace or "abci", str(code)).inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)

    async def refresh(self, node: NodeBackend) -> None:
        """Read height and mempool size now (at scrape time)."""
        try:
            self.height.set((await node.status()).latest_height)
            self.mempool.set(await node.mempool_size())
        except (NodeUnavailableError, NodeAnswerError) as exc:
            log.warning("metrics: cannot read the node: %s", exc)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def follow_blocks(self, node: NodeBackend, poll_seconds: float) -> None:
        """Count blocks and their txs as they commit (runs until cancelled)."""
        while True:
            try:
                latest = (await node.status()).latest_height
                if self._followed < 0:
                    self._followed = latest  # count from the gateway's start
                while self._followed < latest:
                    block = await node.block(self._followed + 1)
                    self.blocks.inc()
                    self.txs.inc(len(block.tx_hashes))
                    self._followed += 1
            except (NodeUnavailableError, NodeAnswerError) as exc:
                log.debug("metrics: block tail waits for the node: %s", exc)
            await asyncio.sleep(poll_seconds)
