"""Contracts message handlers: propose, sign, fund, cancel, attest, amend.

Every check comes before the first write. Money moves only through the bank facade's escrow:
the payer's deposits sit in escrow ``c<id>``, the payee's bond in ``c<id>.bond``. Every event
about a contract is also appended to its audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from citychain.core.context import TxContext
from citychain.core.events import Event
from citychain.core.hashing import sha256
from citychain.core.state import ReadView, StateView
from citychain.modules.bank import api as bank
from citychain.modules.contracts import events, state
from citychain.modules.contracts.errors import (
    AlreadyAttestedError,
    AlreadySignedError,
    AmendmentInvalidError,
    AmendmentNotFoundError,
    AmendmentOpenError,
    ContractLimitExceededError,
    ContractNotFoundError,
    ContractStatusError,
    DeadlineInvalidError,
    DenomNotFoundError,
    FundingExceededError,
    MilestoneNotFoundError,
    MilestoneSettledError,
    NotPartyError,
    PartyInvalidError,
)
from citychain.modules.contracts.messages import (
    MAX_MILESTONE_JSON,
    MsgApproveAmendment,
    MsgAttestMilestone,
    MsgCancelContract,
    MsgCreateContract,
    MsgFundContract,
    MsgProposeAmendment,
    MsgSignContract,
)
from citychain.modules.contracts.params import Params
from citychain.modules.contracts.terms import load_json, parse_milestone, parse_terms
from citychain.modules.contracts.trail import Trail
from citychain.modules.contracts.types import (
    AMENDMENT_APPLIED,
    AMENDMENT_EXPIRED,
    AMENDMENT_OPEN,
    MAX_AMOUNT,
    MILESTONE_CLOSED,
    NEW_MILESTONE,
    ON_MISS_PENALTY,
    ROLE_PAYEE,
    ROLE_PAYER,
    ROLES,
    STATUS_ACTIVE,
    STATUS_CANCELLED,
    STATUS_PROPOSED,
    Amendment,
    Attestation,
    ContractState,
    MilestoneState,
    MilestoneTerms,
    Terms,
    bond_escrow_id,
    escrow_id,
)
from citychain.modules.identity import api as identity

ESCROW_OWNER = "contracts"

_Emit = Callable[[Event], None]


def handle_create_contract(view: StateView, ctx: TxContext, msg: MsgCreateContract) -> None:
    """Propose a contract; the sender, one of its parties, has signed it by sending.

    Raises:
        InvalidMessageError, ConditionInvalidError (against the params' limits),
        ContractLimitExceededError, NotPartyError, PartyInvalidError, DenomNotFoundError,
        DeadlineInvalidError.
    """
    params = state.get_params(view)
    terms = parse_terms(msg.terms, params.condition_limits())
    _check_limits(terms.milestones, params, "terms.milestones")
    roles = terms.roles_of(ctx.sender)
    if not roles:
        raise NotPartyError("the sender is not one of the contract's parties", field="sender")
    for index, party in enumerate(terms.parties):
        if not identity.is_active(view, party.address):
            raise PartyInvalidError(f"party {party.did} ({party.role}) has no active identity",
                                    field=f"terms.parties[{index}].did")
    if not bank.denom_exists(view, terms.denom):
        raise DenomNotFoundError(f"no denom {terms.denom}", field="terms.denom")
    for index, milestone in enumerate(terms.milestones):
        if milestone.deadline <= ctx.block.time_s:
            raise DeadlineInvalidError(
                f"milestone {milestone.name}'s deadline {milestone.deadline} is not after the "
                f"block time {ctx.block.time_s}", field=f"terms.milestones[{index}].deadline")
    contract_id = state.get_next_id(view)
    state.set_next_id(view, contract_id + 1)
    state.set_terms(view, contract_id, terms)
    for index in range(len(terms.milestones)):
        state.set_milestone(view, contract_id, index, NEW_MILESTONE)
    for party in terms.parties:
        state.set_party_index(view, party.address, contract_id)
    contract = ContractState(contract_id, STATUS_PROPOSED, ctx.sender, ctx.height,
                             ctx.block.time_s, roles, 0, 0, 0, 0, 0)
    trail = Trail(view, ctx.block, contract_id, 0, ctx.emit)
    trail.add(events.contract_created(contract_id, identity.did_of(ctx.sender), terms.template,
                                      terms.denom, terms.payer_total, terms.bond,
                                      len(terms.milestones), sha256(terms.to_bytes()).hex()))
    for role in roles:
        trail.add(events.contract_signed(contract_id, identity.did_of(ctx.sender), role))
    state.set_state(view, replace(contract, audit_count=trail.count))


def handle_sign_contract(view: StateView, ctx: TxContext, msg: MsgSignContract) -> None:
    """Sign a proposed contract; it starts when every party signed and escrow is funded.

    Raises:
        ContractNotFoundError, ContractStatusError, NotPartyError, AlreadySignedError.
    """
    contract, terms = _load(view, msg.contract_id)
    _check_status(contract, STATUS_PROPOSED, "signed")
    roles = _party_roles(terms, ctx.sender)
    if all(role in contract.signed for role in roles):
        raise AlreadySignedError(f"{identity.did_of(ctx.sender)} has already signed contract "
                                 f"{contract.contract_id}", field="sender")
    trail = Trail(view, ctx.block, contract.contract_id, contract.audit_count, ctx.emit)
    for role in roles:
        if role not in contract.signed:
            trail.add(events.contract_signed(contract.contract_id, identity.did_of(ctx.sender),
                                             role))
    signed = tuple(role for role in ROLES if role in contract.signed or role in roles)
    contract = _maybe_activate(view, ctx, trail, replace(contract, signed=signed), terms)
    state.set_state(view, replace(contract, audit_count=trail.count))


def handle_fund_contract(view: StateView, ctx: TxContext, msg: MsgFundContract) -> None:
    """Deposit into a proposed contract's escrow (payer: the milestones' total; payee: the bond).

    Raises:
        ContractNotFoundError, ContractStatusError, NotPartyError, FundingExceededError, and the
        bank's AmountInvalidError, TransfersDisabledError, InsufficientFundsError.
    """
    contract, terms = _load(view, msg.contract_id)
    _check_status(contract, STATUS_PROPOSED, "funded")
    roles = _party_roles(terms, ctx.sender)
    if ROLE_PAYER in roles:
        role, escrow, required = ROLE_PAYER, escrow_id(contract.contract_id), terms.payer_total
    elif ROLE_PAYEE in roles:
        role, escrow, required = ROLE_PAYEE, bond_escrow_id(contract.contract_id), terms.bond
    else:
        raise NotPartyError("only the payer (escrow) or the payee (bond) funds a contract",
                            field="sender", required=f"{ROLE_PAYER}|{ROLE_PAYEE}")
    funded = bank.get_escrow_balance(view, ESCROW_OWNER, escrow, terms.denom)
    if msg.amount > required - funded:
        raise FundingExceededError(
            f"contract {contract.contract_id} needs {required - funded} more from the {role}, "
            f"not {msg.amount}", field="amount", required=required - funded,
            available=msg.amount)
    ctx.emit(bank.deposit_to_escrow(view, ctx.sender, ESCROW_OWNER, escrow, terms.denom,
                                    msg.amount))
    trail = Trail(view, ctx.block, contract.contract_id, contract.audit_count, ctx.emit)
    trail.add(events.contract_funded(contract.contract_id, identity.did_of(ctx.sender), role,
                                     terms.denom, msg.amount, funded + msg.amount, required))
    contract = _maybe_activate(view, ctx, trail, contract, terms)
    state.set_state(view, replace(contract, audit_count=trail.count))


def handle_cancel_contract(view: StateView, ctx: TxContext, msg: MsgCancelContract) -> None:
    """Withdraw a contract that has not started: every deposit goes back to its party.

    Raises:
        ContractNotFoundError, ContractStatusError, NotPartyError, and the bank's payment errors
        (a party whose identity is suspended cannot be refunded until it is restored).
    """
    contract, terms = _load(view, msg.contract_id)
    _check_status(contract, STATUS_PROPOSED, "cancelled")
    _party_roles(terms, ctx.sender)
    trail = Trail(view, ctx.block, contract.contract_id, contract.audit_count, ctx.emit)
    trail.add(events.contract_cancelled(contract.contract_id, identity.did_of(ctx.sender),
                                        msg.reason))
    refund_escrows(view, trail, ctx.emit, contract.contract_id, terms, "cancelled")
    state.set_state(view, replace(contract, status=STATUS_CANCELLED, closed_height=ctx.height,
                                  audit_count=trail.count))


def handle_attest_milestone(view: StateView, ctx: TxContext, msg: MsgAttestMilestone) -> None:
    """Record the sender's sign-off of a milestone's current period, in its role, and have
    end-block judge the contract in this block.

    Raises:
        ContractNotFoundError, ContractStatusError, NotPartyError, MilestoneNotFoundError,
        MilestoneSettledError, AlreadyAttestedError.
    """
    contract, terms = _load(view, msg.contract_id)
    _check_status(contract, STATUS_ACTIVE, "attested")
    role = _party_roles(terms, ctx.sender)[0]
    record = _open_milestone(view, contract.contract_id, terms, msg.milestone)
    period = record.periods_settled
    if state.get_attestation(view, contract.contract_id, msg.milestone, period, role) is not None:
        raise AlreadyAttestedError(f"the {role} has already attested period {period} of "
                                   f"milestone {msg.milestone}", field="milestone")
    state.set_attestation(view, contract.contract_id, msg.milestone, period,
                          Attestation(role, ctx.sender, ctx.height, ctx.block.time_s,
                                      msg.evidence))
    trail = Trail(view, ctx.block, contract.contract_id, contract.audit_count, ctx.emit)
    trail.add(events.milestone_attested(contract.contract_id, msg.milestone, period,
                                        identity.did_of(ctx.sender), role, msg.evidence))
    schedule(view, contract.contract_id, ctx.height)
    state.set_state(view, replace(contract, audit_count=trail.count))


def handle_propose_amendment(view: StateView, ctx: TxContext, msg: MsgProposeAmendment) -> None:
    """Propose new terms for one open milestone; the proposer's approval is counted.

    Raises:
        ContractNotFoundError, ContractStatusError, NotPartyError, MilestoneNotFoundError,
        MilestoneSettledError, InvalidMessageError, ConditionInvalidError,
        ContractLimitExceededError, DeadlineInvalidError, AmendmentOpenError,
        AmendmentInvalidError.
    """
    contract, terms = _load(view, msg.contract_id)
    if contract.status not in (STATUS_PROPOSED, STATUS_ACTIVE):
        raise ContractStatusError(f"contract {contract.contract_id} is {contract.status}; only "
                                  "a proposed or active contract can be amended",
                                  field="contract_id", status=contract.status)
    roles = _party_roles(terms, ctx.sender)
    record = _open_milestone(view, contract.contract_id, terms, msg.milestone)
    params = state.get_params(view)
    new = parse_milestone(load_json(msg.terms, "terms", MAX_MILESTONE_JSON),
                          params.condition_limits(), "terms")
    _check_limits((new,), params, "terms")
    now = ctx.block.time_s
    if msg.expires <= now:
        raise DeadlineInvalidError(f"expires {msg.expires} is not after the block time {now}",
                                   field="expires")
    if new.deadline <= now and record.periods_settled == 0:
        raise DeadlineInvalidError(f"the new deadline {new.deadline} is not after the block "
                                   f"time {now}", field="terms.deadline")
    _check_amendment(view, contract, terms, msg.milestone, record, new)
    previous = state.get_amendment(view, contract.contract_id, contract.amendments)
    trail = Trail(view, ctx.block, contract.contract_id, contract.audit_count, ctx.emit)
    if previous is not None and previous.status == AMENDMENT_OPEN:
        if previous.expires > now:
            raise AmendmentOpenError(f"amendment {previous.number} is open until "
                                     f"{previous.expires}", field="contract_id",
                                     number=previous.number)
        expire_amendment(view, trail, contract.contract_id, terms, previous)
    number = contract.amendments + 1
    approvals = tuple(role for role in ROLES if role in roles)
    state.set_amendment(view, contract.contract_id,
                        Amendment(number, msg.milestone, new, ctx.sender, msg.reason,
                                  msg.expires, approvals, AMENDMENT_OPEN, ctx.height))
    trail.add(events.amendment_proposed(contract.contract_id, number, msg.milestone,
                                        identity.did_of(ctx.sender), msg.expires, msg.reason))
    for role in approvals:
        trail.add(events.amendment_approved(contract.contract_id, number,
                                            identity.did_of(ctx.sender), role))
    state.set_state(view, replace(contract, amendments=number, audit_count=trail.count))


def handle_approve_amendment(view: StateView, ctx: TxContext, msg: MsgApproveAmendment) -> None:
    """Approve an open amendment; the last approval applies it (and returns any escrow the
    new terms no longer need to the payer).

    Raises:
        ContractNotFoundError, NotPartyError, AmendmentNotFoundError (none, closed or expired),
        AlreadySignedError, MilestoneSettledError, AmendmentInvalidError.
    """
    contract, terms = _load(view, msg.contract_id)
    roles = _party_roles(terms, ctx.sender)
    amendment = state.get_amendment(view, contract.contract_id, msg.number)
    now = ctx.block.time_s
    if amendment is None or amendment.status != AMENDMENT_OPEN or amendment.expires <= now:
        shown = ("no such amendment" if amendment is None
                 else "it expired" if amendment.status == AMENDMENT_OPEN
                 else f"it is {amendment.status}")
        raise AmendmentNotFoundError(f"amendment {msg.number} of contract "
                                     f"{contract.contract_id} cannot be approved: {shown}",
                                     field="number")
    if contract.status not in (STATUS_PROPOSED, STATUS_ACTIVE):
        raise ContractStatusError(f"contract {contract.contract_id} is {contract.status}",
                                  field="contract_id", status=contract.status)
    if all(role in amendment.approvals for role in roles):
        raise AlreadySignedError(f"{identity.did_of(ctx.sender)} has already approved "
                                 f"amendment {msg.number}", field="sender")
    approvals = tuple(role for role in ROLES if role in amendment.approvals or role in roles)
    complete = len(approvals) == len(terms.parties)
    if complete:
        record = _open_milestone(view, contract.contract_id, terms, amendment.milestone)
        _check_amendment(view, contract, terms, amendment.milestone, record, amendment.terms)
    trail = Trail(view, ctx.block, contract.contract_id, contract.audit_count, ctx.emit)
    for role in roles:
        if role not in amendment.approvals:
            trail.add(events.amendment_approved(contract.contract_id, msg.number,
                                                identity.did_of(ctx.sender), role))
    status = AMENDMENT_OPEN
    if complete:
        status = AMENDMENT_APPLIED
        milestones = list(terms.milestones)
        milestones[amendment.milestone] = amendment.terms
        terms = replace(terms, milestones=tuple(milestones))
        state.set_terms(view, contract.contract_id, terms)
        record = _open_milestone(view, contract.contract_id, terms, amendment.milestone)
        state.set_milestone(view, contract.contract_id, amendment.milestone,
                            replace(record, met_since=0, outcome="", detail=""))
        trail.add(events.amendment_applied(contract.contract_id, msg.number,
                                           amendment.milestone))
        if contract.status == STATUS_ACTIVE:
            _refund_excess(view, trail, ctx.emit, contract.contract_id, terms)
            schedule(view, contract.contract_id, ctx.height)
        else:
            contract = _maybe_activate(view, ctx, trail, contract, terms)
    state.set_amendment(view, contract.contract_id,
                        replace(amendment, approvals=approvals, status=status))
    state.set_state(view, replace(contract, audit_count=trail.count))


# ------------------------------------------------------------------------ shared with blocks

def schedule(view: StateView, contract_id: int, height: int) -> None:
    """Move the contract's next end-block check to ``height``."""
    current = state.get_schedule(view, contract_id)
    if current.next_check_height:
        state.delete_due(view, current.next_check_height, contract_id)
    state.set_due(view, height, contract_id)
    state.set_schedule(view, contract_id, replace(current, next_check_height=height))


