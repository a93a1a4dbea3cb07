"""Validators state records (validator, proposal), their vocabularies, and the pure tally math.

Powers are integers. CometBFT refuses a set whose total power passes ``MAX_TOTAL_POWER``
(its ``MaxTotalVotingPower``, the largest int64 divided by 8), so no single power may either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from citychain.core import codec

ACTION_ADD = "add"
ACTION_REMOVE = "remove"
ACTION_SET_POWER = "set-power"
ACTIONS: tuple[str, ...] = (ACTION_ADD, ACTION_REMOVE, ACTION_SET_POWER)

STATUS_OPEN = "open"
STATUS_PASSED = "passed"
STATUS_LAPSED = "lapsed"
STATUS_FAILED = "failed"
STATUSES: tuple[str, ...] = (STATUS_OPEN, STATUS_PASSED, STATUS_LAPSED, STATUS_FAILED)

MAX_TOTAL_POWER = (2**63 - 1) // 8
MAX_NAME_LENGTH = 64
MAX_FAILURE_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Validator:
    """A member of the consensus set: its Ed25519 key, power, operating organisation (a DID
    holding validator-org when it joined) and moniker. Stored at ``validator_key(pubkey)``."""

    pubkey: bytes
    power: int
    organisation: str
    name: str

    def to_value(self) -> dict[str, Any]:
        """Plain data (queries, genesis): the key as hex."""
        return {"pubkey": self.pubkey.hex(), "power": self.power,
                "organisation": self.organisation, "name": self.name}

    def to_bytes(self) -> bytes:
        """Return the canonical encoding (the pubkey is in the key, not repeated here)."""
        return codec.encode({"power": self.power, "organisation": self.organisation,
                             "name": self.name})

    @classmethod
    def from_bytes(cls, pubkey: bytes, data: bytes) -> Validator:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(pubkey, value["power"], value["organisation"], value["name"])


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed change to the set. ``organisation`` and ``name`` are set for ``add`` only,
    ``power`` is 0 for ``remove``. ``approvals`` are organisation DIDs, sorted. ``closed_height``
    is the height the proposal passed, lapsed or failed (0 while open); ``failure`` says why a
    passed change could not be applied (status ``failed``)."""

    proposal_id: int
    action: str
    pubkey: bytes
    power: int
    organisation: str
    name: str
    proposer: str
    created_height: int
    expiry_height: int
    approvals: tuple[str, ...]
    status: str = STATUS_OPEN
    closed_height: int = 0
    failure: str = ""

    def to_value(self) -> dict[str, Any]:
        """Plain data (queries, genesis): the key as hex."""
        return {"id": self.proposal_id, "action": self.action, "pubkey": self.pubkey.hex(),
                "power": self.power, "organisation": self.organisation, "name": self.name,
                "proposer": self.proposer, "created_height": self.created_height,
                "expiry_height": self.expiry_height, "approvals": list(self.approvals),
                "status": self.status, "closed_height": self.closed_height,
                "failure": self.failure}

    def to_bytes(self) -> bytes:
        """Return the canonical encoding (the id is in the key, not repeated here)."""
        return codec.encode({"action": self.action, "pubkey": self.pubkey, "power": self.power,
                             "organisation": self.organisation, "name": self.name,
                             "proposer": self.proposer, "created_height": self.created_height,
                             "expiry_height": self.expiry_height,
                             "approvals": list(self.approvals), "status": self.status,
                             "closed_height": self.closed_height, "failure": self.failure})

    @classmethod
    def from_bytes(cls, proposal_id: int, data: bytes) -> Proposal:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(proposal_id, value["action"], value["pubkey"], value["power"],
                   value["organisation"], value["name"], value["proposer"],
                   value["created_height"], value["expiry_height"], tuple(value["approvals"]),
                   value["status"], value["closed_height"], value["failure"])


def encode_uint(value: int) -> bytes:
    """Return the canonical encoding of a non-negative integer (next id, proposal reference)."""
    return codec.encode(value)


def decode_uint(data: bytes) -> int:
    """Decode a stored integer. Raises DecodeError/NonCanonicalError on corrupt bytes."""
    value = codec.decode(data)
    if type(value) is not int:
        raise TypeError("stored value is not an integer")
    return value


# ------------------------------------------------------------------ pure math
def compute_total_power(validators: Iterable[Validator]) -> int:
    """Return the sum of the validators' powers."""
    return sum(validator.power for validator in validators)


def compute_approved_power(validators: Iterable[Validator], approvals: Iterable[str]) -> int:
    """Return the power of the validators operated by the approving organisations (DIDs)."""
    approving = frozenset(approvals)
    return sum(v.power for v in validators if v.organisation in approving)


def has_supermajority(approved_power: int, total_power: int) -> bool:
    """Return whether ``approved_power`` is strictly more than 2/3 of ``total_power``."""
    return 3 * approved_power > 2 * total_power


def compute_power_moved(previous_power: int, new_power: int) -> int:
    """Return how much power a change moves: |new - previous| (0 stands for absent)."""
    return abs(new_power - previous_power)


def is_change_within_limit(moved_power: int, total_power: int) -> bool:
    """Return whether moving ``moved_power`` stays strictly below 1/3 of ``total_power``."""
    return 3 * moved_power < total_power
