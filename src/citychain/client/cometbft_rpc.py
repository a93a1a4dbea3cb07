"""CometBFT's JSON-RPC read back into the solo node's shapes, so callers of NodeClient need not
care which node answers: int64 parameters go as strings, a tx hash as base64 of its bytes,
omitted empty fields get their zero values, the reads proof comes out of ``proofOps``.

CometBFT answers carry no signed header: verify them with
:class:`citychain.client.network.NetworkClient`, which checks headers against validators trusted
from genesis.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from citychain.client.cometbft import (
    BLOCK_ID_FLAG_COMMIT,
    Header,
    HeaderMismatchError,
    LightClient,
    verify_commit,
)
from citychain.client.network import READS_PROOF_TYPE
from citychain.client.rpc import NodeClient, QueryAnswer, RpcError
from citychain.core import codec

__all__ = [
    "CometRpcClient",
    "is_cometbft_status",
    "open_node",
    "signing_power",
]


def is_cometbft_status(status: Mapping[str, Any]) -> bool:
    """Whether a ``status`` answer comes from CometBFT (not from the solo node)."""
    node_info = status.get("node_info") or {}
    if node_info.get("moniker") == "solo":
        return False
    return "protocol_version" in node_info or "validator_info" in status


def open_node(url: str, *, timeout: float = 60.0) -> NodeClient:
    """A client for the node at ``url``: a :class:`CometRpcClient` when its ``status`` says it is
    CometBFT, else a plain :class:`NodeClient` (the solo node).

    Raises:
        RpcError: the node could not be asked (NodeUnreachableError when it cannot be reached).
    """
    plain = NodeClient(url, timeout=timeout)
    try:
        if not is_cometbft_status(plain.status()):
            return plain
    except BaseException:
        plain.close()
        raise
    plain.close()
    return CometRpcClient(url, timeout=timeout)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _result(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """A CometBFT ExecTxResult / CheckTx answer in the solo shape (zero values filled in, event
    attributes as ``[key, value]`` pairs)."""
    result = result or {}
    events = []
    for event in result.get("events") or []:
        attributes = [[_text(a.get("key")), _text(a.get("value"))]
                      for a in event.get("attributes") or []]
        events.append({"type": _text(event.get("type")), "attributes": attributes})
    return {"code": int(result.get("code") or 0), "codespace": _text(result.get("codespace")),
            "log": _text(result.get("log")), "info": _text(result.get("info")),
            "data": _text(result.get("data")), "events": events}


class CometRpcClient(NodeClient):
    """A :class:`NodeClient` for a CometBFT node: same methods, same answer shapes as solo."""

    def broadcast(self, raw: bytes, *, commit: bool = True) -> dict[str, Any]:
        answer = super().broadcast(raw, commit=commit)
        try:
            if not commit:
                return {**_result(answer), "hash": _text(answer["hash"]).lower()}
            check = _result(answer.get("check_tx"))
            executed = answer.get("tx_result") if check["code"] == 0 else None
            return {"check_tx": check, "tx_result": _result(executed) if executed else None,
                    "hash": _text(answer["hash"]).lower(),
                    "height": str(int(answer.get("height") or 0))}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RpcError(f"broadcast: the answer is malformed: {exc!r}") from None

    def query(self, path: str, params: dict[str, Any] | None = None, *, height: int = 0,
              prove: bool = False, raw_data: bytes | None = None) -> QueryAnswer:
        data = raw_data if raw_data is not None else (codec.encode(params) if params else b"")
        response = self.call("abci_query", path=path, data=data.hex(), height=str(height),
                             prove=prove)["response"]
        try:
            ops = (response.get("proofOps") or {}).get("ops") or []
            blobs = [base64.b64decode(op.get("data") or "") for op in ops
                     if op.get("type") == READS_PROOF_TYPE]
            return QueryAnswer(
                code=int(response.get("code") or 0), codespace=_text(response.get("codespace")),
                log=_text(response.get("log")), info=_text(response.get("info")),
                value=base64.b64decode(response.get("value") or ""),
                height=int(response.get("height") or 0),
                proof=blobs[0] if blobs else None, signed_header=None)
        except (TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise RpcError(f"abci_query: the answer is malformed: {exc!r}") from None

    def tx(self, hash_hex: str, *, prove: bool = False) -> dict[str, Any]:
        """Tx ``hash_hex`` in the solo shape; with ``prove`` CometBFT's ``proof`` is kept as it
        is (verify it with NetworkClient.verify_tx)."""
        try:
            wanted = base64.b64encode(bytes.fromhex(hash_hex)).decode()
        except ValueError:
            raise RpcError(f"tx: {hash_hex!r} is not a hex hash") from None
        answer = self.call("tx", hash=wanted, prove=prove)
        try:
            out = {"hash": _text(answer["hash"]).lower(), "height": str(int(answer["height"])),
                   "index": int(answer.get("index") or 0), "tx": _text(answer["tx"]),
                   "tx_result": _result(answer.get("tx_result"))}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RpcError(f"tx: the answer is malformed: {exc!r}") from None
        if prove and "proof" in answer:
            out["proof"] = answer["proof"]
        return out

    def block(self, height: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = (self.call("block", height=str(height)) if height
                                  else self.call("block"))
        return result


def signing_power(light: LightClient, header: Header) -> tuple[int, int]:
    """(voting power that signed ``header``, total power of its validator set), for reporting.

    ``header`` must already be verified by ``light``; its commit and validator set are fetched
    again and checked against it, so the figures are proven too.

    Raises:
        LightVerificationError: (a subclass) the commit or set served now does not verify.
        RpcError: the node could not be asked.
    """
    source = light.source
    signed = source.signed_header(header.height)
    if signed.header.compute_hash() != header.compute_hash():
        raise HeaderMismatchError(f"the node now serves another header {header.height} than the "
                                  "one verified")
    validators = source.validators(header.height)
    verify_commit(light.chain_id, validators, signed, header.height)
    power = sum(validator.power for validator, sig
                in zip(validators.validators, signed.commit.signatures, strict=True)
                if sig.flag == BLOCK_ID_FLAG_COMMIT)
    return power, validators.total_power
