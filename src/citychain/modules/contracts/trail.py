"""A contract's audit trail: every event about a contract is also stored under the contract, so
its whole history can be exported (and proven key by key) without replaying blocks."""

from __future__ import annotations

from collections.abc import Callable

from citychain.core.context import BlockContext
from citychain.core.events import Event
from citychain.core.state import StateView
from citychain.modules.contracts import state
from citychain.modules.contracts.types import AuditEntry


class Trail:
    """Appends events to one contract's audit trail and passes them on to the block's events.

    The caller stores the contract state afterwards with ``audit_count=trail.count``.
    """

    def __init__(self, view: StateView, block: BlockContext, contract_id: int, count: int,
                 sink: Callable[[Event], None]) -> None:
        self._view = view
        self._block = block
        self._contract_id = contract_id
        self._sink = sink
        self.count = count

    def add(self, event: Event) -> None:
        entry = AuditEntry(self.count, self._block.height, self._block.time_s, event.type,
                           event.attributes)
        state.set_audit_entry(self._view, self._contract_id, entry)
        self.count += 1
        self._sink(event)

    def pass_on(self, event: Event) -> None:
        """Pass an event on to the block's events without adding it to the trail (the bank's
        own events about the contract's escrow)."""
        self._sink(event)
