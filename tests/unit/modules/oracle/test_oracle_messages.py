"""Oracle messages: stateless validation naming the field, plain-data and canonical-encoding
round trips, required roles."""

from __future__ import annotations

import pytest
from oracle_world import NOW_MS, K, anchor_msg, did

from citychain.core import codec
from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg
from citychain.modules.oracle.messages import (
    MESSAGES,
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgDecommissionDevice,
    MsgPublishFeedValue,
    MsgRegisterDevice,
    MsgUpdateDevice,
)
from citychain.modules.oracle.types import Stream, parse_stream_spec

DID = did(K.sensor_a)
HASH = "ab" * 32

VALID: list[Msg] = [
    MsgRegisterDevice(DID, "StreetLight", "centre", ("lux:LUX:0:100000", "power:WTT:0:250"),
                      True, -90_000_000, 180_000_000),
    MsgRegisterDevice(DID, "Vehicle", "line-12", (), False, 0, 0),
    MsgUpdateDevice(DID, "D.04_north", ("temp:CEL:-400:600",), False, 0, 0),
    MsgDecommissionDevice(DID),
    anchor_msg((K.sensor_a, K.sensor_b)),
    anchor_msg(previous=b"\x01" * 32, first_ms=0, last_ms=0),
    MsgDeclareFeed("pm25-centre", "Mean PM2.5", "GQ", 1, "mean", ("centre",)),
    MsgDeclareFeed("bus.line-7.on-time", "On-time departures", "C62", 0, "ratio_bp",
                   ("7", "7N")),
    MsgPublishFeedValue("pm25-centre", NOW_MS - 1, NOW_MS, -(2**63 - 1), (HASH,)),
]


@pytest.mark.parametrize("msg", VALID, ids=lambda m: type(m).__name__)
def test_valid_messages_pass_and_round_trip(msg: Msg) -> None:
    msg.validate_basic()
    assert type(msg).from_value(msg.to_value()) == msg
    assert type(msg).from_value(codec.decode(codec.encode(msg.to_value()))) == msg


def test_required_roles() -> None:
    roles = {cls.__name__: cls.REQUIRED_ROLE for cls in MESSAGES}
    assert roles == {"MsgRegisterDevice": "operator", "MsgUpdateDevice": "operator",
                     "MsgDecommissionDevice": "operator", "MsgAnchorBatch": None,
                     "MsgDeclareFeed": "operator", "MsgPublishFeedValue": "operator"}
    assert all(cls.TYPE.startswith("citychain.oracle.v1.") for cls in MESSAGES)


def register(**changes: object) -> MsgRegisterDevice:
    fields: dict[str, object] = {"did": DID, "device_type": "StreetLight", "district": "centre",
                                 "streams": (), "has_coordinates": False, "latitude_udeg": 0,
                                 "longitude_udeg": 0}
    fields.update(changes)
    return MsgRegisterDevice(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("msg", "field"), [
    (register(did="did:city:XYZ"), "did"),
    (register(device_type="streetlight"), "device_type"),
    (register(district=""), "district"),
    (register(district="centre/north"), "district"),
    (register(has_coordinates=True, latitude_udeg=90_000_001), "latitude_udeg"),
    (register(has_coordinates=True, longitude_udeg=-180_000_001), "longitude_udeg"),
    (register(longitude_udeg=5), "longitude_udeg"),
    (register(streams=("pm25:GQ:0",)), "streams[0]"),
    (register(streams=("pm25:GQ:10:0",)), "streams[0]"),
    (register(streams=("pm25:GQ:007:10",)), "streams[0]"),
    (register(streams=("pm25:GQ:-0:10",)), "streams[0]"),
    (register(streams=("pm25:µg:0:10",)), "streams[0]"),
    (register(streams=("2pm:GQ:0:10",)), "streams[0]"),
    (register(streams=("a:GQ:0:1", "a:GQ:0:2")), "streams[1]"),
    (register(streams=tuple(f"s{i:02}:GQ:0:1" for i in range(65))), "streams"),
    (MsgAnchorBatch(b"\x01" * 32, (), 0, 0, 1, b""), "devices"),
    (MsgAnchorBatch(b"\x01" * 32, (DID, DID), 0, 0, 2, b""), "devices[1]"),
    (MsgAnchorBatch(b"\x01" * 32, (DID,), -1, 0, 1, b""), "first_reading_ms"),
    (MsgAnchorBatch(b"\x01" * 32, (DID,), 0, 2**63, 1, b""), "last_reading_ms"),
    (MsgAnchorBatch(b"\x01" * 32, (DID,), 0, 0, 0, b""), "reading_count"),
    (MsgAnchorBatch(b"\x01" * 32, (DID,), 0, 0, 1, b"\x01"), "previous_batch_id"),
    (MsgDeclareFeed("pm", "d", "GQ", 0, "mean", ("c",)), "feed_id"),
    (MsgDeclareFeed("pm25", "", "GQ", 0, "mean", ("c",)), "description"),
    (MsgDeclareFeed("pm25", "a\nb", "GQ", 0, "mean", ("c",)), "description"),
    (MsgDeclareFeed("pm25", "d", "µg/m3", 0, "mean", ("c",)), "unit"),
    (MsgDeclareFeed("pm25", "d", "GQ", 19, "mean", ("c",)), "scale"),
    (MsgDeclareFeed("pm25", "d", "GQ", 0, "mean", ()), "coverage"),
    (MsgDeclareFeed("pm25", "d", "GQ", 0, "mean", ("c", "c")), "coverage[1]"),
    (MsgPublishFeedValue("pm25", 5, 4, 0, (HASH,)), "window_end_ms"),
    (MsgPublishFeedValue("pm25", 0, 4, 2**63, (HASH,)), "value"),
    (MsgPublishFeedValue("pm25", 0, 4, 0, ()), "source_batch_ids"),
    (MsgPublishFeedValue("pm25", 0, 4, 0, ("AB" * 32,)), "source_batch_ids[0]"),
    (MsgPublishFeedValue("pm25", 0, 4, 0, (HASH, HASH)), "source_batch_ids[1]"),
])
def test_invalid_messages_name_the_field(msg: Msg, field: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        msg.validate_basic()
    assert caught.value.field == field and caught.value.code == 7


def test_stream_spec_round_trip() -> None:
    stream = Stream("PM2.5", "GQ", -(2**63 - 1), 2**63 - 1)
    assert parse_stream_spec(stream.to_spec()) == stream
    assert parse_stream_spec("a:b:c") is None
