"""Oracle genesis: validate and load the section, and export state so that init(export) == state.

Section (addresses are 40 hex, hashes 64 hex; every list optional)::

    {"params": {"max_batch_devices": int, ...},
     "devices": [{"address", "owner", "device_type", "district",
                  "has_coordinates": bool, "latitude_udeg": int, "longitude_udeg": int,
                  "streams": ["name:unit:min:max", ...],
                  "registered_height": int, "updated_height": int,     # default genesis height
                  "status": "registered" | "decommissioned", "decommissioned_height": int}],
     "anchors": [{"batch_id" (optional, checked), "merkle_root", "devices": [address, ...],
                  "first_reading_ms", "last_reading_ms", "reading_count",
                  "previous_batch_id": hash | "", "operator", "submitter", "height", "time_ns"}],
     "feeds": [{"feed_id", "publisher", "description", "unit", "scale", "aggregation",
                "coverage": [code, ...], "created_height"}],
     "feed_values": [{"feed_id", "value", "window_start_ms", "window_end_ms",
                      "source_batch_ids": [hash, ...], "height", "time_ns"}]}

Device identities must exist (the identity section is loaded first); their current roles are
not checked, so an exported chain whose devices lost the role still loads.
"""

from __future__ import annotations

from typing import Any

from citychain.core.context import BlockContext
from citychain.core.crypto import is_address
from citychain.core.errors import InvalidGenesisError, InvalidMessageError
from citychain.core.genesis_fields import check_fields, genesis_integer, genesis_list
from citychain.core.messages import Msg
from citychain.core.state import ReadView, StateView
from citychain.modules.identity import api as identity
from citychain.modules.oracle import state
from citychain.modules.oracle.messages import (
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgPublishFeedValue,
    MsgRegisterDevice,
    parse_streams,
)
from citychain.modules.oracle.params import Params
from citychain.modules.oracle.types import (
    MAX_INT,
    STATUS_DECOMMISSIONED,
    STATUS_REGISTERED,
    Anchor,
    Device,
    Feed,
    FeedValue,
    Location,
    compute_batch_id,
)

SECTION_PATH = "app_state.oracle"
_DEVICE_FIELDS = ("address", "decommissioned_height", "device_type", "district",
                  "has_coordinates", "latitude_udeg", "longitude_udeg", "owner",
                  "registered_height", "status", "streams", "updated_height")
_ANCHOR_FIELDS = ("batch_id", "devices", "first_reading_ms", "height", "last_reading_ms",
                  "merkle_root", "operator", "previous_batch_id", "reading_count", "submitter",
                  "time_ns")
_FEED_FIELDS = ("aggregation", "coverage", "created_height", "description", "feed_id",
                "publisher", "scale", "unit")
_VALUE_FIELDS = ("feed_id", "height", "source_batch_ids", "time_ns", "value", "window_end_ms",
                 "window_start_ms")


