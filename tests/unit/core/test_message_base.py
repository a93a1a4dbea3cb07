"""Message base: plain-data round trip, exact field names and types, the registry, validators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidMessageError
from citychain.core.messages import (
    MessageRegistry,
    Msg,
    validate_address_field,
    validate_positive_amount,
    validate_text_field,
)

ADDRESS = PrivateKey.from_secret("message-tests").address


@dataclass(frozen=True)
class MsgRecordReading(Msg):
    """Every field kind a message may carry."""

    TYPE = "citychain.test.v1.MsgRecordReading"

    device: str
    value: int
    payload: bytes
    final: bool
    tags: tuple[str, ...]
    samples: tuple[int, ...] = ()


@dataclass(frozen=True)
class MsgPing(Msg):
    TYPE = "citychain.test.v1.MsgPing"


READING = MsgRecordReading("meter-1", -5, b"\x00\x01", True, ("a", "b"), (1, 2, 3))
READING_VALUE = {"device": "meter-1", "value": -5, "payload": b"\x00\x01", "final": True,
                 "tags": ["a", "b"], "samples": [1, 2, 3]}


def test_to_value_gives_plain_encodable_data() -> None:
    assert READING.to_value() == READING_VALUE
    assert type(READING.to_value()["tags"]) is list
    assert codec.decode(codec.encode(READING.to_value())) == READING_VALUE


def test_from_value_builds_the_message() -> None:
    msg = MsgRecordReading.from_value(READING_VALUE)
    assert msg == READING
    assert type(msg.tags) is tuple


def test_message_without_fields() -> None:
    assert MsgPing().to_value() == {}
    assert MsgPing.from_value({}) == MsgPing()


@settings(max_examples=150, deadline=None)
@given(st.builds(
    MsgRecordReading,
    device=st.text(max_size=20),
    value=st.integers(min_value=-(2**64), max_value=2**64 - 1),
    payload=st.binary(max_size=20),
    final=st.booleans(),
    tags=st.lists(st.text(max_size=5), max_size=4).map(tuple),
    samples=st.lists(st.integers(min_value=0, max_value=2**32), max_size=4).map(tuple),
))
def test_round_trip_through_the_codec(msg: MsgRecordReading) -> None:
    assert MsgRecordReading.from_value(codec.decode(codec.encode(msg.to_value()))) == msg


@pytest.mark.parametrize(("name", "bad", "expected"), [
    ("device", 5, "field 'device' must be str, got int"),
    ("device", b"meter-1", "field 'device' must be str, got bytes"),
    ("value", "5", "field 'value' must be int, got str"),
    ("value", True, "field 'value' must be int, got bool"),
    ("value", None, "field 'value' must be int, got NoneType"),
    ("payload", "0001", "field 'payload' must be bytes, got str"),
    ("final", 1, "field 'final' must be bool, got int"),
    ("tags", "ab", "field 'tags' must be a list of str"),
    ("tags", ["a", 1], "field 'tags' must be a list of str"),
    ("tags", ("a",), "field 'tags' must be a list of str"),
    ("samples", [1, True], "field 'samples' must be a list of int"),
])
def test_invalid_field_type_names_the_field(name: str, bad: Any, expected: str) -> None:
    with pytest.raises(InvalidMessageError) as info:
        MsgRecordReading.from_value({**READING_VALUE, name: bad})
    assert info.value.field == name
    assert info.value.message == f"citychain.test.v1.MsgRecordReading: {expected}"
    assert info.value.code == 7


def test_invalid_missing_field() -> None:
    value = dict(READING_VALUE)
    del value["payload"]
    with pytest.raises(InvalidMessageError, match="missing field 'payload'") as info:
        MsgRecordReading.from_value(value)
    assert info.value.field == "payload"


def test_invalid_fields_with_a_default_are_still_required() -> None:
    value = dict(READING_VALUE)
    del value["samples"]
    with pytest.raises(InvalidMessageError, match="missing field 'samples'"):
        MsgRecordReading.from_value(value)


def test_invalid_unknown_field_reported_before_missing_ones() -> None:
    value = dict(READING_VALUE)
    del value["device"]
    value["zone"] = "north"
    with pytest.raises(InvalidMessageError, match="unknown field 'zone'") as info:
        MsgRecordReading.from_value(value)
    assert info.value.field == "zone"


def test_invalid_unknown_field_name_is_cut_short() -> None:
    with pytest.raises(InvalidMessageError) as info:
        MsgRecordReading.from_value({**READING_VALUE, "f" * 1000: 1})
    assert info.value.field == "f" * 64 + "..."
    assert len(info.value.message) < 200


def test_invalid_unknown_fields_reported_in_sorted_order() -> None:
    with pytest.raises(InvalidMessageError, match="unknown field 'a'"):
        MsgRecordReading.from_value({**READING_VALUE, "z": 1, "a": 2})


@pytest.mark.parametrize("value", [None, [], "device", 5, [("device", "x")]])
def test_invalid_value_not_a_map(value: Any) -> None:
    with pytest.raises(InvalidMessageError, match="message value must be a map") as info:
        MsgRecordReading.from_value(value)
    assert info.value.field is None


def test_invalid_field_type_declaration_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class MsgWithFloat(Msg):
        TYPE = "citychain.test.v1.MsgWithFloat"
        ratio: float

    @dataclass(frozen=True)
    class MsgWithPair(Msg):
        TYPE = "citychain.test.v1.MsgWithPair"
        pair: tuple[str, int]

    with pytest.raises(TypeError, match="unsupported message field type"):
        MsgWithFloat.from_value({"ratio": 1})
    with pytest.raises(TypeError, match="unsupported message field type"):
        MsgWithPair.from_value({"pair": ["a", 1]})


# ------------------------------------------------------------------------------------ registry

def test_registry_maps_type_names_to_classes() -> None:
    registry = MessageRegistry()
    registry.register(MsgRecordReading)
    registry.register(MsgPing)
    assert registry.get("citychain.test.v1.MsgPing") is MsgPing
    assert registry.get("citychain.test.v1.MsgUnknown") is None
    assert registry.types() == ["citychain.test.v1.MsgPing", "citychain.test.v1.MsgRecordReading"]


def test_invalid_registry_refuses_a_type_twice() -> None:
    registry = MessageRegistry()
    registry.register(MsgPing)

    @dataclass(frozen=True)
    class OtherPing(Msg):
        TYPE = "citychain.test.v1.MsgPing"

    with pytest.raises(TypeError, match=r"message type citychain\.test\.v1\.MsgPing registered"):
        registry.register(OtherPing)
    with pytest.raises(TypeError, match="registered twice"):
        registry.register(MsgPing)
    assert registry.get("citychain.test.v1.MsgPing") is MsgPing


def test_invalid_registry_refuses_a_class_without_type() -> None:
    @dataclass(frozen=True)
    class MsgNameless(Msg):
        pass

    with pytest.raises(TypeError, match="MsgNameless has no TYPE"):
        MessageRegistry().register(MsgNameless)


# ------------------------------------------------------------------------------------ validators

def test_validate_address_field() -> None:
    validate_address_field(ADDRESS, "to")
    for bad in (ADDRESS.upper(), ADDRESS + "\n", ADDRESS[:-1], ""):
        with pytest.raises(InvalidMessageError, match="to must be an address") as info:
            validate_address_field(bad, "to")
        assert info.value.field == "to"


def test_validate_text_field_bounds() -> None:
    validate_text_field("a", "name", max_length=3)
    validate_text_field("abc", "name", max_length=3)
    validate_text_field("", "memo", max_length=3, min_length=0)
    for bad in ("", "abcd"):
        with pytest.raises(InvalidMessageError, match="name must have 1 to 3 characters") as info:
            validate_text_field(bad, "name", max_length=3)
        assert info.value.field == "name"


def test_validate_positive_amount_bounds() -> None:
    validate_positive_amount(1, "amount")
    validate_positive_amount(2**63 - 1, "amount")
    for bad in (0, -1, 2**63):
        with pytest.raises(InvalidMessageError, match="amount must be a positive integer below "
                                                      r"2\*\*63") as info:
            validate_positive_amount(bad, "amount")
        assert info.value.field == "amount"
