"""Oracle messages: register, update and decommission devices; anchor batches; declare feeds and
publish their values. Accounts are named by DID; hashes are raw bytes, or 64 lowercase hex
characters inside lists (the CLI's repeated options carry strings)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg, validate_text_field
from citychain.modules.identity.api import ROLE_OPERATOR, validate_did_field
from citychain.modules.oracle.params import (
    MAX_BATCH_DEVICES,
    MAX_DEVICE_STREAMS,
    MAX_FEED_COVERAGE,
    MAX_FEED_SOURCES,
)
from citychain.modules.oracle.types import (
    AGGREGATIONS,
    DEVICE_TYPES,
    HASH_SIZE,
    MAX_DESCRIPTION,
    MAX_INT,
    MAX_LATITUDE_UDEG,
    MAX_LONGITUDE_UDEG,
    MAX_SCALE,
    MIN_INT,
    Stream,
    is_code,
    is_feed_id,
    is_unit,
    parse_stream_spec,
)

_HASH_HEX = re.compile(r"[0-9a-f]{64}")


def validate_code_field(value: str, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a district or line code."""
    if not is_code(value):
        raise InvalidMessageError(
            f"{field} must be 1 to 32 characters of letters, digits, '_', '.' and '-', starting "
            f"with a letter or digit; got {value!r}", field=field)