def init_genesis(view: StateView, block_ctx: BlockContext, section: Any) -> None:
    """Validate the oracle section and write params, devices, anchors, feeds and values.

    Every check runs before the first write; writes go in key order.

    Raises:
        InvalidGenesisError: naming the path of the first invalid field.
    """
    if not isinstance(section, dict):
        raise InvalidGenesisError(f"{SECTION_PATH} must be a map", field=SECTION_PATH)
    check_fields(section, ("anchors", "devices", "feed_values", "feeds", "params"),
                  SECTION_PATH)
    params = Params.from_genesis(section.get("params", {}), f"{SECTION_PATH}.params")
    height = block_ctx.height
    devices: dict[str, Device] = {}
    for index, raw in enumerate(genesis_list(section, "devices", SECTION_PATH)):
        path = f"{SECTION_PATH}.devices[{index}]"
        device = _parse_device(view, raw, path, height)
        if device.address in devices:
            raise InvalidGenesisError(f"{path} repeats device {device.address}",
                                      field=f"{path}.address")
        devices[device.address] = device
    anchors: dict[bytes, tuple[Anchor, str]] = {}
    roots: set[bytes] = set()
    for index, raw in enumerate(genesis_list(section, "anchors", SECTION_PATH)):
        path = f"{SECTION_PATH}.anchors[{index}]"
        anchor = _parse_anchor(raw, path, devices)
        if anchor.merkle_root in roots:
            raise InvalidGenesisError(f"{path}.merkle_root is anchored twice",
                                      field=f"{path}.merkle_root")
        roots.add(anchor.merkle_root)
        anchors[anchor.batch_id] = (anchor, path)
    for batch_id in sorted(anchors):
        anchor, path = anchors[batch_id]
        if anchor.previous_batch_id:
            previous = anchors.get(anchor.previous_batch_id)
            if previous is None or previous[0].operator != anchor.operator:
                raise InvalidGenesisError(f"{path}.previous_batch_id names no anchored batch of "
                                          "the same operator", field=f"{path}.previous_batch_id")
    feeds: dict[str, Feed] = {}
    for index, raw in enumerate(genesis_list(section, "feeds", SECTION_PATH)):
        path = f"{SECTION_PATH}.feeds[{index}]"
        feed = _parse_feed(raw, path, height)
        if feed.feed_id in feeds:
            raise InvalidGenesisError(f"{path} repeats feed {feed.feed_id}",
                                      field=f"{path}.feed_id")
        feeds[feed.feed_id] = feed
    values: dict[str, list[FeedValue]] = {}
    for index, raw in enumerate(genesis_list(section, "feed_values", SECTION_PATH)):
        path = f"{SECTION_PATH}.feed_values[{index}]"
        value = _parse_value(raw, path, feeds, anchors)
        earlier = values.setdefault(value.feed_id, [])
        if earlier and value.window_end_ms <= earlier[-1].window_end_ms:
            raise InvalidGenesisError(f"{path}.window_end_ms must be after the previous value of "
                                      f"{value.feed_id} (list values by window end)",
                                      field=f"{path}.window_end_ms")
        earlier.append(value)

    state.set_params(view, params)
    for address in sorted(devices):
        state.set_device(view, devices[address])
    for batch_id in sorted(anchors):
        state.set_anchor(view, anchors[batch_id][0],
                         device_keys=bool(params.device_anchor_keys_in_state))
    for feed_id in sorted(feeds):
        state.set_feed(view, feeds[feed_id])
    for feed_id in sorted(values):
        for value in values[feed_id]:
            state.add_value(view, value)


def export_genesis(view: ReadView) -> dict[str, Any]:
    """Return the oracle section describing the current state (in key order)."""
    devices = []
    for device in state.iter_devices(view):
        location = device.location
        devices.append({
            "address": device.address, "owner": device.owner,
            "device_type": device.device_type, "district": location.district,
            "has_coordinates": location.has_coordinates,
            "latitude_udeg": location.latitude_udeg, "longitude_udeg": location.longitude_udeg,
            "streams": [stream.to_spec() for stream in device.streams],
            "registered_height": device.registered_height,
            "updated_height": device.updated_height, "status": device.status,
            "decommissioned_height": device.decommissioned_height,
        })
    anchors = [{
        "batch_id": anchor.batch_id.hex(), "merkle_root": anchor.merkle_root.hex(),
        "devices": list(anchor.devices), "first_reading_ms": anchor.first_reading_ms,
        "last_reading_ms": anchor.last_reading_ms, "reading_count": anchor.reading_count,
        "previous_batch_id": anchor.previous_batch_id.hex(), "operator": anchor.operator,
        "submitter": anchor.submitter, "height": anchor.height, "time_ns": anchor.time_ns,
    } for anchor in state.iter_anchors(view)]
    feeds = []
    values: list[dict[str, Any]] = []
    for feed in state.iter_feeds(view):
        feeds.append({"feed_id": feed.feed_id, "publisher": feed.publisher,
                      "description": feed.description, "unit": feed.unit, "scale": feed.scale,
                      "aggregation": feed.aggregation, "coverage": list(feed.coverage),
                      "created_height": feed.created_height})
        values.extend({
            "feed_id": value.feed_id, "value": value.value,
            "window_start_ms": value.window_start_ms, "window_end_ms": value.window_end_ms,
            "source_batch_ids": [batch_id.hex() for batch_id in value.source_batch_ids],
            "height": value.height, "time_ns": value.time_ns,
        } for value in state.iter_values(view, feed.feed_id))
    return {"params": state.get_params(view).to_value(), "devices": devices,
            "anchors": anchors, "feeds": feeds, "feed_values": values}