def remaining_liability(view: ReadView, contract_id: int, terms: Terms) -> int:
    """What the open milestones can still pay out: the payer's escrow must cover it."""
    total = 0
    for index, milestone in enumerate(terms.milestones):
        record = state.get_milestone(view, contract_id, index) or NEW_MILESTONE
        if record.status not in MILESTONE_CLOSED:
            total += milestone.amount * (milestone.periods - record.periods_settled)
    return total


def refund_escrows(view: StateView, trail: Trail, emit: _Emit, contract_id: int, terms: Terms,
                   reason: str) -> tuple[int, int]:
    """Return everything left in the contract's escrows: the payer's deposits to the payer, the
    bond to the payee. Returns (payer refund, bond returned).

    Raises:
        The bank's RecipientNotFoundError / RecipientSuspendedError.
    """
    amounts = []
    for escrow, recipient in ((escrow_id(contract_id), terms.payer),
                              (bond_escrow_id(contract_id), terms.payee)):
        amount = bank.get_escrow_balance(view, ESCROW_OWNER, escrow, terms.denom)
        if amount:
            emit(bank.pay_from_escrow(view, ESCROW_OWNER, escrow, recipient, terms.denom,
                                      amount))
            trail.add(events.escrow_refunded(contract_id, identity.did_of(recipient),
                                             terms.denom, amount, reason))
        amounts.append(amount)
    return amounts[0], amounts[1]


