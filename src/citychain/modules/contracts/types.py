"""Contracts state records (terms, contract state, milestone state, attestation, amendment, audit
entry) and fixed vocabularies.

Every number is an integer: amounts in the denom's minor unit, times in UNIX seconds of block
time, durations in seconds. Parties are stored by address and shown as DIDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core import codec
from citychain.core.crypto import did_from_address

ROLE_PAYER = "payer"
ROLE_PAYEE = "payee"
ROLE_INSPECTOR = "inspector"
ROLE_ARBITER = "arbiter"
# Fixed order: parties are stored and shown in this order.
ROLES: tuple[str, ...] = (ROLE_PAYER, ROLE_PAYEE, ROLE_INSPECTOR, ROLE_ARBITER)
REQUIRED_ROLES: tuple[str, ...] = (ROLE_PAYER, ROLE_PAYEE)

STATUS_PROPOSED = "proposed"
STATUS_ACTIVE = "active"
STATUS_COMPLETED = "completed"
STATUS_CANCELLED = "cancelled"

MILESTONE_PENDING = "pending"
MILESTONE_RELEASED = "released"
MILESTONE_MISSED = "missed"
MILESTONE_SETTLED = "settled"  # a recurring milestone whose every period is settled
MILESTONE_CLOSED = (MILESTONE_RELEASED, MILESTONE_MISSED, MILESTONE_SETTLED)

ON_MISS_REFUND = "refund"
ON_MISS_PENALTY = "penalty"
ON_MISS: tuple[str, ...] = (ON_MISS_REFUND, ON_MISS_PENALTY)

AMENDMENT_OPEN = "open"
AMENDMENT_APPLIED = "applied"
AMENDMENT_EXPIRED = "expired"

# Evaluation outcomes besides the condition engine's error codes.
OUTCOME_MET = "met"
OUTCOME_UNMET = "unmet"
OUTCOME_FEED_MISSING = "feed_missing"
OUTCOME_FEED_STALE = "feed_stale"
OUTCOME_FEED_UNANCHORED = "feed_unanchored"
OUTCOME_PAYMENT_FAILED = "payment_failed"

MAX_TITLE = 128
MAX_NAME = 64
MAX_REASON = 256
MAX_TEMPLATE = 64
MAX_AMOUNT = 2**63 - 1
MAX_TIME = 2**40  # UNIX seconds; year 36812, far beyond any contract
MAX_DETAIL = 200


def escrow_id(contract_id: int) -> str:
    """The bank escrow holding the payer's deposits of a contract."""
    return f"c{contract_id}"


def bond_escrow_id(contract_id: int) -> str:
    """The bank escrow holding the payee's performance bond of a contract."""
    return f"c{contract_id}.bond"


@dataclass(frozen=True, slots=True)
class Party:
    """One party: a role and the address of the identity that acts in it."""

    role: str
    address: str

    @property
    def did(self) -> str:
        return did_from_address(self.address)

    def to_value(self) -> dict[str, Any]:
        return {"role": self.role, "did": self.did}


@dataclass(frozen=True, slots=True)
class MilestoneTerms:
    """What one milestone pays and when.

    A one-off milestone (``periods == 1``, ``period == 0``) releases ``amount`` once its
    condition has held for ``hold`` seconds, if that happens by ``deadline``; otherwise it is
    missed. A recurring milestone (``period > 0``) settles period k (0-based) once block time
    reaches ``deadline + k * period``: paid if the condition holds then, missed if not.
    ``amount_expr`` (optional) computes the payout, clamped to 0..``amount``; the rest goes back
    to the payer. ``feed_ids`` are the feeds the condition and the amount expression read.
    """

    name: str
    condition: str
    amount: int
    amount_expr: str
    deadline: int
    hold: int
    period: int
    periods: int
    on_miss: str
    penalty: int
    max_feed_age: int
    feed_ids: tuple[str, ...]

    @property
    def total(self) -> int:
        """The most the milestone can pay over all its periods."""
        return self.amount * self.periods

    @property
    def recurring(self) -> bool:
        return self.period > 0

    def period_end(self, index: int) -> int:
        """When period ``index`` ends (the deadline for one-off milestones)."""
        return self.deadline + index * self.period

    def to_value(self) -> dict[str, Any]:
        return {"name": self.name, "condition": self.condition, "amount": self.amount,
                "amount_expr": self.amount_expr, "deadline": self.deadline, "hold": self.hold,
                "period": self.period, "periods": self.periods, "on_miss": self.on_miss,
                "penalty": self.penalty, "max_feed_age": self.max_feed_age,
                "feed_ids": list(self.feed_ids)}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> MilestoneTerms:
        return cls(value["name"], value["condition"], value["amount"], value["amount_expr"],
                   value["deadline"], value["hold"], value["period"], value["periods"],
                   value["on_miss"], value["penalty"], value["max_feed_age"],
                   tuple(value["feed_ids"]))


