"""Block and transaction contexts: everything a handler may know besides state and its message."""

from __future__ import annotations

from dataclasses import dataclass, field

from citychain.core.events import Event


@dataclass(frozen=True, slots=True)
class BlockContext:
    """The block being executed. ``time_ns`` is block time (UNIX nanoseconds), never wall clock."""

    chain_id: str
    height: int
    time_ns: int
    proposer: str = ""

    @property
    def time_s(self) -> int:
        return self.time_ns // 1_000_000_000


@dataclass(slots=True)
class TxContext:
    """One transaction's context: the verified sender and the events it emits."""

    block: BlockContext
    sender: str
    tx_hash: bytes = b""
    events: list[Event] = field(default_factory=list)

    @property
    def chain_id(self) -> str:
        return self.block.chain_id

    @property
    def height(self) -> int:
        return self.block.height

    @property
    def time_ns(self) -> int:
        return self.block.time_ns

    def emit(self, event: Event) -> None:
        """Record ``event`` as part of this transaction's result."""
        self.events.append(event)