def expire_amendment(view: StateView, trail: Trail, contract_id: int, terms: Terms,
                     amendment: Amendment) -> None:
    """Close an open amendment whose expiry passed, naming the roles that never approved."""
    missing = ",".join(party.role for party in terms.parties
                       if party.role not in amendment.approvals)
    state.set_amendment(view, contract_id, replace(amendment, status=AMENDMENT_EXPIRED))
    trail.add(events.amendment_expired(contract_id, amendment.number, missing))


# ------------------------------------------------------------------------------------ helpers

def _load(view: ReadView, contract_id: int) -> tuple[ContractState, Terms]:
    contract = state.get_state(view, contract_id)
    terms = state.get_terms(view, contract_id)
    if contract is None or terms is None:
        raise ContractNotFoundError(f"no contract {contract_id}", field="contract_id")
    return contract, terms


def _check_status(contract: ContractState, status: str, action: str) -> None:
    if contract.status != status:
        raise ContractStatusError(f"contract {contract.contract_id} is {contract.status}; only a "
                                  f"{status} contract can be {action}", field="contract_id",
                                  status=contract.status)


def _party_roles(terms: Terms, sender: str) -> tuple[str, ...]:
    roles = terms.roles_of(sender)
    if not roles:
        raise NotPartyError(f"{identity.did_of(sender)} is not a party of this contract",
                            field="sender")
    return roles