@dataclass(frozen=True, slots=True)
class Terms:
    """Everything the parties sign: who, in what denom, and the milestones."""

    title: str
    template: str
    denom: str
    parties: tuple[Party, ...]
    terms_hash: str
    check_every_blocks: int
    bond: int
    milestones: tuple[MilestoneTerms, ...]

    def party(self, role: str) -> Party | None:
        for party in self.parties:
            if party.role == role:
                return party
        return None

    @property
    def payer(self) -> str:
        party = self.party(ROLE_PAYER)
        if party is None:  # parse_terms guarantees both; a stored record without one is corrupt
            raise ValueError("terms without a payer")
        return party.address

    @property
    def payee(self) -> str:
        party = self.party(ROLE_PAYEE)
        if party is None:
            raise ValueError("terms without a payee")
        return party.address

    def roles_of(self, address: str) -> tuple[str, ...]:
        return tuple(party.role for party in self.parties if party.address == address)

    @property
    def payer_total(self) -> int:
        """What the payer must deposit before the contract starts."""
        return sum(milestone.total for milestone in self.milestones)

    def to_value(self) -> dict[str, Any]:
        return {"title": self.title, "template": self.template, "denom": self.denom,
                "parties": [party.to_value() for party in self.parties],
                "terms_hash": self.terms_hash, "check_every_blocks": self.check_every_blocks,
                "bond": self.bond,
                "milestones": [milestone.to_value() for milestone in self.milestones]}

    def to_bytes(self) -> bytes:
        return codec.encode({**self.to_value(), "parties": [
            {"role": party.role, "address": party.address} for party in self.parties]})

    @classmethod
    def from_bytes(cls, data: bytes) -> Terms:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(value["title"], value["template"], value["denom"],
                   tuple(Party(item["role"], item["address"]) for item in value["parties"]),
                   value["terms_hash"], value["check_every_blocks"], value["bond"],
                   tuple(MilestoneTerms.from_value(item) for item in value["milestones"]))


@dataclass(frozen=True, slots=True)
class ContractState:
    """A contract's changing state. ``signed`` lists the roles that signed (in ROLES order);
    ``amendments`` counts amendments ever proposed (the newest is number ``amendments``);
    ``audit_count`` counts its audit entries. When end-block judges it is a :class:`Schedule`,
    stored apart so that a check that changes nothing else does not rewrite this record."""

    contract_id: int
    status: str
    creator: str
    created_height: int
    created_time: int
    signed: tuple[str, ...]
    activated_height: int
    activated_time: int
    closed_height: int
    amendments: int
    audit_count: int

    def to_value(self) -> dict[str, Any]:
        return {"status": self.status, "creator": self.creator,
                "created_height": self.created_height, "created_time": self.created_time,
                "signed": list(self.signed), "activated_height": self.activated_height,
                "activated_time": self.activated_time, "closed_height": self.closed_height,
                "amendments": self.amendments, "audit_count": self.audit_count}

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_bytes(cls, contract_id: int, data: bytes) -> ContractState:
        value = codec.decode(data)
        return cls(contract_id, value["status"], value["creator"], value["created_height"],
                   value["created_time"], tuple(value["signed"]), value["activated_height"],
                   value["activated_time"], value["closed_height"], value["amendments"],
                   value["audit_count"])


@dataclass(frozen=True, slots=True)
class Schedule:
    """When end-block last judged a contract (height, block time) and when it judges it next
    (``next_check_height``; 0 when not scheduled)."""

    next_check_height: int
    last_check_height: int
    last_check_time: int

    def to_value(self) -> dict[str, Any]:
        return {"next_check_height": self.next_check_height,
                "last_check_height": self.last_check_height,
                "last_check_time": self.last_check_time}

    def to_bytes(self) -> bytes:
        return codec.encode([self.next_check_height, self.last_check_height,
                             self.last_check_time])

    @classmethod
    def from_bytes(cls, data: bytes) -> Schedule:
        next_check, last_height, last_time = codec.decode(data)
        return cls(next_check, last_height, last_time)


