"""Identity state records (account, suspension, key history entry), roles and the grant table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core import codec
from citychain.core.crypto import did_from_address

ROLE_AUDITOR = "auditor"
ROLE_CITIZEN = "citizen"
ROLE_DEVICE = "device"
ROLE_OPERATOR = "operator"
ROLE_REGISTRAR = "registrar"
ROLE_TREASURY = "treasury"
ROLE_VALIDATOR_ORG = "validator-org"

ROLES: tuple[str, ...] = (
    ROLE_AUDITOR,
    ROLE_CITIZEN,
    ROLE_DEVICE,
    ROLE_OPERATOR,
    ROLE_REGISTRAR,
    ROLE_TREASURY,
    ROLE_VALIDATOR_ORG,
)

# Who may grant (and revoke) each role: role -> roles whose holders may grant it.
# validator-org is the root of the graph: it grants itself, registrar and treasury.
GRANTERS: dict[str, tuple[str, ...]] = {
    ROLE_AUDITOR: (ROLE_REGISTRAR,),
    ROLE_CITIZEN: (ROLE_REGISTRAR,),
    ROLE_DEVICE: (ROLE_OPERATOR, ROLE_REGISTRAR),
    ROLE_OPERATOR: (ROLE_REGISTRAR,),
    ROLE_REGISTRAR: (ROLE_VALIDATOR_ORG,),
    ROLE_TREASURY: (ROLE_VALIDATOR_ORG,),
    ROLE_VALIDATOR_ORG: (ROLE_VALIDATOR_ORG,),
}

# Roles whose last holder may not lose it: without one, no one could grant the roles below it.
PROTECTED_ROLES: tuple[str, ...] = (ROLE_VALIDATOR_ORG,)

# Roles whose holders a registrar may not suspend (the organisations running the network are
# removed by revoking validator-org, a decision of the other validator organisations).
UNSUSPENDABLE_ROLES: tuple[str, ...] = (ROLE_VALIDATOR_ORG,)

STATUS_ACTIVE = "active"
STATUS_SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class Suspension:
    """Why, when and by whom an account was suspended."""

    reason: str
    height: int
    by: str  # address of the registrar

    def to_value(self) -> dict[str, Any]:
        return {"reason": self.reason, "height": self.height, "by": self.by}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> Suspension:
        return cls(value["reason"], value["height"], value["by"])


@dataclass(frozen=True, slots=True)
class Account:
    """An identity. Stored at ``account_key(address)`` without the address (the key holds it).

    ``pubkey`` is the current key; ``key_count`` is the number of key history entries (the
    initial key is entry 0, each rotation adds one). The sequence number lives at its own key
    because it changes with every transaction (see state.get_sequence).
    """

    address: str
    pubkey: bytes
    roles: tuple[str, ...]
    created_height: int
    key_count: int = 1
    suspension: Suspension | None = None

    @property
    def did(self) -> str:
        return did_from_address(self.address)

    @property
    def suspended(self) -> bool:
        return self.suspension is not None

    @property
    def status(self) -> str:
        return STATUS_ACTIVE if self.suspension is None else STATUS_SUSPENDED

    def to_bytes(self) -> bytes:
        """Return the canonical encoding of the record (the address is not included)."""
        return codec.encode({
            "pubkey": self.pubkey,
            "roles": list(self.roles),
            "created_height": self.created_height,
            "key_count": self.key_count,
            "suspension": None if self.suspension is None else self.suspension.to_value(),
        })

    @classmethod
    def from_bytes(cls, address: str, data: bytes) -> Account:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        suspension = value["suspension"]
        return cls(
            address=address,
            pubkey=value["pubkey"],
            roles=tuple(value["roles"]),
            created_height=value["created_height"],
            key_count=value["key_count"],
            suspension=None if suspension is None else Suspension.from_value(suspension),
        )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key history entry: the key in force from ``height`` on (until the next entry)."""

    height: int
    pubkey: bytes

    def to_bytes(self) -> bytes:
        return codec.encode({"height": self.height, "pubkey": self.pubkey})

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyRecord:
        """Decode a stored entry. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(value["height"], value["pubkey"])


def encode_sequence(sequence: int) -> bytes:
    """Return the canonical encoding of a sequence number."""
    return codec.encode(sequence)


def decode_sequence(data: bytes) -> int:
    """Decode a stored sequence number. Raises DecodeError/NonCanonicalError on corrupt bytes."""
    value = codec.decode(data)
    if type(value) is not int:
        raise TypeError("stored sequence is not an integer")
    return value


def encode_address(address: str) -> bytes:
    """Return the canonical encoding of an address (value of the key binding index)."""
    return codec.encode(address)


def decode_address(data: bytes) -> str:
    """Decode a stored address. Raises DecodeError/NonCanonicalError on corrupt bytes."""
    value = codec.decode(data)
    if type(value) is not str:
        raise TypeError("stored address is not a string")
    return value