def _open_milestone(view: ReadView, contract_id: int, terms: Terms,
                    index: int) -> MilestoneState:
    if index >= len(terms.milestones):
        raise MilestoneNotFoundError(f"contract {contract_id} has {len(terms.milestones)} "
                                     f"milestones; no index {index}", field="milestone")
    record = state.get_milestone(view, contract_id, index) or NEW_MILESTONE
    if record.status in MILESTONE_CLOSED:
        raise MilestoneSettledError(f"milestone {index} is {record.status}", field="milestone",
                                    status=record.status)
    return record


def _check_limits(milestones: tuple[MilestoneTerms, ...], params: Params, field: str) -> None:
    if len(milestones) > params.max_milestones:
        raise ContractLimitExceededError(f"{len(milestones)} milestones; at most "
                                         f"{params.max_milestones}", field=field,
                                         limit=params.max_milestones)
    for index, milestone in enumerate(milestones):
        if milestone.periods > params.max_periods:
            where = (f"{field}[{index}].periods" if field.endswith("milestones")
                     else f"{field}.periods")
            raise ContractLimitExceededError(f"{milestone.periods} periods; at most "
                                             f"{params.max_periods}", field=where,
                                             limit=params.max_periods)


def _check_amendment(view: ReadView, contract: ContractState, terms: Terms, index: int,
                     record: MilestoneState, new: MilestoneTerms) -> None:
    if new.on_miss == ON_MISS_PENALTY and terms.bond == 0:
        raise AmendmentInvalidError("on_miss penalty needs a bond, and these terms ask none",
                                    field="terms.on_miss")
    if record.periods_settled and (new.period != terms.milestones[index].period
                                   or new.deadline != terms.milestones[index].deadline):
        raise AmendmentInvalidError("periods of this milestone are already settled; its "
                                    "deadline and period cannot change", field="terms.deadline")
    if record.periods_settled >= new.periods:
        raise AmendmentInvalidError(f"{record.periods_settled} periods are already settled; "
                                    f"periods must be more", field="terms.periods")
    # The amended terms must still be terms parse_terms accepts (genesis re-parses them).
    if any(other.name == new.name for number, other in enumerate(terms.milestones)
           if number != index):
        raise AmendmentInvalidError(f"another milestone is already named {new.name!r}",
                                    field="terms.name")
    milestones = list(terms.milestones)
    milestones[index] = new
    total = sum(milestone.total for milestone in milestones)
    if total > MAX_AMOUNT:
        raise AmendmentInvalidError(f"the amended milestones pay {total} in total; at most "
                                    f"{MAX_AMOUNT}", field="terms.amount")
    if contract.status != STATUS_ACTIVE:
        return
    needed = remaining_liability(view, contract.contract_id, replace(terms,
                                                                     milestones=tuple(milestones)))
    held = bank.get_escrow_balance(view, ESCROW_OWNER, escrow_id(contract.contract_id),
                                   terms.denom)
    if needed > held:
        raise AmendmentInvalidError(f"the amended milestones can pay {needed}; the escrow holds "
                                    f"{held}", field="terms.amount", required=needed,
                                    available=held)


