"""Validators messages: propose a change to the validator set, approve a proposed change.

Organisations are named by DID. Both messages require the validator-org role (checked by the ante
handler and again by the handlers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from citychain.core.crypto import PUBKEY_SIZE
from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg, validate_text_field
from citychain.modules.identity.api import ROLE_VALIDATOR_ORG, validate_did_field
from citychain.modules.validators.types import (
    ACTION_ADD,
    ACTION_REMOVE,
    ACTIONS,
    MAX_NAME_LENGTH,
    MAX_TOTAL_POWER,
)

MAX_PROPOSAL_ID = 2**63 - 1


def validate_consensus_pubkey_field(value: bytes, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a 32-byte Ed25519 public key."""
    if len(value) != PUBKEY_SIZE:
        raise InvalidMessageError(f"{field} must be a {PUBKEY_SIZE}-byte Ed25519 public key, "
                                  f"got {len(value)} bytes", field=field)


def validate_power_field(value: int, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a power from 1 to MAX_TOTAL_POWER."""
    if not 1 <= value <= MAX_TOTAL_POWER:
        raise InvalidMessageError(f"{field} must be an integer from 1 to {MAX_TOTAL_POWER}, "
                                  f"got {value}", field=field)


def validate_name_field(value: str, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a 1-64 character printable moniker."""
    validate_text_field(value, field, max_length=MAX_NAME_LENGTH)
    if not value.isprintable():
        raise InvalidMessageError(f"{field} must not contain control characters", field=field)


@dataclass(frozen=True)
class MsgProposeValidatorChange(Msg):
    """Propose to ``add`` a validator (``pubkey``, ``power``, operated by ``organisation``,
    called ``name``), to ``remove`` one (``power`` 0, ``organisation`` and ``name`` empty) or to
    ``set-power`` of one (``organisation`` and ``name`` empty). The sender's approval counts at
    once if it operates a validator."""

    TYPE = "citychain.validators.v1.MsgProposeValidatorChange"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_VALIDATOR_ORG
    ALLOWED_FOR_NEW_ACCOUNT: ClassVar[bool] = False

    action: str
    pubkey: bytes
    power: int
    organisation: str
    name: str

    def validate_basic(self) -> None:
        if self.action not in ACTIONS:
            raise InvalidMessageError(f"action must be one of {', '.join(ACTIONS)}; "
                                      f"got {self.action!r}", field="action")
        validate_consensus_pubkey_field(self.pubkey, "pubkey")
        if self.action == ACTION_REMOVE:
            if self.power != 0:
                raise InvalidMessageError(f"power must be 0 to remove a validator, got "
                                          f"{self.power}", field="power")
        else:
            validate_power_field(self.power, "power")
        if self.action == ACTION_ADD:
            validate_did_field(self.organisation, "organisation")
            validate_name_field(self.name, "name")
            return
        if self.organisation != "":
            raise InvalidMessageError(f"organisation must be empty for {self.action} (a "
                                      "validator keeps its organisation)", field="organisation")
        if self.name != "":
            raise InvalidMessageError(f"name must be empty for {self.action} (a validator "
                                      "keeps its name)", field="name")


@dataclass(frozen=True)
class MsgApproveValidatorChange(Msg):
    """Add the sender's organisation to the approvals of an open proposal."""

    TYPE = "citychain.validators.v1.MsgApproveValidatorChange"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_VALIDATOR_ORG
    ALLOWED_FOR_NEW_ACCOUNT: ClassVar[bool] = False

    proposal_id: int

    def validate_basic(self) -> None:
        if not 1 <= self.proposal_id <= MAX_PROPOSAL_ID:
            raise InvalidMessageError(f"proposal_id must be an integer from 1 to "
                                      f"{MAX_PROPOSAL_ID}, got {self.proposal_id}",
                                      field="proposal_id")


MESSAGES: tuple[type[Msg], ...] = (MsgProposeValidatorChange, MsgApproveValidatorChange)
