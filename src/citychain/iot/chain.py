"""What the gateway asks of its node: device keys and status (cached), oracle params, anchors.

The gateway trusts its own node for these reads (it is its operator's node); readers of the
off-chain store verify anchors with proofs instead (``citychain.iot.verify``). No reading causes
a chain call: device records are cached for ``ttl`` seconds, so a suspension on chain takes
effect at the gateway at most ``ttl`` seconds after the block that commits it (plus one RPC).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from citychain.client.rpc import NodeClient
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.tx import TxBody, sign_tx
from citychain.modules.oracle.messages import MsgAnchorBatch

DEFAULT_DEVICE_TTL = 2.0


@dataclass(frozen=True)
class DeviceInfo:
    """What the gateway needs of a registered device: its key, whether it may speak, and the
    plausible range of each declared stream."""

    did: str
    owner: str
    pubkey: bytes
    active: bool
    streams: dict[str, tuple[int, int]]


class AnchorRefusedError(Exception):
    """The node refused or failed an anchor tx (``codespace``/``code`` are the chain's)."""

    def __init__(self, codespace: str, code: int, log: str) -> None:
        super().__init__(f"{codespace}/{code}: {log}")
        self.codespace = codespace
        self.code = code
        self.log = log


class ChainLink:
    """Reads and writes of one gateway through its node's RPC, signed with the gateway's key
    (a device of type Gateway, per ADR 0007)."""

    def __init__(self, node_url: str, key: PrivateKey, *, timeout: float = 30.0) -> None:
        self.client = NodeClient(node_url, timeout=timeout)
        self.key = key
        self._chain_id: str | None = None
        # Only anchors are serialized (account sequence); a query never waits for an anchor's
        # block, so device reads during ingest do not stall behind one. httpx clients are
        # thread-safe.
        self._send_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.client.status()["node_info"]["network"])
        return self._chain_id

    def query(self, path: str, params: dict[str, Any]) -> Any:
        """Run an unproven query; raise AnchorRefusedError if the node refuses it."""
        answer = self.client.query(path, params)
        if not answer.ok:
            raise AnchorRefusedError(answer.codespace, answer.code, answer.log)
        return codec.decode(answer.value)

    def device(self, did: str) -> DeviceInfo | None:
        value = self.query("/oracle/device", {"did": did})
        if value is None:
            return None
        active = value["status"] != "decommissioned" and value["identity_status"] == "active"
        streams = {s["name"]: (int(s["min"]), int(s["max"])) for s in value["streams"]}
        pubkey = bytes.fromhex(value["pubkey"]) if value["pubkey"] else b""
        return DeviceInfo(did, str(value["owner"]), pubkey, active, streams)

    def operator(self) -> str:
        """The DID the gateway anchors for: the owner of its Gateway device, or the key's own
        DID when the key is not a device (an operator anchoring directly)."""
        own = self.device(self.key.did)
        return self.key.did if own is None else own.owner

    def params(self) -> dict[str, Any]:
        value: dict[str, Any] = self.query("/oracle/params", {})
        return value

    def anchor_by_root(self, merkle_root: bytes) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.query("/oracle/anchor",
                                                  {"merkle_root": merkle_root.hex()})
        return value

    def send_anchor(self, message: MsgAnchorBatch) -> tuple[int, str]:
        """Sign and broadcast ``message``; wait for its block; return (height, tx hash).

        Raises:
            AnchorRefusedError: refused at check or failed in its block.
        """
        message.validate_basic()
        with self._send_lock:
            account = codec.decode(self.client.query(
                "/identity/account", {"address": self.key.address}).value)
            sequence = 0 if account is None else int(account["sequence"])
            raw = sign_tx(self.key, TxBody(self.chain_id, self.key.address, sequence,
                                           (message,)))
            result = self.client.broadcast(raw, commit=True)
        final = result.get("tx_result") or result.get("check_tx") or result
        if int(final["code"]) != 0:
            raise AnchorRefusedError(str(final.get("codespace") or ""), int(final["code"]),
                                     str(final.get("log") or ""))
        return int(result.get("height") or 0), str(result["hash"])


class DeviceCache:
    """Device records by DID, each re-read from the chain once older than ``ttl`` seconds
    (unknown DIDs are cached too, so a flood of forged DIDs costs one query each per ttl)."""

    def __init__(self, fetch: Callable[[str], DeviceInfo | None], ttl: float = DEFAULT_DEVICE_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, DeviceInfo | None]] = {}

    def get(self, did: str) -> DeviceInfo | None:
        now = self._clock()
        entry = self._entries.get(did)
        if entry is None or now - entry[0] >= self.ttl:
            return self.refresh(did)
        return entry[1]

    def refresh(self, did: str) -> DeviceInfo | None:
        info = self._fetch(did)
        self._entries[did] = (self._clock(), info)
        return info

    def clear(self) -> None:
        """Forget every record: the next read of each goes to the chain."""
        self._entries.clear()