NOT_SCHEDULED = Schedule(0, 0, 0)


@dataclass(frozen=True, slots=True)
class MilestoneState:
    """Where a milestone stands. ``met_since``: block time its condition started to hold (0 when
    it does not); ``outcome``/``detail``: the last evaluation's result and why, recorded at
    ``outcome_height``; ``periods_settled``, ``paid``, ``refunded``, ``penalties``: totals."""

    status: str
    met_since: int
    periods_settled: int
    paid: int
    refunded: int
    penalties: int
    outcome: str
    detail: str
    outcome_height: int

    def to_value(self) -> dict[str, Any]:
        return {"status": self.status, "met_since": self.met_since,
                "periods_settled": self.periods_settled, "paid": self.paid,
                "refunded": self.refunded, "penalties": self.penalties,
                "outcome": self.outcome, "detail": self.detail,
                "outcome_height": self.outcome_height}

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_bytes(cls, data: bytes) -> MilestoneState:
        value = codec.decode(data)
        return cls(value["status"], value["met_since"], value["periods_settled"], value["paid"],
                   value["refunded"], value["penalties"], value["outcome"], value["detail"],
                   value["outcome_height"])


NEW_MILESTONE = MilestoneState(MILESTONE_PENDING, 0, 0, 0, 0, 0, "", "", 0)


@dataclass(frozen=True, slots=True)
class Attestation:
    """A party's signed sign-off of one period of a milestone (period 0 for one-off ones)."""

    role: str
    address: str
    height: int
    time: int
    evidence: str

    def to_value(self) -> dict[str, Any]:
        return {"role": self.role, "did": did_from_address(self.address), "height": self.height,
                "time": self.time, "evidence": self.evidence}

    def to_bytes(self) -> bytes:
        return codec.encode({"address": self.address, "height": self.height, "time": self.time,
                             "evidence": self.evidence})

    @classmethod
    def from_bytes(cls, role: str, data: bytes) -> Attestation:
        value = codec.decode(data)
        return cls(role, value["address"], value["height"], value["time"], value["evidence"])


def encode_attestations(records: tuple[Attestation, ...]) -> bytes:
    """Encode one period's sign-offs as one record, in ROLES order."""
    ordered = sorted(records, key=lambda item: ROLES.index(item.role))
    return codec.encode([{"role": item.role, "address": item.address, "height": item.height,
                          "time": item.time, "evidence": item.evidence} for item in ordered])


def decode_attestations(data: bytes) -> tuple[Attestation, ...]:
    """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
    return tuple(Attestation(item["role"], item["address"], item["height"], item["time"],
                             item["evidence"]) for item in codec.decode(data))


@dataclass(frozen=True, slots=True)
class Amendment:
    """A proposed replacement of one milestone's terms; applies once every party approved."""

    number: int
    milestone: int
    terms: MilestoneTerms
    proposer: str
    reason: str
    expires: int
    approvals: tuple[str, ...]
    status: str
    height: int

    def to_value(self) -> dict[str, Any]:
        return {"number": self.number, "milestone": self.milestone,
                "terms": self.terms.to_value(), "proposer": did_from_address(self.proposer),
                "reason": self.reason, "expires": self.expires,
                "approvals": list(self.approvals), "status": self.status,
                "height": self.height}

    def to_bytes(self) -> bytes:
        return codec.encode({**self.to_value(), "proposer": self.proposer})

    @classmethod
    def from_bytes(cls, data: bytes) -> Amendment:
        value = codec.decode(data)
        return cls(value["number"], value["milestone"],
                   MilestoneTerms.from_value(value["terms"]), value["proposer"], value["reason"],
                   value["expires"], tuple(value["approvals"]), value["status"],
                   value["height"])


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of a contract's audit trail: an event and the block it happened in."""

    seq: int
    height: int
    time: int
    type: str
    attributes: tuple[tuple[str, str], ...]

    def to_value(self) -> dict[str, Any]:
        return {"seq": self.seq, "height": self.height, "time": self.time, "type": self.type,
                "attributes": {name: value for name, value in self.attributes}}

    def to_bytes(self) -> bytes:
        return codec.encode({"height": self.height, "time": self.time, "type": self.type,
                             "attributes": [list(pair) for pair in self.attributes]})

    @classmethod
    def from_bytes(cls, seq: int, data: bytes) -> AuditEntry:
        value = codec.decode(data)
        return cls(seq, value["height"], value["time"], value["type"],
                   tuple((name, text) for name, text in value["attributes"]))
