"""Validators messages: stateless validation of every field, and the plain-data round trip."""

from __future__ import annotations

import pytest

from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg
from citychain.modules.validators.messages import (
    MAX_PROPOSAL_ID,
    MsgApproveValidatorChange,
    MsgProposeValidatorChange,
)
from citychain.modules.validators.types import MAX_TOTAL_POWER

PUBKEY = bytes(range(32))
ORG = "did:city:" + "ab" * 20


@pytest.mark.parametrize("msg", [
    MsgProposeValidatorChange("add", PUBKEY, 10, ORG, "water-utility-1"),
    MsgProposeValidatorChange("add", PUBKEY, MAX_TOTAL_POWER, ORG, "x" * 64),
    MsgProposeValidatorChange("remove", PUBKEY, 0, "", ""),
    MsgProposeValidatorChange("set-power", PUBKEY, 1, "", ""),
    MsgApproveValidatorChange(1),
    MsgApproveValidatorChange(MAX_PROPOSAL_ID),
])
def test_valid_messages(msg: Msg) -> None:
    msg.validate_basic()
    assert type(msg).from_value(msg.to_value()) == msg


@pytest.mark.parametrize(("msg", "field"), [
    (MsgProposeValidatorChange("replace", PUBKEY, 10, ORG, "n"), "action"),
    (MsgProposeValidatorChange("ADD", PUBKEY, 10, ORG, "n"), "action"),
    (MsgProposeValidatorChange("add", PUBKEY[:31], 10, ORG, "n"), "pubkey"),
    (MsgProposeValidatorChange("add", PUBKEY + b"\x00", 10, ORG, "n"), "pubkey"),
    (MsgProposeValidatorChange("add", PUBKEY, 0, ORG, "n"), "power"),
    (MsgProposeValidatorChange("add", PUBKEY, -1, ORG, "n"), "power"),
    (MsgProposeValidatorChange("add", PUBKEY, MAX_TOTAL_POWER + 1, ORG, "n"), "power"),
    (MsgProposeValidatorChange("add", PUBKEY, 10, "did:city:xyz", "n"), "organisation"),
    (MsgProposeValidatorChange("add", PUBKEY, 10, "", "n"), "organisation"),
    (MsgProposeValidatorChange("add", PUBKEY, 10, ORG, ""), "name"),
    (MsgProposeValidatorChange("add", PUBKEY, 10, ORG, "x" * 65), "name"),
    (MsgProposeValidatorChange("add", PUBKEY, 10, ORG, "bad\nname"), "name"),
    (MsgProposeValidatorChange("remove", PUBKEY, 5, "", ""), "power"),
    (MsgProposeValidatorChange("remove", PUBKEY, 0, ORG, ""), "organisation"),
    (MsgProposeValidatorChange("remove", PUBKEY, 0, "", "n"), "name"),
    (MsgProposeValidatorChange("set-power", PUBKEY, 0, "", ""), "power"),
    (MsgProposeValidatorChange("set-power", PUBKEY, 5, ORG, ""), "organisation"),
    (MsgProposeValidatorChange("set-power", PUBKEY, 5, "", "n"), "name"),
    (MsgApproveValidatorChange(0), "proposal_id"),
    (MsgApproveValidatorChange(MAX_PROPOSAL_ID + 1), "proposal_id"),
])
def test_invalid_message_field(msg: Msg, field: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        msg.validate_basic()
    assert caught.value.field == field
    assert (caught.value.codespace, caught.value.code) == ("core", 7)


def test_messages_require_validator_org() -> None:
    assert MsgProposeValidatorChange.REQUIRED_ROLE == "validator-org"
    assert MsgApproveValidatorChange.REQUIRED_ROLE == "validator-org"
    assert MsgProposeValidatorChange.TYPE == "citychain.validators.v1.MsgProposeValidatorChange"
