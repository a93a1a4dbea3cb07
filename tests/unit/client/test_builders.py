"""Tx builders: one per registered message, generated from the message classes; each validates
like the chain and names the offending field in the chain's typed error."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from citychain.client import TxBuilder, Wallet
from citychain.client.builders import MessageBuilder, builder_name, known_modules
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidMessageError
from citychain.core.messages import MessageRegistry, Msg
from citychain.core.tx import decode_tx
from citychain.modules.contracts.templates import ESCROW
from citychain.node.assemble import default_modules

CHAIN_ID = "builders-city"
KEY = PrivateKey.from_secret("test_builders/key")
DID = KEY.did
OTHER = PrivateKey.from_secret("test_builders/other")

# A valid value for every field name any message uses (as a caller would pass it).
VALID: dict[str, Any] = {
    "to": DID, "did": DID, "organisation": DID, "denom": "ucity", "amount": 5,
    "display_name": "City credit", "decimals": 6, "pubkey": KEY.public_key.hex(),
    "new_pubkey": KEY.public_key, "new_key_signature": "ab" * 64, "role": "citizen",
    "reason": "case-12", "action": "add", "power": 10, "name": "node-1", "proposal_id": 1,
    "device_type": "StreetLight", "district": "centre", "streams": ["lux:LUX:0:100000"],
    "has_coordinates": False, "latitude_udeg": 0, "longitude_udeg": 0,
    "merkle_root": "cd" * 32, "devices": [DID], "first_reading_ms": 1, "last_reading_ms": 2,
    "reading_count": 1, "previous_batch_id": "", "feed_id": "lux-centre",
    "description": "Mean illuminance", "unit": "LUX", "scale": 0, "aggregation": "mean",
    "coverage": ["centre"], "window_start_ms": 1, "window_end_ms": 2, "value": 7,
    "source_batch_ids": ["ef" * 32],
    "terms": ESCROW.terms({"payer": DID, "payee": OTHER.did, "amount": 500,
                           "deadline": 1_900_000_000}),
    "contract_id": 1, "milestone": 0, "evidence": "ab" * 32, "expires": 1_900_000_000,
    "number": 1,
}
# Fields whose valid value depends on the message (an amendment's terms are one milestone).
VALID_FOR: dict[str, dict[str, Any]] = {
    "citychain.contracts.v1.MsgProposeAmendment": {
        "terms": '{"amount":500,"condition":"\\"payer\\" in attestations",'
                 '"deadline":1900000000,"name":"release"}'},
}


def registered() -> list[type[Msg]]:
    return [cls for module in default_modules() for cls in module.handlers]


def registry() -> MessageRegistry:
    found = MessageRegistry()
    for cls in registered():
        found.register(cls)
    return found


def valid_values(builder: MessageBuilder) -> dict[str, Any]:
    chosen = {**VALID, **VALID_FOR.get(builder.cls.TYPE, {})}
    return {name: chosen[name] for name in builder.fields}


def test_known_modules_are_the_node_defaults() -> None:
    assert known_modules() == default_modules()


def test_every_registered_message_has_a_builder() -> None:
    builder = TxBuilder(CHAIN_ID)
    assert builder.modules == tuple(m.name for m in default_modules())
    built = {b.cls for b in builder.builders()}
    assert built == set(registered())
    for module in default_modules():
        for cls in module.handlers:
            found = getattr(getattr(builder, module.name), builder_name(cls))
            assert found.cls is cls and builder.for_type(cls.TYPE) is found
            assert [p for p in found.__signature__.parameters] == [
                f.name for f in dataclasses.fields(cls)]
            assert cls.TYPE in (found.__doc__ or "")
    assert builder_name(registered()[-1]) == "approve_amendment"
    assert "transfer" in dir(builder.bank) and "bank" in dir(builder)


@pytest.mark.parametrize("cls", registered(), ids=lambda cls: cls.TYPE)
def test_each_builder_builds_a_valid_message(cls: type[Msg]) -> None:
    builder = TxBuilder(CHAIN_ID).for_type(cls.TYPE)
    msg = builder(**valid_values(builder))
    assert type(msg) is cls
    assert cls.from_value(msg.to_value()) == msg
    for name, kind in typing.get_type_hints(cls).items():
        if kind is bytes:
            assert isinstance(getattr(msg, name), bytes)


@pytest.mark.parametrize("cls", registered(), ids=lambda cls: cls.TYPE)
def test_invalid_field_of_every_builder_is_named(cls: type[Msg]) -> None:
    builder = TxBuilder(CHAIN_ID).for_type(cls.TYPE)
    for name in builder.fields:
        wrong_type = {**valid_values(builder), name: 1.5}  # no message field is a float
        with pytest.raises(InvalidMessageError) as caught:
            builder(**wrong_type)
        assert caught.value.field == name and caught.value.code == 7
        missing = {k: v for k, v in valid_values(builder).items() if k != name}
        with pytest.raises(InvalidMessageError) as absent:
            builder(**missing)
        assert absent.value.field == name
    with pytest.raises(InvalidMessageError) as unknown:
        builder(**valid_values(builder), colour="blue")
    assert unknown.value.field == "colour"


def test_invalid_values_fail_validate_basic_naming_the_field() -> None:
    builder = TxBuilder(CHAIN_ID)
    cases = [
        (builder.bank.transfer, {"to": "bob", "denom": "ucity", "amount": 1}, "to"),
        (builder.bank.transfer, {"to": DID, "denom": "ucity", "amount": 0}, "amount"),
        (builder.bank.mint, {"to": DID, "denom": "U", "amount": 1}, "denom"),
        (builder.identity.create_identity, {"pubkey": "zz"}, "pubkey"),
        (builder.identity.create_identity, {"pubkey": b"\x01" * 31}, "pubkey"),
        (builder.identity.grant_role, {"did": DID, "role": "mayor"}, "role"),
        (builder.validators.approve_validator_change, {"proposal_id": 0}, "proposal_id"),
    ]
    for build, values, field in cases:
        with pytest.raises(InvalidMessageError) as caught:
            build(**values)
        assert (caught.value.field, caught.value.codespace) == (field, "core")


def test_unknown_module_or_message() -> None:
    builder = TxBuilder(CHAIN_ID)
    with pytest.raises(AttributeError, match="no module 'mayor'"):
        _ = builder.mayor
    with pytest.raises(AttributeError, match=r"has no message 'steal'.*transfer"):
        _ = builder.bank.steal
    with pytest.raises(KeyError):
        builder.for_type("citychain.bank.v1.MsgSteal")


def test_sign_gives_a_tx_the_chain_decodes() -> None:
    builder = TxBuilder(CHAIN_ID)
    wallet = Wallet.from_seed(KEY.seed)
    first = builder.bank.transfer(to=DID, denom="ucity", amount=3)
    second = builder.identity.grant_role(did=DID, role="citizen")
    tx = decode_tx(builder.sign(wallet, 4, first, second, memo="two"), registry())
    assert (tx.body.chain_id, tx.sender, tx.body.sequence, tx.messages, tx.body.memo) == (
        CHAIN_ID, wallet.address, 4, (first, second), "two")
    with pytest.raises(InvalidMessageError):  # a message built by hand is validated too
        builder.sign(wallet, 0, type(first)(to="bob", denom="ucity", amount=1))
