"""The gateway's JSON shapes (pydantic models for OpenAPI), each with an example.

These are API schemas only; state records live in the modules and are never reused here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AccountAnswer",
    "BlockAnswer",
    "BlockPage",
    "LightBlock",
    "ProblemAnswer",
    "QueryAnswer",
    "QueryProof",
    "ResultAnswer",
    "StatusAnswer",
    "SubmitTx",
    "TxAnswer",
    "TxSubmitted",
]

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
ADDRESS = "3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50"
TRANSFER_EVENT = {"type": "coins_transferred",
                  "attributes": [["amount", "250"], ["denom", "ucity"],
                                 ["recipient", f"did:city:{ADDRESS}"],
                                 ["sender", "did:city:8b0c2d4e6f8a0b1c2d3e4f503f2a9c1b7e5d4a6f"]]}


def _example(value: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [value]})


class ProblemAnswer(BaseModel):
    """An error (RFC 9457 problem details) with the chain's codespace, code and field."""

    model_config = _example({
        "type": "urn:citychain:error:bank:2", "title": "insufficient funds", "status": 422,
        "detail": "balance 5 ucity is below the 10 ucity to send", "code": 2,
        "codespace": "bank", "field": "amount", "instance": "/v1/txs"})
    type: str
    title: str
    status: int
    detail: str
    code: int
    codespace: str
    field: str
    instance: str = ""


class StatusAnswer(BaseModel):
    model_config = _example({
        "chain_id": "citychain-demo", "driver": "solo", "latest_height": 42,
        "latest_block_hash": HASH, "latest_app_hash": HASH,
        "latest_block_time": "2026-11-21T07:00:00.000000000Z", "mempool_size": 3})
    chain_id: str
    driver: Literal["solo", "cometbft"]
    latest_height: int
    latest_block_hash: str
    latest_app_hash: str
    latest_block_time: str
    mempool_size: int


class SubmitTx(BaseModel):
    """A signed transaction (its canonical bytes, base64) and how long to wait."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"tx": "pGVjaGFpbm5jaXR5Y2hhaW4tZGVtbw==", "wait": "commit"}]})
    tx: str = Field(description="the signed transaction's bytes, base64", min_length=1,
                    max_length=2_800_000)
    wait: Literal["check", "commit"] = Field(
        "commit", description="answer once the tx passed check (in the mempool) or once its "
                              "block committed")


class ResultAnswer(BaseModel):
    model_config = _example({"code": 0, "codespace": "", "log": "", "field": "",
                             "events": [TRANSFER_EVENT]})
    code: int
    codespace: str
    log: str
    field: str
    events: list[dict[str, Any]]


class TxSubmitted(BaseModel):
    model_config = _example({
        "hash": HASH, "check": {"code": 0, "codespace": "", "log": "", "field": "",
                                "events": []},
        "height": 42, "result": {"code": 0, "codespace": "", "log": "", "field": "",
                                 "events": [TRANSFER_EVENT]}})
    hash: str
    check: ResultAnswer
    height: int | None = None
    result: ResultAnswer | None = None


class LightBlock(BaseModel):
    """What a light client needs to verify one header: solo, the signed header (base64 of its
    canonical encoding); CometBFT, the ``commit`` and validator set answers."""

    model_config = _example({"driver": "solo", "height": 41,
                             "signed_header": "omZoZWFkZXKo..."})
    driver: Literal["solo", "cometbft"]
    height: int
    signed_header: Any
    validators: dict[str, Any] | None = None


class TxAnswer(BaseModel):
    model_config = _example({
        "hash": HASH, "height": 42, "index": 0, "tx": "pGVjaGFpbm5jaXR5Y2hhaW4tZGVtbw==",
        "result": {"code": 0, "codespace": "", "log": "", "field": "",
                   "events": [TRANSFER_EVENT]},
        "proof": None, "light": None})
    hash: str
    height: int
    index: int
    tx: str
    result: ResultAnswer
    proof: dict[str, Any] | None = None
    """Inclusion proof of the tx in its block's tx root (solo) or data hash (CometBFT)."""
    light: LightBlock | None = None


class BlockAnswer(BaseModel):
    model_config = _example({
        "height": 42, "hash": HASH, "time": "2026-11-21T07:00:00.000000000Z",
        "proposer": ADDRESS, "app_hash": HASH, "num_txs": 1, "tx_hashes": [HASH]})
    height: int
    hash: str
    time: str
    proposer: str
    app_hash: str
    num_txs: int
    tx_hashes: list[str]


class BlockPage(BaseModel):
    model_config = _example({"items": [{
        "height": 42, "hash": HASH, "time": "2026-11-21T07:00:00.000000000Z",
        "proposer": ADDRESS, "app_hash": HASH, "num_txs": 1, "tx_hashes": [HASH]}],
        "next_cursor": "41"})
    items: list[BlockAnswer]
    next_cursor: str | None


class QueryProof(BaseModel):
    """Everything needed to check a query answer without trusting the gateway or its node."""

    model_config = _example({
        "height": 41, "value": "omRkZW5vbWV1Y2l0eWZhbW91bnQZAPo=", "reads": "gaNja2V5WCA...",
        "light": {"driver": "solo", "height": 41, "signed_header": "omZoZWFkZXKo..."}})
    height: int
    value: str = Field(description="the canonical encoding of the answer, base64")
    reads: str = Field(description="key, value and Merkle proof of every key the query read")
    light: LightBlock


class QueryAnswer(BaseModel):
    model_config = _example({
        "module": "bank", "query": "balance", "height": 41,
        "value": {"address": ADDRESS, "denom": "ucity", "amount": 250}, "proof": None})
    module: str
    query: str
    height: int
    value: Any
    proof: QueryProof | None = None


class AccountAnswer(BaseModel):
    model_config = _example({
        "address": ADDRESS, "did": f"did:city:{ADDRESS}", "height": 41,
        "account": {"address": ADDRESS, "did": f"did:city:{ADDRESS}", "sequence": 3,
                    "roles": ["citizen"], "suspended": False},
        "balances": [{"denom": "ucity", "amount": 250}]})
    address: str
    did: str
    height: int
    account: dict[str, Any] | None
    balances: list[dict[str, Any]]
