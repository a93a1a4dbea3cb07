"""End-block work: judge the contracts due at this height, release, refund and penalise.

Due contracts are taken oldest first, at most ``params.max_due_per_block`` per block (the rest
wait, still oldest first). Each milestone is settled in its own branch: a payment the bank
refuses (the payee's identity was suspended, say) is recorded as the outcome
``payment_failed`` and changes nothing else. Condition errors (a missing or stale feed, division
by zero, overflow...) are outcomes too; nothing here halts the chain except a bug.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import islice

from citychain.core.context import BlockContext
from citychain.core.errors import ChainError
from citychain.core.events import Event
from citychain.core.state import StateView
from citychain.modules.bank import api as bank
from citychain.modules.contracts import events, state
from citychain.modules.contracts.evaluation import FeedCache, MilestoneCheck, check_milestone
from citychain.modules.contracts.handlers import (
    ESCROW_OWNER,
    expire_amendment,
    refund_escrows,
)
from citychain.modules.contracts.trail import Trail
from citychain.modules.contracts.types import (
    AMENDMENT_OPEN,
    MAX_DETAIL,
    MILESTONE_CLOSED,
    MILESTONE_MISSED,
    MILESTONE_RELEASED,
    MILESTONE_SETTLED,
    NEW_MILESTONE,
    ON_MISS_PENALTY,
    OUTCOME_PAYMENT_FAILED,
    STATUS_ACTIVE,
    STATUS_COMPLETED,
    ContractState,
    MilestoneState,
    MilestoneTerms,
    Schedule,
    Terms,
    bond_escrow_id,
    escrow_id,
)
from citychain.modules.identity import api as identity


def process_end_block(view: StateView, block: BlockContext) -> list[Event]:
    """Judge every contract due at this height (bounded by params); return the events."""
    limit = state.get_params(view).max_due_per_block
    found: list[Event] = []
    feeds: FeedCache = {}  # contracts never write feeds: read each once per block
    for due_height, contract_id in list(islice(state.iter_due(view, block.height), limit)):
        state.delete_due(view, due_height, contract_id)
        contract = state.get_state(view, contract_id)
        if (contract is None or contract.status != STATUS_ACTIVE
                or state.get_schedule(view, contract_id).next_check_height != due_height):
            continue  # a stale entry: the contract was closed or rescheduled
        terms = state.get_terms(view, contract_id)
        if terms is not None:
            process_contract(view, block, contract, terms, found, feeds)
    return found


def process_contract(view: StateView, block: BlockContext, contract: ContractState,
                     terms: Terms, found: list[Event], feeds: FeedCache | None = None) -> None:
    """Judge every open milestone of an active contract, settle what is due, close the contract
    when nothing is left open, otherwise schedule its next check."""
    trail = Trail(view, block, contract.contract_id, contract.audit_count, found.append)
    _expire_amendment(view, block, trail, contract, terms)
    still_open = False
    for index, milestone in enumerate(terms.milestones):
        record = state.get_milestone(view, contract.contract_id, index) or NEW_MILESTONE
        if record.status in MILESTONE_CLOSED:
            continue
        updated = _settle_in_branch(view, block, trail, contract, terms, index, milestone,
                                    record, feeds)
        if updated != record:
            state.set_milestone(view, contract.contract_id, index, updated)
        still_open = still_open or updated.status not in MILESTONE_CLOSED
    before = contract
    next_height = block.height + terms.check_every_blocks
    if not still_open:
        contract = _complete(view, block, trail, contract, terms, found)
        if contract.status == STATUS_COMPLETED:
            next_height = 0
    if next_height:
        state.set_due(view, next_height, contract.contract_id)
    state.set_schedule(view, contract.contract_id,
                       Schedule(next_height, block.height, block.time_s))
    if contract != before or trail.count != before.audit_count:
        state.set_state(view, replace(contract, audit_count=trail.count))


def _settle_in_branch(view: StateView, block: BlockContext, trail: Trail,
                      contract: ContractState, terms: Terms, index: int,
                      milestone: MilestoneTerms, record: MilestoneState,
                      feeds: FeedCache | None) -> MilestoneState:
    branch = view.branch()
    pending: list[Event] = []
    try:
        updated = _settle(branch, block, contract, terms, index, milestone, record, pending,
                          feeds)
    except ChainError as error:
        detail = f"{error.codespace}/{error.code}: {error.message}"[:MAX_DETAIL]
        if record.outcome == OUTCOME_PAYMENT_FAILED and record.detail == detail:
            return record
        trail.add(events.milestone_evaluated(contract.contract_id, index,
                                             record.periods_settled, OUTCOME_PAYMENT_FAILED,
                                             detail, record.met_since))
        return replace(record, outcome=OUTCOME_PAYMENT_FAILED, detail=detail,
                       outcome_height=block.height)
    branch.write()
    for event in pending:
        if event.type in events.EVENT_TYPES:
            trail.add(event)
        else:  # the bank's own events go to the block, not to the contract's trail
            trail.pass_on(event)
    return updated


def _settle(view: StateView, block: BlockContext, contract: ContractState, terms: Terms,
            index: int, milestone: MilestoneTerms, record: MilestoneState,
            pending: list[Event], feeds: FeedCache | None) -> MilestoneState:
    now = block.time_s
    if milestone.recurring:
        if now < milestone.period_end(record.periods_settled):
            return record
        check = check_milestone(view, contract, index, milestone, record, block.height, now,
                                feeds)
        if check.met:
            record = _release(view, contract, terms, index, milestone, record, check, pending)
        else:
            record = _miss(view, contract, terms, index, milestone, record, check, pending)
        if record.periods_settled == milestone.periods:
            record = replace(record, status=MILESTONE_SETTLED)
        return record
    if now > milestone.deadline:
        check = MilestoneCheck(0, record.outcome or "unmet",
                               f"the deadline {milestone.deadline} passed", 0, (), ())
        return replace(_miss(view, contract, terms, index, milestone, record, check, pending),
                       status=MILESTONE_MISSED)
    check = check_milestone(view, contract, index, milestone, record, block.height, now,
                                feeds)
    if not check.met:
        if record.outcome != check.outcome or record.detail != check.detail or record.met_since:
            pending.append(events.milestone_evaluated(contract.contract_id, index, 0,
                                                      check.outcome, check.detail, 0))
            return replace(record, met_since=0, outcome=check.outcome, detail=check.detail,
                           outcome_height=block.height)
        return record
    met_since = record.met_since or now
    if not record.met_since:
        pending.append(events.milestone_evaluated(contract.contract_id, index, 0, check.outcome,
                                                  f"holding; {milestone.hold} s needed",
                                                  met_since))
        record = replace(record, met_since=met_since, outcome=check.outcome,
                         detail=check.detail, outcome_height=block.height)
    if now - met_since < milestone.hold:
        return record
    return replace(_release(view, contract, terms, index, milestone, record, check, pending),
                   status=MILESTONE_RELEASED)


def _release(view: StateView, contract: ContractState, terms: Terms, index: int,
             milestone: MilestoneTerms, record: MilestoneState, check: MilestoneCheck,
             pending: list[Event]) -> MilestoneState:
    """Pay this period's payout to the payee and return the rest of its amount to the payer."""
    escrow = escrow_id(contract.contract_id)
    if check.payout:
        pending.append(bank.pay_from_escrow(view, ESCROW_OWNER, escrow, terms.payee,
                                            terms.denom, check.payout))
    pending.append(events.milestone_released(contract.contract_id, index, check.period,
                                             identity.did_of(terms.payee), terms.denom,
                                             check.payout))
    rest = milestone.amount - check.payout
    if rest:
        pending.append(bank.pay_from_escrow(view, ESCROW_OWNER, escrow, terms.payer,
                                            terms.denom, rest))
        pending.append(events.escrow_refunded(contract.contract_id,
                                              identity.did_of(terms.payer), terms.denom, rest,
                                              "unused"))
    return replace(record, periods_settled=record.periods_settled + 1,
                   paid=record.paid + check.payout, refunded=record.refunded + rest,
                   met_since=0, outcome=check.outcome, detail=check.detail)


