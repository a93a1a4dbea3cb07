"""The gateway's one way to its node: the node's JSON-RPC (solo or CometBFT), read into one shape.

The gateway never opens the state database: reads go through ``abci_query`` (the application's
query path) and writes through ``broadcast_tx_*``. The solo node and CometBFT answer in slightly
different shapes (int64 as strings, hashes as hex or base64, proofs as a blob or ``proofOps``);
this module is the only place that knows both.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from citychain.client.cometbft_rpc import is_cometbft_status
from citychain.client.network import READS_PROOF_TYPE
from citychain.core.hashing import sha256

__all__ = [
    "BlockEvents",
    "BlockSummary",
    "Driver",
    "NodeAnswerError",
    "NodeBackend",
    "NodeStatus",
    "NodeUnavailableError",
    "NotFoundError",
    "QueryResult",
    "TxOutcome",
]

Driver = Literal["solo", "cometbft"]
JSON = {"Content-Type": "application/json"}

class NodeUnavailableError(Exception):
    """The node cannot be reached (connection refused, timeout)."""


class NodeAnswerError(Exception):
    """The node answered with an RPC error or with something that is not a valid answer."""


class NotFoundError(NodeAnswerError):
    """The node does not have what was asked for (a tx, a block above the tip...)."""


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _b64decode(value: Any) -> bytes:
    return base64.b64decode(_text(value))


def _attributes(event: Mapping[str, Any]) -> list[list[str]]:
    """Event attributes as ``[key, value]`` pairs from either shape."""
    out = []
    for attribute in event.get("attributes") or []:
        if isinstance(attribute, Mapping):
            out.append([_text(attribute.get("key")), _text(attribute.get("value"))])
        else:
            key, value = attribute
            out.append([_text(key), _text(value)])
    return out


def _result(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """A check or execution result: code, codespace, log, field (the error's ``info``), events."""
    result = result or {}
    return {"code": int(result.get("code") or 0), "codespace": _text(result.get("codespace")),
            "log": _text(result.get("log")), "field": _text(result.get("info")),
            "events": [{"type": _text(e.get("type")), "attributes": _attributes(e)}
                       for e in result.get("events") or []]}


def _time_from_ns(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


@dataclass(frozen=True)
class NodeStatus:
    chain_id: str
    driver: Driver
    latest_height: int
    latest_block_hash: str
    latest_app_hash: str
    latest_block_time: str


@dataclass(frozen=True)
class TxOutcome:
    """What broadcasting a tx gave: the check result and, when waited for, the execution."""

    hash: str
    check: dict[str, Any]
    height: int | None = None
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class QueryResult:
    code: int
    codespace: str
    log: str
    field: str
    value: bytes
    height: int
    reads: bytes | None = None
    """The reads proof blob (canonical encoding of key/value/proof triples), when asked for."""
    solo_signed_header: bytes | None = None
    """Solo only: the canonical encoding of the signed header of ``height``."""


@dataclass(frozen=True)
class BlockSummary:
    height: int
    hash: str
    time: str
    proposer: str
    app_hash: str
    """As the header carries it: solo headers commit the state after the block, CometBFT
    headers the state after the previous block."""
    tx_hashes: list[str]
    txs: list[bytes] = field(repr=False)


@dataclass(frozen=True)
class BlockEvents:
    """Every event of one committed block in order: each tx's (with its hash and index), then
    the block's own (end-block work), whose tx index is None."""

    height: int
    events: list[tuple[int | None, str, dict[str, Any]]]


class NodeBackend:
    """Async access to one node's RPC. Call :meth:`connect` once before use."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self.driver: Driver = "solo"
        self.chain_id = ""

    async def connect(self) -> None:
        """Learn which driver serves the node and its chain id.

        Raises:
            NodeUnavailableError, NodeAnswerError: the node cannot be asked.
        """
        status = await self.call("status")
        self.driver = "cometbft" if is_cometbft_status(status) else "solo"
        self.chain_id = _text((status.get("node_info") or {}).get("network"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        """The connection pool, made in the running loop on first use (aiohttp: a few times
        cheaper per call than httpx, which cost a gateway read more CPU than the node's answer).
        Idle connections are dropped before the node would close them (solo: after 30 s)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=20),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                json_serialize=json.dumps)
        return self._session

    async def _post(self, method: str, payload: bytes) -> tuple[int, bytes]:
        retries = 0 if method.startswith("broadcast") else 1  # a read may be sent again
        while True:
            try:
                async with self._http().post(self.url, data=payload, headers=JSON) as response:
                    return response.status, await response.read()
            except aiohttp.ServerDisconnectedError:
                if retries == 0:
                    raise
                retries -= 1

    async def call(self, method: str, **params: Any) -> Any:
        """One JSON-RPC call; int parameters go as strings for CometBFT's int64 fields.

        Raises:
            NodeUnavailableError: the node cannot be reached.
            NotFoundError: the node says it does not have what was asked for.
            NodeAnswerError: any other RPC error or a malformed answer.
        """
        if self.driver == "cometbft":
            params = {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                      for k, v in params.items()}
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            status, raw = await self._post(method, json.dumps(request).encode())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NodeUnavailableError(f"cannot reach the node at {self.url}: "
                                       f"{type(exc).__name__}") from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise NodeAnswerError(f"{method}: the node answered HTTP {status} "
                                  "with a body that is not JSON") from None
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise NodeAnswerError(f"{method}: the answer is not JSON-RPC")
        if "error" in body:
            error = body["error"] or {}
            text = f"{error.get('message') or ''} {error.get('data') or ''}".strip()
            if any(marker in text for marker in ("not found", "not committed", "no committed",
                                                 "must be less than or equal")):
                raise NotFoundError(text)
            raise NodeAnswerError(f"{method}: {text}")
        return body["result"]

    # -- status
    async def status(self) -> NodeStatus:
        status = await self.call("status")
        try:
            sync = status["sync_info"]
            if self.driver == "solo":
                time = _time_from_ns(int(sync.get("latest_block_time_ns") or 0))
            else:
                time = _text(sync.get("latest_block_time"))
            return NodeStatus(
                chain_id=_text(status["node_info"]["network"]), driver=self.driver,
                latest_height=int(sync["latest_block_height"]),
                latest_block_hash=_text(sync.get("latest_block_hash")).lower(),
                latest_app_hash=_text(sync.get("latest_app_hash")).lower(), latest_block_time=time)
        except (KeyError, TypeError, ValueError) as exc:
            raise NodeAnswerError(f"status: the answer is malformed: {exc!r}") from None

    async def mempool_size(self) -> int:
        if self.driver == "solo":
            return int((await self.call("status")).get("mempool_size") or 0)
        return int((await self.call("num_unconfirmed_txs", limit=1)).get("total") or 0)

    async def genesis(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self.call("genesis"))["genesis"]
        return result

    # -- writes
    async def broadcast(self, raw: bytes, *, commit: bool) -> TxOutcome:
        """Submit a signed tx; with ``commit`` wait until its block commits.

        Raises:
            NodeAnswerError: the node did not answer in time or answered wrongly.
        """
        method = "broadcast_tx_commit" if commit else "broadcast_tx_sync"
        answer = await self.call(method, tx=base64.b64encode(raw).decode())
        hash_hex = sha256(raw).hex()
        try:
            if not commit:
                return TxOutcome(hash_hex, _result(answer))
            check = _result(answer.get("check_tx"))
            executed = answer.get("tx_result")
            if check["code"] != 0 or not executed:
                return TxOutcome(hash_hex, check)
            return TxOutcome(hash_hex, check, int(answer.get("height") or 0), _result(executed))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NodeAnswerError(f"{method}: the answer is malformed: {exc!r}") from None

    # -- reads
    async def query(self, path: str, data: bytes, *, height: int = 0,
                    prove: bool = False) -> QueryResult:
        answer = await self.call("abci_query", path=path, data=data.hex(), height=height,
                                 prove=prove)
        try:
            response = answer["response"]
            reads: bytes | None = None
            signed: bytes | None = None
            if self.driver == "solo":
                if response.get("proof"):
                    reads = _b64decode(response["proof"])
                if response.get("signed_header"):
                    signed = _b64decode(response["signed_header"])
            else:
                ops = (response.get("proofOps") or {}).get("ops") or []
                blobs = [_b64decode(op.get("data")) for op in ops
                         if op.get("type") == READS_PROOF_TYPE]
                reads = blobs[0] if blobs else None
            return QueryResult(
                code=int(response.get("code") or 0), codespace=_text(response.get("codespace")),
                log=_text(response.get("log")), field=_text(response.get("info")),
                value=_b64decode(response.get("value") or ""),
                height=int(response.get("height") or 0), reads=reads, solo_signed_header=signed)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise NodeAnswerError(f"abci_query: the answer is malformed: {exc!r}") from None

    async def tx(self, hash_hex: str, *, prove: bool = False) -> dict[str, Any]:
        """Committed tx ``hash_hex``: hash, height, index, tx (base64), result, and with
        ``prove`` its inclusion proof as the driver gives it.

        Raises:
            NotFoundError: the node has no committed tx with that hash.
        """
        wanted = hash_hex if self.driver == "solo" else base64.b64encode(
            bytes.fromhex(hash_hex)).decode()
        answer = await self.call("tx", hash=wanted, prove=prove)
        try:
            out: dict[str, Any] = {
                "hash": hash_hex.lower(), "height": int(answer["height"]),
                "index": int(answer.get("index") or 0), "tx": _text(answer["tx"]),
                "result": _result(answer.get("tx_result"))}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NodeAnswerError(f"tx: the answer is malformed: {exc!r}") from None
        if prove:
            out["proof"] = answer.get("proof")
            if answer.get("signed_header"):
                out["signed_header"] = answer["signed_header"]
        return out

    async def block(self, height: int) -> BlockSummary:
        """Committed block ``height`` (0: the latest).

        Raises:
            NotFoundError: no committed block at that height.
        """
        answer = await self.call("block", height=height) if height else await self.call("block")
        try:
            if self.driver == "solo":
                header = answer["header"]
                txs = [_b64decode(t) for t in answer.get("txs") or []]
                return BlockSummary(
                    height=int(header["height"]), hash=_text(answer["block_id"]["hash"]).lower(),
                    time=_time_from_ns(int(header["time_ns"])), proposer=_text(header["proposer"]),
                    app_hash=_text(header["app_hash"]).lower(),
                    tx_hashes=[sha256(t).hex() for t in txs], txs=txs)
            header = answer["block"]["header"]
            txs = [_b64decode(t) for t in answer["block"]["data"].get("txs") or []]
            return BlockSummary(
                height=int(header["height"]), hash=_text(answer["block_id"]["hash"]).lower(),
                time=_text(header["time"]), proposer=_text(header["proposer_address"]).lower(),
                app_hash=_text(header["app_hash"]).lower(),
                tx_hashes=[sha256(t).hex() for t in txs], txs=txs)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise NodeAnswerError(f"block: the answer is malformed: {exc!r}") from None

    async def block_events(self, height: int) -> BlockEvents:
        """Every event block ``height`` emitted, in order.

        Raises:
            NotFoundError: no committed block at that height.
        """
        block = await self.block(height)
        answer = await self.call("block_results", height=height)
        try:
            events: list[tuple[int | None, str, dict[str, Any]]] = []
            for index, result in enumerate(answer.get("txs_results") or []):
                for event in _result(result)["events"]:
                    events.append((index, block.tx_hashes[index], event))
            for event in answer.get("finalize_block_events") or []:
                events.append((None, "", {"type": _text(event.get("type")),
                                          "attributes": _attributes(event)}))
            return BlockEvents(int(answer["height"]), events)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise NodeAnswerError(f"block_results: the answer is malformed: {exc!r}") from None

    async def light_block(self, height: int) -> dict[str, Any]:
        """What a light client needs to verify header ``height``: on solo the canonical
        encoding of the signed header (base64); on CometBFT the ``commit`` and ``validators``
        answers as CometBFT gives them.

        Raises:
            NotFoundError: no such header yet.
        """
        if self.driver == "solo":
            answer = await self.call("block", height=height)
            return {"driver": "solo", "height": height,
                    "signed_header": _text(answer["signed_header"])}
        commit = await self.call("commit", height=height)
        validators: list[Any] = []
        for page in range(1, 1000):
            answer = await self.call("validators", height=height, page=page, per_page=100)
            validators.extend(answer.get("validators") or [])
            if len(validators) >= int(answer.get("total") or 0):
                break
        return {"driver": "cometbft", "height": height, "signed_header": commit["signed_header"],
                "validators": {"block_height": str(height), "validators": validators,
                               "count": str(len(validators)), "total": str(len(validators))}}
