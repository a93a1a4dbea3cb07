"""Validators message handlers, and the change checks and writes the end of the block shares.

Every check runs before the first write. A proposal that reaches the threshold is marked passed
and queued; the set itself changes only at the end of the block (blocks.py), so every tally in a
block counts the same set.
"""

from __future__ import annotations

from dataclasses import replace

from citychain.core.context import TxContext
from citychain.core.crypto import did_from_address
from citychain.core.state import ReadView, StateView
from citychain.modules.identity import api as identity
from citychain.modules.validators import events, state
from citychain.modules.validators.errors import (
    AlreadyApprovedError,
    NotValidatorOperatorError,
    OrganisationNotEligibleError,
    OrganisationNotFoundError,
    PowerChangeTooLargeError,
    PowerUnchangedError,
    ProposalNotFoundError,
    ProposalNotOpenError,
    ProposalPendingError,
    TotalPowerTooLargeError,
    ValidatorAlreadyExistsError,
    ValidatorNotFoundError,
    ValidatorSetEmptyError,
    ValidatorSetUnmanagedError,
)
from citychain.modules.validators.messages import (
    MsgApproveValidatorChange,
    MsgProposeValidatorChange,
)
from citychain.modules.validators.types import (
    ACTION_ADD,
    ACTION_REMOVE,
    MAX_TOTAL_POWER,
    STATUS_OPEN,
    STATUS_PASSED,
    Proposal,
    Validator,
    compute_approved_power,
    compute_power_moved,
    compute_total_power,
    has_supermajority,
    is_change_within_limit,
)


def handle_propose_validator_change(view: StateView, ctx: TxContext,
                                    msg: MsgProposeValidatorChange) -> None:
    """Open a proposal to change the set; count the sender's approval if it operates a
    validator, and mark the proposal passed if that alone is more than 2/3 of the power.

    Raises:
        RoleRequiredError, ValidatorSetUnmanagedError, ValidatorAlreadyExistsError,
        OrganisationNotFoundError, OrganisationNotEligibleError, ValidatorNotFoundError,
        ValidatorSetEmptyError, PowerUnchangedError, ProposalPendingError,
        TotalPowerTooLargeError, PowerChangeTooLargeError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_VALIDATOR_ORG)
    current = {validator.pubkey: validator for validator in state.iter_validators(view)}
    total = compute_total_power(current.values())
    check_change(view, current, msg.action, msg.pubkey, msg.power, msg.organisation,
                 total_before=total, already_moved=0, pending_check=True)

    proposer = did_from_address(ctx.sender)
    operators = {validator.organisation for validator in current.values()}
    params = state.get_params(view)
    proposal = Proposal(
        proposal_id=state.get_next_proposal_id(view), action=msg.action, pubkey=msg.pubkey,
        power=msg.power, organisation=msg.organisation, name=msg.name, proposer=proposer,
        created_height=ctx.height, expiry_height=ctx.height + params.voting_period_blocks,
        approvals=(proposer,) if proposer in operators else ())
    state.set_next_proposal_id(view, proposal.proposal_id + 1)
    state.set_proposal(view, proposal)
    state.add_open_index(view, proposal)
    ctx.emit(events.validator_change_proposed(
        proposal.proposal_id, proposal.action, proposal.pubkey, proposal.power,
        proposal.organisation, proposal.name, proposer, proposal.expiry_height))
    _tally(view, ctx, proposal, list(current.values()))


def handle_approve_validator_change(view: StateView, ctx: TxContext,
                                    msg: MsgApproveValidatorChange) -> None:
    """Add the sender's organisation to an open proposal's approvals and tally it against the
    current set.

    Raises:
        RoleRequiredError, ProposalNotFoundError, ProposalNotOpenError,
        NotValidatorOperatorError, AlreadyApprovedError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_VALIDATOR_ORG)
    proposal = state.get_proposal(view, msg.proposal_id)
    if proposal is None:
        raise ProposalNotFoundError(f"no validator change proposal {msg.proposal_id}",
                                    field="proposal_id")
    if proposal.status != STATUS_OPEN or ctx.height > proposal.expiry_height:
        raise ProposalNotOpenError(
            f"proposal {proposal.proposal_id} is {proposal.status}"
            + (f" (expired at height {proposal.expiry_height})"
               if proposal.status == STATUS_OPEN else "") + "; it takes no more approvals",
            field="proposal_id", status=proposal.status)
    approver = did_from_address(ctx.sender)
    validators = list(state.iter_validators(view))
    if not any(validator.organisation == approver for validator in validators):
        raise NotValidatorOperatorError(
            f"{approver} operates no validator in the current set; only operating "
            "organisations approve changes", field="sender")
    if approver in proposal.approvals:
        raise AlreadyApprovedError(f"{approver} has already approved proposal "
                                   f"{proposal.proposal_id}", field="proposal_id")
    proposal = replace(proposal, approvals=tuple(sorted((*proposal.approvals, approver))))
    state.set_proposal(view, proposal)
    total = compute_total_power(validators)
    ctx.emit(events.validator_change_approved(
        proposal.proposal_id, approver, compute_approved_power(validators, proposal.approvals),
        total))
    _tally(view, ctx, proposal, validators)