def _parse_device(view: ReadView, raw: Any, path: str, height: int) -> Device:
    raw = _entry(raw, path, _DEVICE_FIELDS,
                 ("address", "device_type", "district", "owner", "streams"))
    address = _address(raw["address"], f"{path}.address")
    if not identity.exists(view, address):
        raise InvalidGenesisError(f"{path}.address {address} has no identity; list it in "
                                  "app_state.identity.accounts", field=f"{path}.address")
    owner = _address(raw["owner"], f"{path}.owner")
    streams = _strings(raw["streams"], f"{path}.streams")
    has_coordinates = raw.get("has_coordinates", False)
    if type(has_coordinates) is not bool:
        raise InvalidGenesisError(f"{path}.has_coordinates must be a boolean",
                                  field=f"{path}.has_coordinates")
    latitude = genesis_integer(raw.get("latitude_udeg", 0), f"{path}.latitude_udeg", -MAX_INT,
                               MAX_INT)
    longitude = genesis_integer(raw.get("longitude_udeg", 0), f"{path}.longitude_udeg", -MAX_INT,
                                MAX_INT)
    device_type, district = _text(raw, "device_type", path), _text(raw, "district", path)
    _validate(MsgRegisterDevice(identity.did_of(address), device_type, district, streams,
                                has_coordinates, latitude, longitude), path, {"did": "address"})
    registered = genesis_integer(raw.get("registered_height", height),
                                 f"{path}.registered_height", 0, MAX_INT)
    updated = genesis_integer(raw.get("updated_height", registered), f"{path}.updated_height",
                              registered, MAX_INT)
    status = raw.get("status", STATUS_REGISTERED)
    if status not in (STATUS_REGISTERED, STATUS_DECOMMISSIONED):
        raise InvalidGenesisError(f"{path}.status must be {STATUS_REGISTERED} or "
                                  f"{STATUS_DECOMMISSIONED}", field=f"{path}.status")
    minimum = registered if status == STATUS_DECOMMISSIONED else 0
    maximum = MAX_INT if status == STATUS_DECOMMISSIONED else 0
    decommissioned = genesis_integer(raw.get("decommissioned_height", minimum),
                                     f"{path}.decommissioned_height", minimum, maximum)
    return Device(address, owner, device_type,
                  Location(district, has_coordinates, latitude, longitude),
                  parse_streams(streams), registered, updated, status, decommissioned)


def _parse_anchor(raw: Any, path: str, devices: dict[str, Device]) -> Anchor:
    raw = _entry(raw, path, _ANCHOR_FIELDS,
                 ("devices", "first_reading_ms", "height", "last_reading_ms", "merkle_root",
                  "operator", "reading_count", "submitter", "time_ns"))
    root = _hash(raw["merkle_root"], f"{path}.merkle_root")
    previous_hex = raw.get("previous_batch_id", "")
    previous = b"" if previous_hex == "" else _hash(previous_hex, f"{path}.previous_batch_id")
    addresses = tuple(_address(item, f"{path}.devices[{position}]")
                      for position, item in enumerate(_strings(raw["devices"],
                                                                f"{path}.devices")))
    operator = _address(raw["operator"], f"{path}.operator")
    submitter = _address(raw["submitter"], f"{path}.submitter")
    first = genesis_integer(raw["first_reading_ms"], f"{path}.first_reading_ms", 0, MAX_INT)
    last = genesis_integer(raw["last_reading_ms"], f"{path}.last_reading_ms", 0, MAX_INT)
    count = genesis_integer(raw["reading_count"], f"{path}.reading_count", 0, MAX_INT)
    dids = tuple(identity.did_of(address) for address in addresses)
    _validate(MsgAnchorBatch(root, dids, first, last, count, previous), path, {})
    for position, address in enumerate(addresses):
        device = devices.get(address)
        if device is None or device.owner != operator:
            raise InvalidGenesisError(f"{path}.devices[{position}] is not a device of the "
                                      "anchor's operator listed in devices",
                                      field=f"{path}.devices[{position}]")
    batch_id = compute_batch_id(root, dids, first, last, count, previous)
    if "batch_id" in raw and raw["batch_id"] != batch_id.hex():
        raise InvalidGenesisError(f"{path}.batch_id does not match the anchored fields "
                                  f"({batch_id.hex()})", field=f"{path}.batch_id")
    return Anchor(batch_id, root, addresses, first, last, count, previous, operator, submitter,
                  genesis_integer(raw["height"], f"{path}.height", 0, MAX_INT),
                  genesis_integer(raw["time_ns"], f"{path}.time_ns", 0, MAX_INT))


