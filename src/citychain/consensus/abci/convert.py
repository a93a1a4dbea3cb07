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
from citychain.consensus.abci.protos import abci, crypto_keys, crypto_proof
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


def validators_to_pb(updates: Iterable[ValidatorUpdate]) -> list[Any]:
    return [abci.ValidatorUpdate(pub_key=crypto_keys.PublicKey(ed25519=update.pubkey),
                                 power=update.power) for update in updates]


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


def events_to_pb(events: Iterable[Event]) -> list[Any]:
    """Our events as ABCI events; every attribute is indexed so ``tx_search`` can find it."""
    return [abci.Event(type=event.type,
                       attributes=[abci.EventAttribute(key=key, value=value, index=True)
                                   for key, value in event.attributes])
            for event in events]


def _result_fields(result: TxResult) -> dict[str, Any]:
    code, codespace = abci_code(result.codespace, result.code)
    return {"code": code, "codespace": codespace, "log": result.log, "info": result.info,
            "data": result.data, "events": events_to_pb(result.events)}


def check_tx_to_pb(result: TxResult) -> Any:
    return abci.ResponseCheckTx(**_result_fields(result))


def exec_tx_result_to_pb(result: TxResult) -> Any:
    return abci.ExecTxResult(**_result_fields(result))


def encode_reads(reads: Sequence[ProvenRead]) -> bytes:
    """The canonical encoding of proven reads: ``[{key, value, proof}, ...]`` in read order.

    The same bytes the solo driver returns, so ``citychain.client.verify.decode_reads`` reads both.
    """
    return codec.encode([{"key": read.key, "value": read.value, "proof": read.proof.to_value()}
                         for read in reads])


def query_to_pb(response: ResponseQuery, *, prove: bool) -> Any:
    """Our query answer as ``ResponseQuery``; with ``prove``, the reads go in one ProofOp."""
    code, codespace = abci_code(response.codespace, response.code)
    answer = abci.ResponseQuery(code=code, codespace=codespace, log=response.log,
                                info=response.info, key=response.key, value=response.value,
                                height=response.height)
    if prove and response.ok:
        answer.proof_ops.ops.append(crypto_proof.ProofOp(
            type=READS_PROOF_TYPE, key=response.key, data=encode_reads(response.reads)))
    return answer
