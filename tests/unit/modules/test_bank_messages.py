"""Bank messages: stateless validation naming the field, plain-data round trip, required roles."""

from __future__ import annotations

import pytest

from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg
from citychain.modules.bank.messages import MESSAGES, MsgBurn, MsgCreateDenom, MsgMint, MsgTransfer
from citychain.modules.identity.api import allowed_for_new_account

DID = PrivateKey.from_secret("bank-messages").did

VALID: list[Msg] = [
    MsgCreateDenom("ucity", "City credit", 6),
    MsgCreateDenom("uvoucher2026abcd", "Voucher", 0),
    MsgCreateDenom("abc", "A" * 64, 18),
    MsgMint(DID, "ucity", 1),
    MsgBurn("ucity", 2**63 - 1),
    MsgTransfer(DID, "ucity", 10),
]


@pytest.mark.parametrize("msg", VALID, ids=lambda m: type(m).__name__)
def test_valid_messages_pass_and_round_trip(msg: Msg) -> None:
    msg.validate_basic()
    assert type(msg).from_value(msg.to_value()) == msg


def test_type_names_and_required_roles() -> None:
    assert {cls.TYPE: cls.REQUIRED_ROLE for cls in MESSAGES} == {
        "citychain.bank.v1.MsgCreateDenom": "treasury",
        "citychain.bank.v1.MsgMint": "treasury",
        "citychain.bank.v1.MsgBurn": "treasury",
        "citychain.bank.v1.MsgTransfer": None,
    }
    assert not any(allowed_for_new_account(cls) for cls in MESSAGES)


INVALID: list[tuple[Msg, str]] = [
    (MsgCreateDenom("uc", "x", 6), "denom"),
    (MsgCreateDenom("ucityucityucityuc", "x", 6), "denom"),
    (MsgCreateDenom("1city", "x", 6), "denom"),
    (MsgCreateDenom("uCity", "x", 6), "denom"),
    (MsgCreateDenom("u-city", "x", 6), "denom"),
    (MsgCreateDenom("ucity\n", "x", 6), "denom"),
    (MsgCreateDenom("ucity", "", 6), "display_name"),
    (MsgCreateDenom("ucity", "x" * 65, 6), "display_name"),
    (MsgCreateDenom("ucity", "tab\there", 6), "display_name"),
    (MsgCreateDenom("ucity", "x", -1), "decimals"),
    (MsgCreateDenom("ucity", "x", 19), "decimals"),
    (MsgMint("did:city:00", "ucity", 1), "to"),
    (MsgMint(DID, "UCITY", 1), "denom"),
    (MsgMint(DID, "ucity", 0), "amount"),
    (MsgMint(DID, "ucity", 2**63), "amount"),
    (MsgBurn("ucity", -5), "amount"),
    (MsgBurn("", 5), "denom"),
    (MsgTransfer(DID[len("did:city:"):], "ucity", 1), "to"),
    (MsgTransfer(DID, "ucity", 0), "amount"),
    (MsgTransfer(DID, "ucity", -1), "amount"),
    (MsgTransfer(DID, "ucity", 2**63), "amount"),
]


@pytest.mark.parametrize(("msg", "field"), INVALID,
                         ids=[f"{type(m).__name__}-{f}-{i}" for i, (m, f) in enumerate(INVALID)])
def test_invalid_message_fields(msg: Msg, field: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        msg.validate_basic()
    assert type(caught.value) is InvalidMessageError
    assert caught.value.code == InvalidMessageError.code
    assert caught.value.field == field


def test_invalid_from_value_amount_not_int() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        MsgTransfer.from_value({"to": DID, "denom": "ucity", "amount": "10"})
    assert caught.value.field == "amount"
