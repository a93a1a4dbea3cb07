"""Identity messages: create an identity, rotate its key, grant/revoke roles, suspend/reinstate.

Messages name accounts by DID (``did:city:<address>``). ``ALLOWED_FOR_NEW_ACCOUNT`` marks the one
message a key without an account may send; the application reads it with
``getattr(cls, "ALLOWED_FOR_NEW_ACCOUNT", False)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from citychain.core import codec
from citychain.core.crypto import PUBKEY_SIZE, SIGNATURE_SIZE, address_from_did, domain_bytes
from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg, validate_text_field
from citychain.modules.identity.types import ROLE_REGISTRAR, ROLES

ROTATE_DOMAIN = "citychain/identity/rotate/v1"
MAX_REASON_LENGTH = 200


def validate_did_field(value: str, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a ``did:city:<address>`` DID."""
    if address_from_did(value) is None:
        raise InvalidMessageError(
            f"{field} must be a DID of the form did:city:<40 lowercase hex characters>, "
            f"got {value!r}", field=field)


def validate_role_field(value: str, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is one of the defined roles."""
    if value not in ROLES:
        raise InvalidMessageError(f"{field} must be one of {', '.join(ROLES)}; got {value!r}",
                                  field=field)


def validate_pubkey_field(value: bytes, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a 32-byte Ed25519 public key."""
    if len(value) != PUBKEY_SIZE:
        raise InvalidMessageError(f"{field} must be a {PUBKEY_SIZE}-byte Ed25519 public key, "
                                  f"got {len(value)} bytes", field=field)


def rotation_sign_bytes(chain_id: str, did: str, new_pubkey: bytes, sequence: int) -> bytes:
    """Return the bytes the new key signs to prove possession in MsgRotateKey.

    ``sequence`` is the sequence number of the transaction that carries the rotation.
    """
    payload = codec.encode({"did": did, "new_pubkey": new_pubkey, "sequence": sequence})
    return domain_bytes(ROTATE_DOMAIN, chain_id, payload)


@dataclass(frozen=True)
class MsgCreateIdentity(Msg):
    """Self-registration: ``pubkey`` must derive the sender's address, which has no account yet."""

    TYPE = "citychain.identity.v1.MsgCreateIdentity"
    ALLOWED_FOR_NEW_ACCOUNT: ClassVar[bool] = True

    pubkey: bytes

    def validate_basic(self) -> None:
        validate_pubkey_field(self.pubkey, "pubkey")


@dataclass(frozen=True)
class MsgRotateKey(Msg):
    """Replace the sender's key by ``new_pubkey``; ``new_key_signature`` is the new key's
    signature over :func:`rotation_sign_bytes` (proof of possession)."""

    TYPE = "citychain.identity.v1.MsgRotateKey"
    ALLOWED_FOR_NEW_ACCOUNT: ClassVar[bool] = False

    new_pubkey: bytes
    new_key_signature: bytes

    def validate_basic(self) -> None:
        validate_pubkey_field(self.new_pubkey, "new_pubkey")
        if len(self.new_key_signature) != SIGNATURE_SIZE:
            raise InvalidMessageError(
                f"new_key_signature must be a {SIGNATURE_SIZE}-byte Ed25519 signature, "
                f"got {len(self.new_key_signature)} bytes", field="new_key_signature")


@dataclass(frozen=True)
class MsgGrantRole(Msg):
    """Give ``role`` to ``did``. Who may grant which role is the GRANTERS table."""

    TYPE = "citychain.identity.v1.MsgGrantRole"
    ALLOWED_FOR_NEW_ACCOUNT: ClassVar[bool] = False

    did: str
    role: str

    def validate_basic(self) -> None:
        validate_did_field(self.did, "did")
        validate_role_field(self.role, "role")


@dataclass(frozen=True)
class MsgRevokeRole(Msg):
    """Take ``role`` from ``did``. The roles that may grant a role may also revoke it."""

    TYPE = "citychain.identity.v1.MsgRevokeRole"
    ALLOWED_FOR_NEW_ACCOUNT: ClassVar[bool] = False

    did: str
    role: str

    def validate_basic(self) -> None:
        validate_did_field(self.did, "did")
        validate_role_field(self.role, "role")


@dataclass(frozen=True)
class MsgSuspendIdentity(Msg):
    """Suspend ``did``: it can send no transaction and exercise no role until reinstated.

    ``reason`` is public: a short code or case reference, never personal data.
    """

    TYPE = "citychain.identity.v1.MsgSuspendIdentity"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_REGISTRAR
    ALLOWED_FOR_NEW_ACCOUNT: ClassVar[bool] = False

    did: str
    reason: str

    def validate_basic(self) -> None:
        validate_did_field(self.did, "did")
        validate_text_field(self.reason, "reason", max_length=MAX_REASON_LENGTH)
        if not self.reason.isprintable():
            raise InvalidMessageError("reason must not contain control characters",
                                      field="reason")


@dataclass(frozen=True)
class MsgReinstateIdentity(Msg):
    """Lift the suspension of ``did``."""

    TYPE = "citychain.identity.v1.MsgReinstateIdentity"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_REGISTRAR
    ALLOWED_FOR_NEW_ACCOUNT: ClassVar[bool] = False

    did: str

    def validate_basic(self) -> None:
        validate_did_field(self.did, "did")


MESSAGES: tuple[type[Msg], ...] = (
    MsgCreateIdentity,
    MsgRotateKey,
    MsgGrantRole,
    MsgRevokeRole,
    MsgSuspendIdentity,
    MsgReinstateIdentity,
)
