"""A synchronous JSON-RPC client for a node (solo today; CometBFT's RPC has the same shape)."""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any

import httpx

from citychain.consensus.solo.block import SignedHeader
from citychain.core import codec


class RpcError(Exception):
    """The node answered with a JSON-RPC error (or an answer that is not JSON-RPC)."""


class NodeUnreachableError(RpcError):
    """The node could not be reached at all (connection refused, timeout, DNS...)."""


@dataclass(frozen=True)
class QueryAnswer:
    code: int
    codespace: str
    log: str
    info: str
    value: bytes
    height: int
    proof: bytes | None
    signed_header: SignedHeader | None

    @property
    def ok(self) -> bool:
        return self.code == 0


class NodeClient:
    """Calls one node's RPC endpoint."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, **params: Any) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            response = self._http.post(self.url, json=request)
        except httpx.HTTPError as exc:
            raise NodeUnreachableError(f"cannot reach node at {self.url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise RpcError(f"{method}: the node at {self.url} answered HTTP "
                           f"{response.status_code} with a body that is not JSON") from None
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise RpcError(f"{method}: the answer is not a JSON-RPC response")
        if "error" in body:
            error = body["error"]
            raise RpcError(f"{method}: {error.get('message')} {error.get('data') or ''}".strip())
        return body["result"]

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("status")
        return result

    def genesis(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("genesis")["genesis"]
        return result

    def broadcast(self, raw: bytes, *, commit: bool = True) -> dict[str, Any]:
        """Submit a signed tx; with ``commit`` wait until it is in a committed block."""
        method = "broadcast_tx_commit" if commit else "broadcast_tx_sync"
        result: dict[str, Any] = self.call(method, tx=base64.b64encode(raw).decode())
        return result

    def query(self, path: str, params: dict[str, Any] | None = None, *, height: int = 0,
              prove: bool = False, raw_data: bytes | None = None) -> QueryAnswer:
        data = raw_data if raw_data is not None else (codec.encode(params) if params else b"")
        response = self.call("abci_query", path=path, data=data.hex(), height=height,
                             prove=prove)["response"]
        signed = None
        if response.get("signed_header"):
            signed = SignedHeader.from_value(codec.decode(
                base64.b64decode(response["signed_header"])))
        return QueryAnswer(
            code=response["code"], codespace=response["codespace"], log=response["log"],
            info=response["info"], value=base64.b64decode(response["value"]),
            height=int(response["height"]),
            proof=base64.b64decode(response["proof"]) if response.get("proof") else None,
            signed_header=signed)

    def tx(self, hash_hex: str, *, prove: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.call("tx", hash=hash_hex, prove=prove)
        return result

    def block(self, height: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self.call("block", height=height)
        return result
