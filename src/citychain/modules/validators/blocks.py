"""End-block work: apply the changes that passed in this block, lapse expired proposals, and
report this block's changes to the consensus engine.

Each passed change runs in its own branch, in proposal id order, re-checked against the set as
the earlier changes of the block left it; a change that no longer fits (its organisation lost
validator-org in the same block, or together with the earlier changes it would move 1/3 of the
power) is recorded as ``failed`` and changes nothing.
"""

from __future__ import annotations

from dataclasses import replace

from citychain.core.context import BlockContext
from citychain.core.errors import ChainError
from citychain.core.events import Event
from citychain.core.module import ValidatorUpdate
from citychain.core.state import ReadView, StateView
from citychain.modules.validators import events, state
from citychain.modules.validators.handlers import apply_change, check_change
from citychain.modules.validators.types import (
    MAX_FAILURE_LENGTH,
    STATUS_FAILED,
    STATUS_LAPSED,
    Proposal,
    compute_total_power,
)


def process_end_block(view: StateView, block: BlockContext) -> list[Event]:
    """Apply this block's passed proposals (by id), then lapse open proposals whose expiry
    height is this block's height or lower; return the events."""
    found: list[Event] = []
    total_before = compute_total_power(state.iter_validators(view))
    moved = 0
    for proposal_id in list(state.iter_queued_ids(view)):
        proposal = _proposal(view, proposal_id)
        branch = view.branch()
        try:
            moved += _apply(branch, block, proposal, total_before, moved, found)
        except ChainError as error:
            branch = view.branch()
            reason = f"{error.codespace}/{error.code}: {error.message}"[:MAX_FAILURE_LENGTH]
            _close(branch, replace(proposal, status=STATUS_FAILED, failure=reason))
            found.append(events.validator_change_failed(proposal_id, error.codespace,
                                                        error.code, reason))
        branch.write()
    for proposal_id in list(state.iter_expired_ids(view, block.height)):
        proposal = _proposal(view, proposal_id)
        state.delete_open_index(view, proposal)
        _close(view, replace(proposal, status=STATUS_LAPSED, closed_height=block.height))
        found.append(events.validator_change_lapsed(proposal_id, proposal.expiry_height))
    return found


def process_validator_updates(view: ReadView, block: BlockContext) -> tuple[ValidatorUpdate, ...]:
    """Return the ABCI updates for the changes applied at this block's height, in proposal id
    order, one per public key (its power now; 0 removes it)."""
    updates: list[ValidatorUpdate] = []
    seen: set[bytes] = set()
    for proposal_id in state.iter_applied_ids(view, block.height):
        pubkey = _proposal(view, proposal_id).pubkey
        if pubkey in seen:
            continue
        seen.add(pubkey)
        validator = state.get_validator(view, pubkey)
        updates.append(ValidatorUpdate(pubkey, 0 if validator is None else validator.power))
    return tuple(updates)


def genesis_validators(view: ReadView) -> tuple[ValidatorUpdate, ...]:
    """Return the set as InitChain reports it (pubkey order); empty when genesis listed none, in
    which case CometBFT keeps the validators of its own genesis file."""
    return tuple(ValidatorUpdate(v.pubkey, v.power) for v in state.iter_validators(view))


def _apply(view: StateView, block: BlockContext, proposal: Proposal, total_before: int,
           already_moved: int, found: list[Event]) -> int:
    current = {validator.pubkey: validator for validator in state.iter_validators(view)}
    moved = check_change(view, current, proposal.action, proposal.pubkey, proposal.power,
                         proposal.organisation, total_before=total_before,
                         already_moved=already_moved, pending_check=False)
    previous, record = apply_change(view, proposal)
    existing = current.get(proposal.pubkey)
    organisation = record.organisation if record is not None else (
        existing.organisation if existing is not None else "")
    _close(view, proposal)
    state.add_applied(view, block.height, proposal.proposal_id)
    found.append(events.validator_set_changed(
        proposal.proposal_id, proposal.pubkey, 0 if record is None else record.power, previous,
        organisation))
    return moved


def _close(view: StateView, proposal: Proposal) -> None:
    """Store the closed proposal and drop its queue and pending entries."""
    state.set_proposal(view, proposal)
    state.delete_queued(view, proposal.proposal_id)
    state.delete_pending(view, proposal.pubkey)


def _proposal(view: ReadView, proposal_id: int) -> Proposal:
    proposal = state.get_proposal(view, proposal_id)
    if proposal is None:
        raise RuntimeError(f"validators index names missing proposal {proposal_id}")
    return proposal