def _refund_excess(view: StateView, trail: Trail, emit: _Emit, contract_id: int,
                   terms: Terms) -> None:
    held = bank.get_escrow_balance(view, ESCROW_OWNER, escrow_id(contract_id), terms.denom)
    excess = held - remaining_liability(view, contract_id, terms)
    if excess > 0:
        emit(bank.pay_from_escrow(view, ESCROW_OWNER, escrow_id(contract_id), terms.payer,
                                  terms.denom, excess))
        trail.add(events.escrow_refunded(contract_id, identity.did_of(terms.payer), terms.denom,
                                         excess, "amended"))


def _maybe_activate(view: StateView, ctx: TxContext, trail: Trail, contract: ContractState,
                    terms: Terms) -> ContractState:
    if len(contract.signed) != len(terms.parties):
        return contract
    funded = bank.get_escrow_balance(view, ESCROW_OWNER, escrow_id(contract.contract_id),
                                     terms.denom)
    bonded = bank.get_escrow_balance(view, ESCROW_OWNER, bond_escrow_id(contract.contract_id),
                                     terms.denom)
    if funded < terms.payer_total or bonded < terms.bond:
        return contract
    if funded > terms.payer_total:  # an amendment lowered the total before the start
        _refund_excess(view, trail, ctx.emit, contract.contract_id, terms)
    trail.add(events.contract_activated(contract.contract_id, terms.payer_total, terms.bond))
    contract = replace(contract, status=STATUS_ACTIVE, activated_height=ctx.height,
                       activated_time=ctx.block.time_s)
    schedule(view, contract.contract_id, ctx.height)
    return contract
