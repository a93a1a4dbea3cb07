"""Request and response records of the ABCI 2.0 method set, as plain Python (no protobuf).

The CometBFT driver maps its protobuf messages onto these; the solo driver uses them directly.
Field names follow the ABCI 2.0 specification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from citychain.core.errors import ChainError
from citychain.core.events import Event
from citychain.core.module import ValidatorUpdate as ValidatorUpdate  # re-exported

CODE_OK = 0


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    data: str
    version: str
    app_version: int
    last_block_height: int
    last_block_app_hash: bytes


@dataclass(frozen=True, slots=True)
class RequestInitChain:
    chain_id: str
    time_ns: int
    app_state: dict[str, Any]
    initial_height: int = 1
    validators: tuple[ValidatorUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseInitChain:
    app_hash: bytes
    validators: tuple[ValidatorUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class TxResult:
    """The outcome of checking or executing one transaction (ABCI CheckTx / ExecTxResult)."""

    code: int = CODE_OK
    codespace: str = ""
    log: str = ""
    info: str = ""
    events: tuple[Event, ...] = ()
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.code == CODE_OK

    @classmethod
    def from_error(cls, error: ChainError, events: tuple[Event, ...] = ()) -> TxResult:
        return cls(code=error.code, codespace=error.codespace, log=error.message,
                   info=error.field or "", events=events)

    def to_value(self) -> dict[str, Any]:
        """Plain data for storage and clients."""
        return {"code": self.code, "codespace": self.codespace, "log": self.log,
                "info": self.info, "data": self.data,
                "events": [e.to_value() for e in self.events]}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> TxResult:
        return cls(code=value["code"], codespace=value["codespace"], log=value["log"],
                   info=value["info"], data=value["data"],
                   events=tuple(Event.from_value(e) for e in value["events"]))


@dataclass(frozen=True, slots=True)
class RequestFinalizeBlock:
    txs: tuple[bytes, ...]
    height: int
    time_ns: int
    proposer: str = ""
    hash: bytes = b""


@dataclass(frozen=True, slots=True)
class ResponseFinalizeBlock:
    tx_results: tuple[TxResult, ...]
    events: tuple[Event, ...]
    app_hash: bytes
    validator_updates: tuple[ValidatorUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseCommit:
    retain_height: int = 0


@dataclass(frozen=True, slots=True)
class ProvenRead:
    """One key read by a proven query, with its value (None = absent) and Merkle proof."""

    key: bytes
    value: bytes | None
    proof: Any


@dataclass(frozen=True, slots=True)
class ResponseQuery:
    code: int = CODE_OK
    codespace: str = ""
    log: str = ""
    info: str = ""
    key: bytes = b""
    value: bytes = b""
    height: int = 0
    reads: tuple[ProvenRead, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == CODE_OK

    @classmethod
    def from_error(cls, error: ChainError, height: int = 0) -> ResponseQuery:
        return cls(code=error.code, codespace=error.codespace, log=error.message,
                   info=error.field or "", height=height)