def check_change(view: ReadView, current: dict[bytes, Validator], action: str, pubkey: bytes,
                 power: int, organisation: str, *, total_before: int, already_moved: int,
                 pending_check: bool) -> int:
    """Raise unless the change may apply to the set ``current``; return the power it moves.

    ``total_before`` is the total power the 1/3 limit is measured against and
    ``already_moved`` the power earlier changes moved in the same block (both for the end of the
    block; a proposal checks against the current set alone).

    Raises:
        ValidatorSetUnmanagedError, ValidatorAlreadyExistsError, OrganisationNotFoundError,
        OrganisationNotEligibleError, ValidatorNotFoundError, ValidatorSetEmptyError,
        PowerUnchangedError, ProposalPendingError, TotalPowerTooLargeError,
        PowerChangeTooLargeError.
    """
    if not current:
        raise ValidatorSetUnmanagedError(
            "this chain's genesis listed no validators in app_state.validators, so its "
            "consensus set is not governed on chain", field="pubkey")
    existing = current.get(pubkey)
    if action == ACTION_ADD:
        if existing is not None:
            raise ValidatorAlreadyExistsError(
                f"{pubkey.hex()} is already a validator (operated by {existing.organisation})",
                field="pubkey")
        _check_organisation(view, organisation)
    else:
        if existing is None:
            raise ValidatorNotFoundError(f"{pubkey.hex()} is not in the validator set",
                                         field="pubkey")
        if action == ACTION_REMOVE and len(current) == 1:
            raise ValidatorSetEmptyError(f"{pubkey.hex()} is the last validator; add another "
                                         "before removing it", field="pubkey")
        if action != ACTION_REMOVE and power == existing.power:
            raise PowerUnchangedError(f"{pubkey.hex()} already has power {power}",
                                      field="power")
    if pending_check:
        pending = state.get_pending(view, pubkey)
        if pending is not None:
            raise ProposalPendingError(
                f"proposal {pending} already targets {pubkey.hex()}; approve it or let it "
                "lapse first", field="pubkey", proposal_id=pending)
    previous = 0 if existing is None else existing.power
    new_power = 0 if action == ACTION_REMOVE else power
    new_total = compute_total_power(current.values()) - previous + new_power
    if new_total > MAX_TOTAL_POWER:
        raise TotalPowerTooLargeError(
            f"the total power would be {new_total}, past CometBFT's maximum {MAX_TOTAL_POWER}",
            field="power", total=new_total, limit=MAX_TOTAL_POWER)
    moved = compute_power_moved(previous, new_power)
    if not is_change_within_limit(already_moved + moved, total_before):
        raise PowerChangeTooLargeError(
            f"the change moves {moved} power"
            + (f" (after {already_moved} moved earlier in this block)" if already_moved else "")
            + f"; one block may move less than 1/3 of the total {total_before}",
            field="pubkey" if action == ACTION_REMOVE else "power",
            moved=already_moved + moved, total=total_before)
    return moved


def apply_change(view: StateView, proposal: Proposal) -> tuple[int, Validator | None]:
    """Write the proposal's change to the set; return (previous power, the new record or None
    when removed). The caller has checked it with check_change."""
    existing = state.get_validator(view, proposal.pubkey)
    previous = 0 if existing is None else existing.power
    if proposal.action == ACTION_REMOVE:
        state.delete_validator(view, proposal.pubkey)
        return previous, None
    if existing is None:
        record = Validator(proposal.pubkey, proposal.power, proposal.organisation, proposal.name)
    else:
        record = replace(existing, power=proposal.power)
    state.set_validator(view, record)
    return previous, record


def _tally(view: StateView, ctx: TxContext, proposal: Proposal,
           validators: list[Validator]) -> None:
    approved = compute_approved_power(validators, proposal.approvals)
    total = compute_total_power(validators)
    if not has_supermajority(approved, total):
        return
    passed = replace(proposal, status=STATUS_PASSED, closed_height=ctx.height)
    state.set_proposal(view, passed)
    state.delete_open_index(view, passed)
    state.add_queued(view, passed.proposal_id)
    ctx.emit(events.validator_change_passed(passed.proposal_id, approved, total))


def _check_organisation(view: ReadView, organisation: str) -> None:
    address = identity.address_of(organisation)
    if address is None or not identity.exists(view, address):
        raise OrganisationNotFoundError(f"{organisation} has no identity",
                                        field="organisation")
    if not identity.has_role(view, address, identity.ROLE_VALIDATOR_ORG):
        raise OrganisationNotEligibleError(
            f"{organisation} does not hold the {identity.ROLE_VALIDATOR_ORG} role (or is "
            "suspended); only validator organisations operate validators",
            field="organisation")
