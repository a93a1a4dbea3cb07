"""What the gateway asks of its node: device keys and status (cached), oracle params, anchors.

The gateway trusts its own node for these reads (it is its operator's node); readers of the
off-chain store verify anchors with proofs instead (``citychain.iot.verify``). No reading causes
a chain call once its device is cached; at start the gateway caches its operator's devices in
pages of ``/oracle/device_records`` (:func:`preload_devices`), later ones are read one by one on
first use. Freshness comes from the chain's own events: the gateway follows committed blocks
(:class:`BlockFollower`) and drops the cached record of every device an identity or oracle
event names (key rotated, suspended, reinstated, role granted or revoked,
registered, updated, decommissioned), so such a change takes effect about one block (plus one
poll) after it commits. A long ``ttl`` stays as a safety net.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from citychain.client.rpc import NodeClient, RpcError
from citychain.core import codec
from citychain.core.crypto import PrivateKey, address_from_did, did_from_address, is_address
from citychain.core.tx import TxBody, sign_tx
from citychain.modules.identity import events as identity_events
from citychain.modules.oracle import events as oracle_events
from citychain.modules.oracle.messages import MsgAnchorBatch

DEFAULT_DEVICE_TTL = 300.0
DEFAULT_DEVICE_CACHE_SIZE = 200_000
DEVICE_RECORDS_PAGE = 1000   # the oracle's MAX_RECORDS_LIMIT: ~0.5 MB per answer

DEVICE_EVENT_TYPES: frozenset[str] = frozenset({
    identity_events.IDENTITY_CREATED, identity_events.KEY_ROTATED,
    identity_events.ROLE_GRANTED, identity_events.ROLE_REVOKED,
    identity_events.IDENTITY_SUSPENDED, identity_events.IDENTITY_REINSTATED,
    oracle_events.DEVICE_REGISTERED, oracle_events.DEVICE_UPDATED,
    oracle_events.DEVICE_DECOMMISSIONED})
"""Committed events that may change what :meth:`ChainLink.device` answers for their ``did``."""
_ACCOUNT_ATTRIBUTES = ("did", "address", "device", "account")


@dataclass(frozen=True)
class DeviceInfo:
    """What the gateway needs of a registered device: its key, whether it may speak, and the
    plausible range of each declared stream."""

    did: str
    owner: str
    pubkey: bytes
    active: bool
    streams: dict[str, tuple[int, int]]


def device_info(value: Mapping[str, Any], did: str | None = None) -> DeviceInfo:
    """The gateway's view of one ``/oracle/device`` answer (also one ``device_records``
    record), under ``did`` (default: the answer's): it may speak only while registered and its
    identity active."""
    active = value["status"] != "decommissioned" and value["identity_status"] == "active"
    streams = {s["name"]: (int(s["min"]), int(s["max"])) for s in value["streams"]}
    pubkey = bytes.fromhex(value["pubkey"]) if value["pubkey"] else b""
    return DeviceInfo(str(value["did"]) if did is None else did, str(value["owner"]), pubkey,
                      active, streams)


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
        """The device record of ``did`` (one ``/oracle/device`` query), or None.

        Raises:
            AnchorRefusedError: the node refused the query.
            RpcError: the node cannot be reached.
        """
        value = self.query("/oracle/device", {"did": did})
        return None if value is None else device_info(value, did)

    def device_records(self, owner: str,
                       page: int = DEVICE_RECORDS_PAGE) -> Iterator[DeviceInfo]:
        """The records of every device ``owner`` registered, in address order, read lazily
        ``page`` at a time (``/oracle/device_records``); each page reflects the node's state
        when it was asked.

        Raises:
            AnchorRefusedError: the node refused a query.
            RpcError: the node cannot be reached.
        """
        params: dict[str, Any] = {"owner": owner, "limit": page}
        while True:
            value = self.query("/oracle/device_records", params)
            for record in value["records"]:
                yield device_info(record)
            if value["next_start_after"] is None:
                return
            params = {**params, "start_after": value["next_start_after"]}

    def operator(self) -> str:
        """The DID the gateway anchors for: the owner of its Gateway device, or the key's own
        DID when the key is not a device (an operator anchoring directly)."""
        own = self.device(self.key.did)
        return self.key.did if own is None else own.owner

    def latest_height(self) -> int:
        """The height of the node's latest committed block."""
        return int(self.client.status()["sync_info"]["latest_block_height"])

    def block_events(self, height: int) -> list[tuple[str, dict[str, str]]]:
        """Every event committed block ``height`` emitted (each tx's, then the block's own), as
        (type, attributes); the same call on the solo node and on CometBFT.

        Raises:
            RpcError: the node has no such block yet, or cannot be reached.
        """
        answer = self.client.call("block_results", height=str(height))  # int64 as a string
        found: list[tuple[str, dict[str, str]]] = []
        for result in answer.get("txs_results") or []:
            found.extend(_event(event) for event in (result or {}).get("events") or [])
        found.extend(_event(event) for event in answer.get("finalize_block_events") or [])
        return found

    def params(self) -> dict[str, Any]:
        value: dict[str, Any] = self.query("/oracle/params", {})
        return value

    def anchor_by_root(self, merkle_root: bytes) -> dict[str, Any] | None:
        """The anchor of ``merkle_root`` without its device list (the gateway needs its
        height), or None."""
        value: dict[str, Any] | None = self.query(
            "/oracle/anchor", {"merkle_root": merkle_root.hex(), "devices": 0})
        return value

    def committed_sequence(self) -> int:
        """The gateway key's next sequence number in the latest committed state."""
        account = codec.decode(self.client.query(
            "/identity/account", {"address": self.key.address}).value)
        return 0 if account is None else int(account["sequence"])

    def send_anchors(self, messages: Sequence[MsgAnchorBatch], *, timeout: float = 60.0,
                     poll: float = 0.05) -> list[str]:
        """Sign ``messages`` as one tx each, with consecutive sequence numbers, broadcast them
        without waiting for blocks (several go into one block), then wait until every tx
        accepted at check has been executed (the key's committed sequence has passed them).
        Returns the hashes of the txs accepted at check: all of them, or those before the
        first refused (a later one could only fail on its sequence). Whether each anchor
        succeeded is for the caller to read from the chain (``anchor_by_root``).

        Raises:
            RpcError: the node is unreachable, or the txs were not executed within
                ``timeout`` seconds (a tx dropped from the mempool, say).
        """
        for message in messages:
            message.validate_basic()
        with self._send_lock:
            sequence = self.committed_sequence()
            hashes: list[str] = []
            for offset, message in enumerate(messages):
                raw = sign_tx(self.key, TxBody(self.chain_id, self.key.address,
                                               sequence + offset, (message,)))
                result = self.client.broadcast(raw, commit=False)
                if int(result["code"]) != 0:
                    break
                hashes.append(str(result["hash"]))
            deadline = time.monotonic() + timeout
            while hashes and self.committed_sequence() < sequence + len(hashes):
                if time.monotonic() > deadline:
                    raise RpcError(f"{len(hashes)} anchor txs from sequence {sequence} not "
                                   f"executed within {timeout:.0f} s")
                time.sleep(poll)
        return hashes

    def send_anchor(self, message: MsgAnchorBatch) -> tuple[int, str]:
        """Sign and broadcast ``message``; wait for its block; return (height, tx hash).

        Raises:
            AnchorRefusedError: refused at check or failed in its block.
        """
        message.validate_basic()
        with self._send_lock:
            sequence = self.committed_sequence()
            raw = sign_tx(self.key, TxBody(self.chain_id, self.key.address, sequence,
                                           (message,)))
            result = self.client.broadcast(raw, commit=True)
        final = result.get("tx_result") or result.get("check_tx") or result
        if int(final["code"]) != 0:
            raise AnchorRefusedError(str(final.get("codespace") or ""), int(final["code"]),
                                     str(final.get("log") or ""))
        return int(result.get("height") or 0), str(result["hash"])


def _event(event: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(type, attributes) of one event in either node's shape (pairs or key/value objects)."""
    attributes: dict[str, str] = {}
    for attribute in event.get("attributes") or []:
        if isinstance(attribute, Mapping):
            key, value = attribute.get("key"), attribute.get("value")
        else:
            key, value = attribute
        attributes[str(key)] = "" if value is None else str(value)
    return str(event.get("type") or ""), attributes


def devices_named(events: Iterable[tuple[str, dict[str, str]]]) -> set[str] | None:
    """The DIDs whose device record ``events`` may have changed (:data:`DEVICE_EVENT_TYPES`),
    or None when one of those events names no account it could be narrowed to (then every
    record must go)."""
    named: set[str] = set()
    for event_type, attributes in events:
        if event_type not in DEVICE_EVENT_TYPES:
            continue
        found = False
        for name in _ACCOUNT_ATTRIBUTES:
            value = attributes.get(name, "")
            if address_from_did(value) is not None:
                named.add(value)
                found = True
            elif is_address(value):
                named.add(did_from_address(value))
                found = True
        if not found:
            return None
    return named


class DeviceCache:
    """Device records by DID (unknown DIDs too, so a flood of forged DIDs costs one query each),
    dropped by :meth:`invalidate` when a committed event names them, re-read anyway once older
    than ``ttl`` seconds, and at most ``max_entries`` of them (the oldest read goes first).

    Thread-safe. A read that was in flight while an invalidation happened is returned but not
    kept: it may predate the change (for a batch read by :meth:`prime`, the whole batch)."""

    def __init__(self, fetch: Callable[[str], DeviceInfo | None], ttl: float = DEFAULT_DEVICE_TTL,
                 clock: Callable[[], float] = time.monotonic,
                 max_entries: int = DEFAULT_DEVICE_CACHE_SIZE) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self.max_entries = max(1, max_entries)
        self._clock = clock
        self._entries: dict[str, tuple[float, DeviceInfo | None]] = {}
        self._lock = threading.Lock()
        self._generation = 0          # bumped by every invalidation

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, did: object) -> bool:
        return did in self._entries

    def get(self, did: str) -> DeviceInfo | None:
        entry = self._entries.get(did)
        if entry is None or self._clock() - entry[0] >= self.ttl:
            return self.refresh(did)
        return entry[1]

    def refresh(self, did: str) -> DeviceInfo | None:
        """Read ``did`` from the chain now and keep it (unless invalidated meanwhile)."""
        generation = self._generation
        read_at = self._clock()
        info = self._fetch(did)
        with self._lock:
            if generation == self._generation:
                self._entries.pop(did, None)             # re-inserted last: evicted last
                while len(self._entries) >= self.max_entries:
                    del self._entries[next(iter(self._entries))]
                self._entries[did] = (read_at, info)
        return info

    def prime(self, records: Iterable[DeviceInfo]) -> int:
        """Read ``records`` (lazily: typically pages from the chain) and keep them all, unless
        an invalidation happened while they were read: then none is kept, since any may predate
        the change (:meth:`refresh`'s rule for a batch). Kept records go in read order, each
        after the existing ones (evicted last), at most ``max_entries`` in all (the oldest go
        first). Returns how many were kept.

        Raises:
            whatever iterating ``records`` raises (then nothing is kept).
        """
        generation = self._generation
        read_at = self._clock()
        read = {info.did: info for info in records}
        with self._lock:
            if generation != self._generation:
                return 0
            kept = list(read.values())[-self.max_entries:]
            for info in kept:
                self._entries.pop(info.did, None)
            while self._entries and len(self._entries) + len(kept) > self.max_entries:
                del self._entries[next(iter(self._entries))]
            for info in kept:
                self._entries[info.did] = (read_at, info)
        return len(kept)

    def invalidate(self, dids: Iterable[str]) -> None:
        """Forget the records of ``dids``: the next read of each goes to the chain."""
        with self._lock:
            self._generation += 1
            for did in dids:
                self._entries.pop(did, None)

    def clear(self) -> None:
        """Forget every record: the next read of each goes to the chain."""
        with self._lock:
            self._generation += 1
            self._entries.clear()


def preload_devices(link: ChainLink, cache: DeviceCache, owner: str) -> int:
    """Read the records of ``owner``'s devices in pages (up to the cache's size) into
    ``cache``; return how many were kept (none if an invalidation raced the read). Call it
    after :meth:`BlockFollower.start_at`, so events from then on still invalidate them.

    Raises:
        AnchorRefusedError: the node refused a query.
        RpcError: the node cannot be reached.
    """
    page = min(DEVICE_RECORDS_PAGE, cache.max_entries)
    return cache.prime(islice(link.device_records(owner, page), cache.max_entries))


class BlockFollower:
    """Follows committed blocks in order, from the height it starts at, and invalidates the
    device records their events name (:func:`devices_named`) in ``cache``.

    :meth:`start_at` clears the cache and takes the node's current height: every record read
    afterwards reflects at least that height, so no change is missed. :meth:`poll` then reads
    each new block's events, one block at a time, never skipping one; when it falls more than
    ``max_lag`` blocks behind (a long outage) it clears the cache and jumps to the tip."""

    def __init__(self, link: ChainLink, cache: DeviceCache, max_lag: int = 1000) -> None:
        self.link = link
        self.cache = cache
        self.max_lag = max_lag
        self.height = -1               # the last block whose events were applied
        self.invalidated = 0           # records dropped by events since start (for stats)

    def start_at(self) -> int:
        """Clear the cache and begin after the node's current height, which it returns.

        Raises:
            RpcError: the node cannot be reached.
        """
        height = self.link.latest_height()
        self.cache.clear()
        self.height = height
        return height

    def poll(self) -> int:
        """Apply every block committed since the last one applied; return how many.

        Raises:
            RpcError: the node cannot be reached (what was applied stays applied).
        """
        if self.height < 0:
            self.start_at()
            return 0
        tip = self.link.latest_height()
        if tip - self.height > self.max_lag:
            self.cache.clear()
            skipped, self.height = tip - self.height, tip
            return skipped
        done = 0
        while self.height < tip:
            named = devices_named(self.link.block_events(self.height + 1))
            if named is None:
                self.cache.clear()
            elif named:
                self.cache.invalidate(sorted(named))
                self.invalidated += len(named)
            self.height += 1
            done += 1
        return done
