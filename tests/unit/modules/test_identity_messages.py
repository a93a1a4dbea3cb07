"""Identity messages: stateless validation naming the field, plain-data round trip, flags."""

from __future__ import annotations

import pytest

from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg
from citychain.modules.identity.api import allowed_for_new_account
from citychain.modules.identity.messages import (
    MESSAGES,
    MsgCreateIdentity,
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgRevokeRole,
    MsgRotateKey,
    MsgSuspendIdentity,
)

KEY = PrivateKey.from_secret("identity-messages")
DID = KEY.did

VALID: list[Msg] = [
    MsgCreateIdentity(KEY.public_key),
    MsgRotateKey(KEY.public_key, bytes(64)),
    MsgGrantRole(DID, "citizen"),
    MsgRevokeRole(DID, "validator-org"),
    MsgSuspendIdentity(DID, "case 2026/17"),
    MsgReinstateIdentity(DID),
]


@pytest.mark.parametrize("msg", VALID, ids=lambda m: type(m).__name__)
def test_valid_messages_pass_and_round_trip(msg: Msg) -> None:
    msg.validate_basic()
    assert type(msg).from_value(msg.to_value()) == msg


def test_type_names_are_versioned_and_unique() -> None:
    names = [cls.TYPE for cls in MESSAGES]
    assert len(set(names)) == len(names)
    assert all(name.startswith("citychain.identity.v1.Msg") for name in names)


def test_required_roles() -> None:
    assert {cls.__name__: cls.REQUIRED_ROLE for cls in MESSAGES} == {
        "MsgCreateIdentity": None,
        "MsgRotateKey": None,
        "MsgGrantRole": None,  # depends on the role granted: checked in the handler
        "MsgRevokeRole": None,
        "MsgSuspendIdentity": "registrar",
        "MsgReinstateIdentity": "registrar",
    }


def test_only_create_identity_is_allowed_for_new_accounts() -> None:
    assert [cls for cls in MESSAGES if allowed_for_new_account(cls)] == [MsgCreateIdentity]


INVALID: list[tuple[Msg, str]] = [
    (MsgCreateIdentity(b"\x01" * 31), "pubkey"),
    (MsgRotateKey(b"\x01" * 33, bytes(64)), "new_pubkey"),
    (MsgRotateKey(KEY.public_key, bytes(63)), "new_key_signature"),
    (MsgGrantRole(KEY.address, "citizen"), "did"),
    (MsgGrantRole("did:city:" + KEY.address.upper(), "citizen"), "did"),
    (MsgGrantRole("did:web:" + KEY.address, "citizen"), "did"),
    (MsgGrantRole(DID + "\n", "citizen"), "did"),
    (MsgGrantRole(DID, "mayor"), "role"),
    (MsgGrantRole(DID, "Citizen"), "role"),
    (MsgRevokeRole(DID + "0", "citizen"), "did"),
    (MsgRevokeRole(DID, ""), "role"),
    (MsgSuspendIdentity(DID, ""), "reason"),
    (MsgSuspendIdentity(DID, "x" * 201), "reason"),
    (MsgSuspendIdentity(DID, "line\nbreak"), "reason"),
    (MsgSuspendIdentity("", "x"), "did"),
    (MsgReinstateIdentity("did:city:"), "did"),
]


@pytest.mark.parametrize(("msg", "field"), INVALID,
                         ids=[f"{type(m).__name__}-{f}-{i}" for i, (m, f) in enumerate(INVALID)])
def test_invalid_message_fields(msg: Msg, field: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        msg.validate_basic()
    assert type(caught.value) is InvalidMessageError
    assert caught.value.code == InvalidMessageError.code
    assert caught.value.field == field


def test_invalid_from_value_wrong_type() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        MsgGrantRole.from_value({"did": DID, "role": 3})
    assert caught.value.field == "role"
