"""Identity events: one constructor per past-tense event type; accounts appear as DIDs."""

from __future__ import annotations

from citychain.core.events import Event

IDENTITY_CREATED = "identity_created"
KEY_ROTATED = "key_rotated"
ROLE_GRANTED = "role_granted"
ROLE_REVOKED = "role_revoked"
IDENTITY_SUSPENDED = "identity_suspended"
IDENTITY_REINSTATED = "identity_reinstated"


def identity_created(did: str, pubkey: bytes) -> Event:
    return Event.of(IDENTITY_CREATED, did=did, pubkey=pubkey.hex())


def key_rotated(did: str, old_pubkey: bytes, new_pubkey: bytes, key_index: int) -> Event:
    return Event.of(KEY_ROTATED, did=did, old_pubkey=old_pubkey.hex(),
                    new_pubkey=new_pubkey.hex(), key_index=key_index)


def role_granted(did: str, role: str, granted_by: str) -> Event:
    return Event.of(ROLE_GRANTED, did=did, role=role, granted_by=granted_by)


def role_revoked(did: str, role: str, revoked_by: str) -> Event:
    return Event.of(ROLE_REVOKED, did=did, role=role, revoked_by=revoked_by)


def identity_suspended(did: str, reason: str, suspended_by: str) -> Event:
    return Event.of(IDENTITY_SUSPENDED, did=did, reason=reason, suspended_by=suspended_by)


def identity_reinstated(did: str, reinstated_by: str) -> Event:
    return Event.of(IDENTITY_REINSTATED, did=did, reinstated_by=reinstated_by)
