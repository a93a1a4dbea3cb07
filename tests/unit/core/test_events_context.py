"""Events and contexts: constructed events with canonical string attributes, block-time only."""

from __future__ import annotations

import dataclasses

import pytest

from citychain.core import codec
from citychain.core.context import BlockContext, TxContext
from citychain.core.events import Event


def test_event_of_sorts_attributes_and_stringifies_integers() -> None:
    event = Event.of("coins_transferred", to="b", amount=10, from_="a")
    assert event.type == "coins_transferred"
    assert event.attributes == (("amount", "10"), ("from_", "a"), ("to", "b"))
    assert event.get("amount") == "10"
    assert event.get("missing") is None


def test_event_plain_data_round_trip() -> None:
    event = Event.of("parcel_transferred", parcel=7, owner="did:city:" + "0" * 40)
    value = event.to_value()
    assert value == {"type": "parcel_transferred",
                     "attributes": [["owner", "did:city:" + "0" * 40], ["parcel", "7"]]}
    assert Event.from_value(codec.decode(codec.encode(value))) == event


def test_events_are_frozen() -> None:
    event = Event.of("x_happened")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.type = "y_happened"  # type: ignore[misc]


def test_block_context_time_is_block_time() -> None:
    block = BlockContext("city-1", 5, 1_700_000_000_999_999_999, "proposer")
    assert block.time_s == 1_700_000_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.height = 6  # type: ignore[misc]


def test_tx_context_exposes_the_block_and_collects_events() -> None:
    block = BlockContext("city-1", 5, 42)
    ctx = TxContext(block, "0" * 40, b"\x01" * 32)
    assert (ctx.chain_id, ctx.height, ctx.time_ns) == ("city-1", 5, 42)
    ctx.emit(Event.of("a_happened"))
    ctx.emit(Event.of("b_happened"))
    assert [event.type for event in ctx.events] == ["a_happened", "b_happened"]
    assert TxContext(block, "0" * 40).events == []  # no list shared between contexts