def validate_feed_id_field(value: str, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` matches [a-z][a-z0-9_.-]{2,63}."""
    if not is_feed_id(value):
        raise InvalidMessageError(
            f"{field} must be 3 to 64 characters of a-z, 0-9, '_', '.' and '-', starting with a "
            f"letter; got {value!r}", field=field)


def validate_time_field(value: int, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a UNIX time in ms in 0 .. 2**63 - 1."""
    if not 0 <= value <= MAX_INT:
        raise InvalidMessageError(f"{field} must be UNIX milliseconds from 0 to 2**63 - 1, "
                                  f"got {value}", field=field)


def validate_hash_field(value: bytes, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a 32-byte hash."""
    if len(value) != HASH_SIZE:
        raise InvalidMessageError(f"{field} must be a {HASH_SIZE}-byte hash, got {len(value)} "
                                  "bytes", field=field)


def parse_streams(specs: tuple[str, ...], field: str = "streams") -> tuple[Stream, ...]:
    """Parse ``name:unit:min:max`` stream specs, strictly sorted by name.

    Raises:
        InvalidMessageError: naming ``streams[i]``, or ``streams`` when there are too many.
    """
    if len(specs) > MAX_DEVICE_STREAMS:
        raise InvalidMessageError(f"{field} may list at most {MAX_DEVICE_STREAMS} streams, got "
                                  f"{len(specs)}", field=field)
    streams: list[Stream] = []
    for index, spec in enumerate(specs):
        stream = parse_stream_spec(spec)
        where = f"{field}[{index}]"
        if stream is None:
            raise InvalidMessageError(
                f"{where} must be name:unit:min:max (name [A-Za-z][A-Za-z0-9_.]{{0,31}}, unit "
                f"1 to 8 letters or digits, min <= max as plain integers); got {spec!r}",
                field=where)
        if streams and stream.name <= streams[-1].name:
            raise InvalidMessageError(f"{where} must come after {streams[-1].name!r}: streams "
                                      "are sorted by name, without repeats", field=where)
        streams.append(stream)
    return tuple(streams)


def parse_hash_list(values: tuple[str, ...], field: str, maximum: int) -> tuple[bytes, ...]:
    """Parse 1 to ``maximum`` strictly ascending 64-hex hashes.

    Raises:
        InvalidMessageError: naming ``field`` or ``field[i]``.
    """
    if not 1 <= len(values) <= maximum:
        raise InvalidMessageError(f"{field} must list 1 to {maximum} ids, got {len(values)}",
                                  field=field)
    for index, value in enumerate(values):
        where = f"{field}[{index}]"
        if _HASH_HEX.fullmatch(value) is None:
            raise InvalidMessageError(f"{where} must be 64 lowercase hex characters, got "
                                      f"{value!r}", field=where)
        if index and value <= values[index - 1]:
            raise InvalidMessageError(f"{where} must come after {values[index - 1]}: ids are "
                                      "sorted, without repeats", field=where)
    return tuple(bytes.fromhex(value) for value in values)


def _validate_location(district: str, has_coordinates: bool, latitude_udeg: int,
                       longitude_udeg: int) -> None:
    validate_code_field(district, "district")
    if not has_coordinates:
        for name, value in (("latitude_udeg", latitude_udeg),
                            ("longitude_udeg", longitude_udeg)):
            if value != 0:
                raise InvalidMessageError(f"{name} must be 0 when has_coordinates is false",
                                          field=name)
        return
    if not -MAX_LATITUDE_UDEG <= latitude_udeg <= MAX_LATITUDE_UDEG:
        raise InvalidMessageError(f"latitude_udeg must be from -{MAX_LATITUDE_UDEG} to "
                                  f"{MAX_LATITUDE_UDEG} micro-degrees, got {latitude_udeg}",
                                  field="latitude_udeg")
    if not -MAX_LONGITUDE_UDEG <= longitude_udeg <= MAX_LONGITUDE_UDEG:
        raise InvalidMessageError(f"longitude_udeg must be from -{MAX_LONGITUDE_UDEG} to "
                                  f"{MAX_LONGITUDE_UDEG} micro-degrees, got {longitude_udeg}",
                                  field="longitude_udeg")


@dataclass(frozen=True)
class MsgRegisterDevice(Msg):
    """Register ``did`` (an identity holding the device role) as a device the sender owns.

    ``streams`` are ``name:unit:min:max`` (e.g. ``pm25:GQ:0:1000``), sorted by name;
    coordinates are WGS84 micro-degrees, given only with ``has_coordinates``.
    """

    TYPE = "citychain.oracle.v1.MsgRegisterDevice"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_OPERATOR

    did: str
    device_type: str
    district: str
    streams: tuple[str, ...]
    has_coordinates: bool
    latitude_udeg: int
    longitude_udeg: int

    def validate_basic(self) -> None:
        validate_did_field(self.did, "did")
        if self.device_type not in DEVICE_TYPES:
            raise InvalidMessageError(f"device_type must be one of {', '.join(DEVICE_TYPES)}; "
                                      f"got {self.device_type!r}", field="device_type")
        _validate_location(self.district, self.has_coordinates, self.latitude_udeg,
                           self.longitude_udeg)
        parse_streams(self.streams)


@dataclass(frozen=True)
class MsgUpdateDevice(Msg):
    """Replace the location and streams of a device the sender owns."""

    TYPE = "citychain.oracle.v1.MsgUpdateDevice"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_OPERATOR

    did: str
    district: str
    streams: tuple[str, ...]
    has_coordinates: bool
    latitude_udeg: int
    longitude_udeg: int

    def validate_basic(self) -> None:
        validate_did_field(self.did, "did")
        _validate_location(self.district, self.has_coordinates, self.latitude_udeg,
                           self.longitude_udeg)
        parse_streams(self.streams)


@dataclass(frozen=True)
class MsgDecommissionDevice(Msg):
    """Retire a device the sender owns: no update or anchor may name it again."""

    TYPE = "citychain.oracle.v1.MsgDecommissionDevice"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_OPERATOR

    did: str

    def validate_basic(self) -> None:
        validate_did_field(self.did, "did")


@dataclass(frozen=True)
class MsgAnchorBatch(Msg):
    """Anchor the Merkle root of a batch of readings (an operator, or a gateway device it owns).

    ``devices`` are the DIDs with readings in the batch, sorted; the reading timestamps run
    from ``first_reading_ms`` to ``last_reading_ms`` (UNIX ms); ``previous_batch_id`` links the
    gateway's previous batch (empty: none). The batch id is types.compute_batch_id of these fields.
    """

    TYPE = "citychain.oracle.v1.MsgAnchorBatch"

    merkle_root: bytes
    devices: tuple[str, ...]
    first_reading_ms: int
    last_reading_ms: int
    reading_count: int
    previous_batch_id: bytes

    def validate_basic(self) -> None:
        validate_hash_field(self.merkle_root, "merkle_root")
        if not 1 <= len(self.devices) <= MAX_BATCH_DEVICES:
            raise InvalidMessageError(f"devices must list 1 to {MAX_BATCH_DEVICES} DIDs, got "
                                      f"{len(self.devices)}", field="devices")
        for index, did in enumerate(self.devices):
            where = f"devices[{index}]"
            validate_did_field(did, where)
            if index and did <= self.devices[index - 1]:
                raise InvalidMessageError(f"{where} must come after {self.devices[index - 1]}: "
                                          "devices are sorted, without repeats", field=where)
        validate_time_field(self.first_reading_ms, "first_reading_ms")
        validate_time_field(self.last_reading_ms, "last_reading_ms")
        if self.last_reading_ms < self.first_reading_ms:
            raise InvalidMessageError("last_reading_ms must not be before first_reading_ms",
                                      field="last_reading_ms")
        if not len(self.devices) <= self.reading_count <= MAX_INT:
            raise InvalidMessageError(
                f"reading_count must be at least the number of devices ({len(self.devices)}) "
                f"and below 2**63, got {self.reading_count}", field="reading_count")
        if self.previous_batch_id:
            validate_hash_field(self.previous_batch_id, "previous_batch_id")


@dataclass(frozen=True)
class MsgDeclareFeed(Msg):
    """Declare a feed the sender publishes: a value means ``value / 10**scale`` of ``unit``,
    aggregated by ``aggregation`` over the ``coverage`` districts or lines (sorted)."""

    TYPE = "citychain.oracle.v1.MsgDeclareFeed"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_OPERATOR

    feed_id: str
    description: str
    unit: str
    scale: int
    aggregation: str
    coverage: tuple[str, ...]

    def validate_basic(self) -> None:
        validate_feed_id_field(self.feed_id, "feed_id")
        validate_text_field(self.description, "description", max_length=MAX_DESCRIPTION)
        if not self.description.isprintable():
            raise InvalidMessageError("description must not contain control characters",
                                      field="description")
        if not is_unit(self.unit):
            raise InvalidMessageError(f"unit must be 1 to 8 letters or digits (a UN/CEFACT code "
                                      f"such as GQ or C62), got {self.unit!r}", field="unit")
        if not 0 <= self.scale <= MAX_SCALE:
            raise InvalidMessageError(f"scale must be from 0 to {MAX_SCALE}, got {self.scale}",
                                      field="scale")
        if self.aggregation not in AGGREGATIONS:
            raise InvalidMessageError(f"aggregation must be one of {', '.join(AGGREGATIONS)}; "
                                      f"got {self.aggregation!r}", field="aggregation")
        if not 1 <= len(self.coverage) <= MAX_FEED_COVERAGE:
            raise InvalidMessageError(f"coverage must list 1 to {MAX_FEED_COVERAGE} codes, got "
                                      f"{len(self.coverage)}", field="coverage")
        for index, code in enumerate(self.coverage):
            where = f"coverage[{index}]"
            validate_code_field(code, where)
            if index and code <= self.coverage[index - 1]:
                raise InvalidMessageError(f"{where} must come after {self.coverage[index - 1]!r}:"
                                          " codes are sorted, without repeats", field=where)


@dataclass(frozen=True)
class MsgPublishFeedValue(Msg):
    """Publish the feed's value over [window_start_ms, window_end_ms), computed from the
    anchored batches ``source_batch_ids`` (64-hex ids, sorted)."""

    TYPE = "citychain.oracle.v1.MsgPublishFeedValue"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_OPERATOR

    feed_id: str
    window_start_ms: int
    window_end_ms: int
    value: int
    source_batch_ids: tuple[str, ...]

    def validate_basic(self) -> None:
        validate_feed_id_field(self.feed_id, "feed_id")
        validate_time_field(self.window_start_ms, "window_start_ms")
        validate_time_field(self.window_end_ms, "window_end_ms")
        if self.window_end_ms <= self.window_start_ms:
            raise InvalidMessageError("window_end_ms must be after window_start_ms",
                                      field="window_end_ms")
        if not MIN_INT <= self.value <= MAX_INT:
            raise InvalidMessageError("value must be within ±(2**63 - 1)", field="value")
        parse_hash_list(self.source_batch_ids, "source_batch_ids", MAX_FEED_SOURCES)


MESSAGES: tuple[type[Msg], ...] = (
    MsgRegisterDevice,
    MsgUpdateDevice,
    MsgDecommissionDevice,
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgPublishFeedValue,
)