def _parse_feed(raw: Any, path: str, height: int) -> Feed:
    raw = _entry(raw, path, _FEED_FIELDS,
                 ("aggregation", "coverage", "description", "feed_id", "publisher", "scale",
                  "unit"))
    feed_id = _text(raw, "feed_id", path)
    description, unit = _text(raw, "description", path), _text(raw, "unit", path)
    aggregation = _text(raw, "aggregation", path)
    scale = genesis_integer(raw["scale"], f"{path}.scale", 0, MAX_INT)
    coverage = _strings(raw["coverage"], f"{path}.coverage")
    _validate(MsgDeclareFeed(feed_id, description, unit, scale, aggregation, coverage), path, {})
    return Feed(feed_id, _address(raw["publisher"], f"{path}.publisher"), description, unit,
                scale, aggregation, coverage,
                genesis_integer(raw.get("created_height", height), f"{path}.created_height", 0,
                                MAX_INT))


def _parse_value(raw: Any, path: str, feeds: dict[str, Feed],
                 anchors: dict[bytes, tuple[Anchor, str]]) -> FeedValue:
    raw = _entry(raw, path, _VALUE_FIELDS, _VALUE_FIELDS)
    feed_id = _text(raw, "feed_id", path)
    start = genesis_integer(raw["window_start_ms"], f"{path}.window_start_ms", 0, MAX_INT)
    end = genesis_integer(raw["window_end_ms"], f"{path}.window_end_ms", 0, MAX_INT)
    value = genesis_integer(raw["value"], f"{path}.value", -MAX_INT, MAX_INT)
    sources = _strings(raw["source_batch_ids"], f"{path}.source_batch_ids")
    _validate(MsgPublishFeedValue(feed_id, start, end, value, sources), path, {})
    feed = feeds.get(feed_id)
    if feed is None:
        raise InvalidGenesisError(f"{path}.feed_id {feed_id} is not listed in "
                                  f"{SECTION_PATH}.feeds", field=f"{path}.feed_id")
    batch_ids = tuple(bytes.fromhex(item) for item in sources)
    for position, batch_id in enumerate(batch_ids):
        found = anchors.get(batch_id)
        if found is None or not found[0].overlaps(start, end):
            raise InvalidGenesisError(f"{path}.source_batch_ids[{position}] names no anchored "
                                      "batch overlapping the window",
                                      field=f"{path}.source_batch_ids[{position}]")
    return FeedValue(feed_id, value, feed.scale, start, end, batch_ids,
                     genesis_integer(raw["height"], f"{path}.height", 0, MAX_INT),
                     genesis_integer(raw["time_ns"], f"{path}.time_ns", 0, MAX_INT))


def _validate(msg: Msg, path: str, renames: dict[str, str]) -> None:
    try:
        msg.validate_basic()
    except InvalidMessageError as error:
        name = error.field or ""
        head, dot, rest = name.partition("[")
        name = renames.get(head, head) + dot + rest
        raise InvalidGenesisError(f"{path}.{name}: {error.message}",
                                  field=f"{path}.{name}") from None


def _entry(raw: Any, path: str, known: tuple[str, ...],
           required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidGenesisError(f"{path} must be a map", field=path)
    check_fields(raw, known, path)
    for name in required:
        if name not in raw:
            raise InvalidGenesisError(f"{path} is missing {name}", field=f"{path}.{name}")
    return raw


def _strings(raw: Any, path: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or any(type(item) is not str for item in raw):
        raise InvalidGenesisError(f"{path} must be a list of strings", field=path)
    return tuple(raw)


def _text(raw: dict[str, Any], name: str, path: str) -> str:
    value = raw[name]
    if type(value) is not str:
        raise InvalidGenesisError(f"{path}.{name} must be a string", field=f"{path}.{name}")
    return value


def _address(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not is_address(raw):
        raise InvalidGenesisError(f"{path} must be an address (40 lowercase hex characters)",
                                  field=path)
    return raw


def _hash(raw: Any, path: str) -> bytes:
    if (not isinstance(raw, str) or len(raw) != 64
            or raw.strip("0123456789abcdef") != ""):
        raise InvalidGenesisError(f"{path} must be 64 lowercase hex characters", field=path)
    return bytes.fromhex(raw)
