"""Contracts messages: create a contract from terms, sign, fund, cancel, attest a milestone,
propose and approve amendments. Contracts are named by id; terms travel as JSON text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg, validate_positive_amount, validate_text_field
from citychain.modules.contracts.params import HARD_LIMITS, MAX_MILESTONES
from citychain.modules.contracts.terms import load_json, parse_milestone, parse_terms
from citychain.modules.contracts.types import MAX_REASON, MAX_TIME, MilestoneTerms, Terms

_HASH_HEX = re.compile(r"[0-9a-f]{64}")
MAX_MILESTONE_JSON = 8 * 1024


def validate_contract_id_field(value: int, field: str = "contract_id") -> None:
    """Raise InvalidMessageError unless ``value`` is a contract id (1 .. 2**63 - 1)."""
    if not 1 <= value < 2**63:
        raise InvalidMessageError(f"{field} must be a contract id from 1 to 2**63 - 1, got "
                                  f"{value}", field=field)


def validate_milestone_field(value: int, field: str = "milestone") -> None:
    """Raise InvalidMessageError unless ``value`` is a milestone index (0 .. 63)."""
    if not 0 <= value < MAX_MILESTONES:
        raise InvalidMessageError(f"{field} must be a milestone index from 0 to "
                                  f"{MAX_MILESTONES - 1}, got {value}", field=field)


def _validate_reason(value: str, field: str) -> None:
    validate_text_field(value, field, max_length=MAX_REASON, min_length=0)
    if not value.isprintable():
        raise InvalidMessageError(f"{field} must not contain control characters", field=field)


@dataclass(frozen=True)
class MsgCreateContract(Msg):
    """Propose a contract; the sender must be one of its parties and signs it by sending.

    ``terms`` is the JSON text of the terms (docs/spec/contracts.md, or a template's output).
    """

    TYPE = "citychain.contracts.v1.MsgCreateContract"

    terms: str

    def validate_basic(self) -> None:
        self.parsed_terms()

    def parsed_terms(self) -> Terms:
        """Return the terms checked against the hard limits.

        Raises:
            InvalidMessageError, ConditionInvalidError: naming ``terms.<path>``.
        """
        return parse_terms(self.terms, HARD_LIMITS)


@dataclass(frozen=True)
class MsgSignContract(Msg):
    """Sign a proposed contract as one of its parties (the contract starts once every party
    signed and the escrow is funded)."""

    TYPE = "citychain.contracts.v1.MsgSignContract"

    contract_id: int

    def validate_basic(self) -> None:
        validate_contract_id_field(self.contract_id)


@dataclass(frozen=True)
class MsgFundContract(Msg):
    """Deposit into a proposed contract's escrow: the payer towards the milestones' total, the
    payee towards the performance bond."""

    TYPE = "citychain.contracts.v1.MsgFundContract"

    contract_id: int
    amount: int

    def validate_basic(self) -> None:
        validate_contract_id_field(self.contract_id)
        validate_positive_amount(self.amount, "amount")


@dataclass(frozen=True)
class MsgCancelContract(Msg):
    """Withdraw a contract that has not started; every deposit goes back to its party."""

    TYPE = "citychain.contracts.v1.MsgCancelContract"

    contract_id: int
    reason: str

    def validate_basic(self) -> None:
        validate_contract_id_field(self.contract_id)
        _validate_reason(self.reason, "reason")


@dataclass(frozen=True)
class MsgAttestMilestone(Msg):
    """Sign off the current period of a milestone in the sender's role (an inspector's
    sign-off); ``evidence`` is the SHA-256 (64 hex) of the inspection report, or empty."""

    TYPE = "citychain.contracts.v1.MsgAttestMilestone"

    contract_id: int
    milestone: int
    evidence: str

    def validate_basic(self) -> None:
        validate_contract_id_field(self.contract_id)
        validate_milestone_field(self.milestone)
        if self.evidence and _HASH_HEX.fullmatch(self.evidence) is None:
            raise InvalidMessageError("evidence must be empty or 64 lowercase hex characters",
                                      field="evidence")


@dataclass(frozen=True)
class MsgProposeAmendment(Msg):
    """Propose new terms for one milestone that is not settled yet (a new deadline, amount,
    condition...); it applies once every party approved it, before ``expires`` (UNIX s).
    The proposer's approval is counted."""

    TYPE = "citychain.contracts.v1.MsgProposeAmendment"

    contract_id: int
    milestone: int
    terms: str
    expires: int
    reason: str

    def validate_basic(self) -> None:
        validate_contract_id_field(self.contract_id)
        validate_milestone_field(self.milestone)
        self.parsed_terms()
        if not 1 <= self.expires <= MAX_TIME:
            raise InvalidMessageError(f"expires must be UNIX seconds from 1 to {MAX_TIME}",
                                      field="expires")
        _validate_reason(self.reason, "reason")

    def parsed_terms(self) -> MilestoneTerms:
        """Return the milestone terms checked against the hard limits.

        Raises:
            InvalidMessageError, ConditionInvalidError: naming ``terms.<field>``.
        """
        return parse_milestone(load_json(self.terms, "terms", MAX_MILESTONE_JSON), HARD_LIMITS,
                               "terms")


@dataclass(frozen=True)
class MsgApproveAmendment(Msg):
    """Approve an open amendment as one of the contract's parties."""

    TYPE = "citychain.contracts.v1.MsgApproveAmendment"

    contract_id: int
    number: int

    def validate_basic(self) -> None:
        validate_contract_id_field(self.contract_id)
        if not 1 <= self.number < 2**32:
            raise InvalidMessageError("number must be an amendment number from 1 to 2**32 - 1",
                                      field="number")
