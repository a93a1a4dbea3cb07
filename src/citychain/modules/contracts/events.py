"""Contracts events: one constructor per past-tense event type. Accounts appear as DIDs.

Every event names its ``contract_id``; each is also written to the contract's audit trail.
"""

from __future__ import annotations

from citychain.core.events import Event

CONTRACT_CREATED = "contract_created"
CONTRACT_SIGNED = "contract_signed"
CONTRACT_FUNDED = "contract_funded"
CONTRACT_ACTIVATED = "contract_activated"
CONTRACT_CANCELLED = "contract_cancelled"
CONTRACT_COMPLETED = "contract_completed"
MILESTONE_ATTESTED = "milestone_attested"
MILESTONE_EVALUATED = "milestone_evaluated"
MILESTONE_RELEASED = "milestone_released"
MILESTONE_MISSED = "milestone_missed"
ESCROW_REFUNDED = "escrow_refunded"
PENALTY_PAID = "penalty_paid"
AMENDMENT_PROPOSED = "amendment_proposed"
AMENDMENT_APPROVED = "amendment_approved"
AMENDMENT_APPLIED = "amendment_applied"
AMENDMENT_EXPIRED = "amendment_expired"

EVENT_TYPES: frozenset[str] = frozenset({
    CONTRACT_CREATED, CONTRACT_SIGNED, CONTRACT_FUNDED, CONTRACT_ACTIVATED, CONTRACT_CANCELLED,
    CONTRACT_COMPLETED, MILESTONE_ATTESTED, MILESTONE_EVALUATED, MILESTONE_RELEASED,
    MILESTONE_MISSED, ESCROW_REFUNDED, PENALTY_PAID, AMENDMENT_PROPOSED, AMENDMENT_APPROVED,
    AMENDMENT_APPLIED, AMENDMENT_EXPIRED})


def contract_created(contract_id: int, creator: str, template: str, denom: str,
                     payer_total: int, bond: int, milestones: int, terms_sha256: str) -> Event:
    return Event.of(CONTRACT_CREATED, contract_id=contract_id, creator=creator,
                    template=template, denom=denom, payer_total=payer_total, bond=bond,
                    milestones=milestones, terms_sha256=terms_sha256)


def contract_signed(contract_id: int, party: str, role: str) -> Event:
    return Event.of(CONTRACT_SIGNED, contract_id=contract_id, party=party, role=role)


def contract_funded(contract_id: int, party: str, role: str, denom: str, amount: int,
                    funded: int, required: int) -> Event:
    return Event.of(CONTRACT_FUNDED, contract_id=contract_id, party=party, role=role,
                    denom=denom, amount=amount, funded=funded, required=required)


def contract_activated(contract_id: int, payer_total: int, bond: int) -> Event:
    return Event.of(CONTRACT_ACTIVATED, contract_id=contract_id, payer_total=payer_total,
                    bond=bond)


def contract_cancelled(contract_id: int, party: str, reason: str) -> Event:
    return Event.of(CONTRACT_CANCELLED, contract_id=contract_id, party=party, reason=reason)


def contract_completed(contract_id: int, paid: int, refunded: int, penalties: int,
                       bond_returned: int) -> Event:
    return Event.of(CONTRACT_COMPLETED, contract_id=contract_id, paid=paid, refunded=refunded,
                    penalties=penalties, bond_returned=bond_returned)


def milestone_attested(contract_id: int, milestone: int, period: int, party: str, role: str,
                       evidence: str) -> Event:
    return Event.of(MILESTONE_ATTESTED, contract_id=contract_id, milestone=milestone,
                    period=period, party=party, role=role, evidence=evidence)


def milestone_evaluated(contract_id: int, milestone: int, period: int, outcome: str,
                        detail: str, met_since: int) -> Event:
    return Event.of(MILESTONE_EVALUATED, contract_id=contract_id, milestone=milestone,
                    period=period, outcome=outcome, detail=detail, met_since=met_since)


def milestone_released(contract_id: int, milestone: int, period: int, payee: str, denom: str,
                       amount: int) -> Event:
    return Event.of(MILESTONE_RELEASED, contract_id=contract_id, milestone=milestone,
                    period=period, payee=payee, denom=denom, amount=amount)


def milestone_missed(contract_id: int, milestone: int, period: int, outcome: str,
                     on_miss: str) -> Event:
    return Event.of(MILESTONE_MISSED, contract_id=contract_id, milestone=milestone,
                    period=period, outcome=outcome, on_miss=on_miss)


def escrow_refunded(contract_id: int, recipient: str, denom: str, amount: int,
                    reason: str) -> Event:
    return Event.of(ESCROW_REFUNDED, contract_id=contract_id, recipient=recipient, denom=denom,
                    amount=amount, reason=reason)


def penalty_paid(contract_id: int, milestone: int, period: int, payer: str, denom: str,
                 amount: int) -> Event:
    return Event.of(PENALTY_PAID, contract_id=contract_id, milestone=milestone, period=period,
                    payer=payer, denom=denom, amount=amount)


def amendment_proposed(contract_id: int, number: int, milestone: int, proposer: str,
                       expires: int, reason: str) -> Event:
    return Event.of(AMENDMENT_PROPOSED, contract_id=contract_id, number=number,
                    milestone=milestone, proposer=proposer, expires=expires, reason=reason)


def amendment_approved(contract_id: int, number: int, party: str, role: str) -> Event:
    return Event.of(AMENDMENT_APPROVED, contract_id=contract_id, number=number, party=party,
                    role=role)


def amendment_applied(contract_id: int, number: int, milestone: int) -> Event:
    return Event.of(AMENDMENT_APPLIED, contract_id=contract_id, number=number,
                    milestone=milestone)


def amendment_expired(contract_id: int, number: int, missing: str) -> Event:
    return Event.of(AMENDMENT_EXPIRED, contract_id=contract_id, number=number, missing=missing)