def _miss(view: StateView, contract: ContractState, terms: Terms, index: int,
          milestone: MilestoneTerms, record: MilestoneState, check: MilestoneCheck,
          pending: list[Event]) -> MilestoneState:
    """Return this period's amount to the payer; on ``penalty``, also pay the penalty to the
    payer out of the payee's bond (as much as is left of it)."""
    pending.append(events.milestone_missed(contract.contract_id, index, check.period,
                                           check.outcome, milestone.on_miss))
    pending.append(bank.pay_from_escrow(view, ESCROW_OWNER, escrow_id(contract.contract_id),
                                        terms.payer, terms.denom, milestone.amount))
    pending.append(events.escrow_refunded(contract.contract_id, identity.did_of(terms.payer),
                                          terms.denom, milestone.amount, "missed"))
    penalty = 0
    if milestone.on_miss == ON_MISS_PENALTY:
        bond = bond_escrow_id(contract.contract_id)
        penalty = min(milestone.penalty,
                      bank.get_escrow_balance(view, ESCROW_OWNER, bond, terms.denom))
        if penalty:
            pending.append(bank.pay_from_escrow(view, ESCROW_OWNER, bond, terms.payer,
                                                terms.denom, penalty))
            pending.append(events.penalty_paid(contract.contract_id, index, check.period,
                                               identity.did_of(terms.payer), terms.denom,
                                               penalty))
    return replace(record, periods_settled=record.periods_settled + 1,
                   refunded=record.refunded + milestone.amount,
                   penalties=record.penalties + penalty, met_since=0, outcome=check.outcome,
                   detail=check.detail)


def _complete(view: StateView, block: BlockContext, trail: Trail, contract: ContractState,
              terms: Terms, found: list[Event]) -> ContractState:
    """Close a contract whose milestones are all settled: return what is left in escrow."""
    records = [state.get_milestone(view, contract.contract_id, index) or NEW_MILESTONE
               for index in range(len(terms.milestones))]
    branch = view.branch()
    pending: list[Event] = []
    # The refunds' audit entries go into the same branch as the payments, so a refusal leaves
    # neither behind.
    branch_trail = Trail(branch, block, contract.contract_id, trail.count, pending.append)
    try:
        refund, bond = refund_escrows(branch, branch_trail, pending.append,
                                      contract.contract_id, terms, "completed")
    except ChainError:
        # A party cannot be paid now (suspended): the contract stays active and is judged
        # again at its next check.
        return contract
    branch.write()
    trail.count = branch_trail.count
    found.extend(pending)
    trail.add(events.contract_completed(
        contract.contract_id, sum(record.paid for record in records),
        sum(record.refunded for record in records) + refund,
        sum(record.penalties for record in records), bond))
    return replace(contract, status=STATUS_COMPLETED, closed_height=block.height)


def _expire_amendment(view: StateView, block: BlockContext, trail: Trail,
                      contract: ContractState, terms: Terms) -> None:
    if not contract.amendments:  # numbered from 1: none was ever proposed, skip the read
        return
    amendment = state.get_amendment(view, contract.contract_id, contract.amendments)
    if (amendment is not None and amendment.status == AMENDMENT_OPEN
            and amendment.expires <= block.time_s):
        expire_amendment(view, trail, contract.contract_id, terms, amendment)
