"""Translation between CometBFT's protobuf messages and the application's plain records.

Nothing here decides anything: fields are copied, times become UNIX nanoseconds, addresses
become lower-case hex, and our results and events take their ABCI shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from citychain.app.types import (
    ProvenRead,
    RequestFinalizeBlock,
    RequestInitChain,
    ResponseQuery,
    TxResult,
    ValidatorUpdate,
)
from citychain.consensus.abci.codes import abci_code
from citychain.consensus.abci.protos import crypto_keys
from citychain.core import codec
from citychain.core.errors import InvalidGenesisError
from citychain.core.events import Event

READS_PROOF_TYPE = "citychain/reads"
"""``ProofOp.type`` of a proven query answer; its data is :func:`encode_reads` of the reads."""

NANOS = 1_000_000_000


def timestamp_ns(timestamp: Any) -> int:
    """Return a ``google.protobuf.Timestamp`` as UNIX nanoseconds."""
    return int(timestamp.seconds) * NANOS + int(timestamp.nanos)


def validator_from_pb(update: Any) -> ValidatorUpdate:
    """Return our record of an ABCI ``ValidatorUpdate``.

    Raises:
        InvalidGenesisError: the key is not ed25519 (the only kind citychain validators use).
    """
    if update.pub_key.WhichOneof("sum") != "ed25519":
        raise InvalidGenesisError("validators must use ed25519 keys", field="validators")
    return ValidatorUpdate(pubkey=bytes(update.pub_key.ed25519), power=int(update.power))


def add_validators(target: Any, updates: Iterable[ValidatorUpdate]) -> None:
    """Append our validator updates to a repeated ``ValidatorUpdate`` field."""
    for update in updates:
        target.add(pub_key=crypto_keys.PublicKey(ed25519=update.pubkey), power=update.power)


def init_chain_from_pb(request: Any) -> RequestInitChain:
    """Build our InitChain request; ``app_state_bytes`` is the genesis ``app_state`` JSON.

    Raises:
        InvalidGenesisError: app_state is not a JSON object, or a validator key is not ed25519.
    """
    app_state: Any = {}
    if request.app_state_bytes:
        try:
            app_state = json.loads(request.app_state_bytes)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidGenesisError(f"genesis app_state is not valid JSON: {exc}",
                                      field="app_state") from None
    if not isinstance(app_state, dict):
        raise InvalidGenesisError("genesis app_state must be a JSON object of module sections",
                                  field="app_state")
    return RequestInitChain(
        chain_id=request.chain_id,
        time_ns=timestamp_ns(request.time),
        app_state=app_state,
        initial_height=int(request.initial_height) or 1,
        validators=tuple(validator_from_pb(v) for v in request.validators),
    )


def finalize_block_from_pb(request: Any) -> RequestFinalizeBlock:
    return RequestFinalizeBlock(
        txs=tuple(bytes(tx) for tx in request.txs),
        height=int(request.height),
        time_ns=timestamp_ns(request.time),
        proposer=bytes(request.proposer_address).hex(),
        hash=bytes(request.hash),
    )


def add_events(target: Any, events: Iterable[Event]) -> None:
    """Append our events to a repeated ``Event`` field; every attribute is indexed, so
    ``tx_search`` can find it. (Filling messages in place is about twice as fast as building
    and copying them, which matters on the CheckTx path.)"""
    for event in events:
        added = target.add(type=event.type)
        for key, value in event.attributes:
            added.attributes.add(key=key, value=value, index=True)


def fill_tx_result(target: Any, result: TxResult) -> None:
    """Fill a ``ResponseCheckTx`` or ``ExecTxResult`` (same fields) from our result."""
    code, codespace = abci_code(result.codespace, result.code)
    target.SetInParent()  # an all-default answer must still be present in its oneof
    target.code = code
    target.codespace = codespace
    target.log = result.log
    target.info = result.info
    target.data = result.data
    add_events(target.events, result.events)


def encode_reads(reads: Sequence[ProvenRead]) -> bytes:
    """The canonical encoding of proven reads: ``[{key, value, proof}, ...]`` in read order.

    The same bytes the solo driver returns, so ``citychain.client.verify.decode_reads`` reads both.
    """
    return codec.encode([{"key": read.key, "value": read.value, "proof": read.proof.to_value()}
                         for read in reads])


def fill_query(target: Any, response: ResponseQuery, *, prove: bool) -> None:
    """Fill ``ResponseQuery`` from our answer; with ``prove``, the reads go in one ProofOp."""
    code, codespace = abci_code(response.codespace, response.code)
    target.SetInParent()
    target.code = code
    target.codespace = codespace
    target.log = response.log
    target.info = response.info
    target.key = response.key
    target.value = response.value
    target.height = response.height
    if prove and response.ok:
        target.proof_ops.ops.add(type=READS_PROOF_TYPE, key=response.key,
                                 data=encode_reads(response.reads))
