"""Oracle state records (device, stream, anchor, feed, feed value), fixed vocabularies and ids.

Every number is an integer: coordinates in micro-degrees, timestamps in UNIX milliseconds,
stream ranges and feed values in the stream's or feed's own scaled unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from citychain.core import codec
from citychain.core.hashing import sha256

# Smart Data Models entity types a device may have ("Gateway" is ours: the IoT gateway registers
# as a device of this type so it may anchor batches for its owner).
DEVICE_TYPE_GATEWAY = "Gateway"
DEVICE_TYPES: tuple[str, ...] = (
    "AirQualityObserved",
    "BikeHireDockingStation",
    "EVChargingStation",
    DEVICE_TYPE_GATEWAY,
    "NoiseLevelObserved",
    "ParkingSpot",
    "StreetLight",
    "TrafficFlowObserved",
    "Vehicle",
    "WasteContainer",
    "WaterQualityObserved",
    "WeatherObserved",
)

AGGREGATION_COUNT = "count"
AGGREGATION_MEAN = "mean"
AGGREGATION_SUM = "sum"
AGGREGATION_MIN = "min"
AGGREGATION_MAX = "max"
AGGREGATION_RATIO_BP = "ratio_bp"
AGGREGATIONS: tuple[str, ...] = (AGGREGATION_COUNT, AGGREGATION_MEAN, AGGREGATION_SUM,
                                 AGGREGATION_MIN, AGGREGATION_MAX, AGGREGATION_RATIO_BP)
MAX_BASIS_POINTS = 10_000

STATUS_REGISTERED = "registered"
STATUS_DECOMMISSIONED = "decommissioned"

HASH_SIZE = 32
MAX_INT = 2**63 - 1
MIN_INT = -(2**63 - 1)
MAX_LATITUDE_UDEG = 90_000_000
MAX_LONGITUDE_UDEG = 180_000_000
MAX_SCALE = 18
MAX_DESCRIPTION = 200

CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
STREAM_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,31}")
UNIT_PATTERN = re.compile(r"[A-Za-z0-9]{1,8}")
FEED_ID_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{2,63}")
_INTEGER_PATTERN = re.compile(r"0|-?[1-9][0-9]{0,18}")


def is_code(text: str) -> bool:
    """Return whether ``text`` is a district or line code ([A-Za-z0-9][A-Za-z0-9_.-]{0,31})."""
    return CODE_PATTERN.fullmatch(text) is not None


def is_unit(text: str) -> bool:
    """Return whether ``text`` is a unit code (UN/CEFACT style: 1 to 8 letters and digits)."""
    return UNIT_PATTERN.fullmatch(text) is not None


def is_feed_id(text: str) -> bool:
    """Return whether ``text`` is a feed id ([a-z][a-z0-9_.-]{2,63})."""
    return FEED_ID_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Stream:
    """A declared reading stream: its name, unit code and plausible integer range (inclusive)."""

    name: str
    unit: str
    minimum: int
    maximum: int

    def to_spec(self) -> str:
        """Return the message form ``name:unit:min:max``."""
        return f"{self.name}:{self.unit}:{self.minimum}:{self.maximum}"

    def to_value(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "min": self.minimum, "max": self.maximum}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> Stream:
        return cls(value["name"], value["unit"], value["min"], value["max"])


def parse_stream_spec(spec: str) -> Stream | None:
    """Parse ``name:unit:min:max`` (canonical decimal integers, min <= max), or return None."""
    parts = spec.split(":")
    if len(parts) != 4:
        return None
    name, unit, low, high = parts
    if (STREAM_NAME_PATTERN.fullmatch(name) is None or not is_unit(unit)
            or _INTEGER_PATTERN.fullmatch(low) is None
            or _INTEGER_PATTERN.fullmatch(high) is None):
        return None
    minimum, maximum = int(low), int(high)
    if not MIN_INT <= minimum <= maximum <= MAX_INT:
        return None
    return Stream(name, unit, minimum, maximum)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a device is: a district code and, optionally, WGS84 micro-degrees."""

    district: str
    has_coordinates: bool = False
    latitude_udeg: int = 0
    longitude_udeg: int = 0

    def to_value(self) -> dict[str, Any]:
        return {"district": self.district, "has_coordinates": self.has_coordinates,
                "latitude_udeg": self.latitude_udeg, "longitude_udeg": self.longitude_udeg}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> Location:
        return cls(value["district"], value["has_coordinates"], value["latitude_udeg"],
                   value["longitude_udeg"])


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device. Its key and suspension are the identity module's, not stored here.

    ``owner`` is the registering operator's address; ``updated_height`` the last change of
    location or streams; ``decommissioned_height`` is 0 while the device is registered.
    """

    address: str
    owner: str
    device_type: str
    location: Location
    streams: tuple[Stream, ...]
    registered_height: int
    updated_height: int
    status: str = STATUS_REGISTERED
    decommissioned_height: int = 0

    @property
    def decommissioned(self) -> bool:
        return self.status == STATUS_DECOMMISSIONED

    def to_bytes(self) -> bytes:
        """Return the canonical encoding (the address is in the key, not repeated here)."""
        return codec.encode({
            "owner": self.owner,
            "device_type": self.device_type,
            "location": self.location.to_value(),
            "streams": [stream.to_value() for stream in self.streams],
            "registered_height": self.registered_height,
            "updated_height": self.updated_height,
            "status": self.status,
            "decommissioned_height": self.decommissioned_height,
        })

    @classmethod
    def from_bytes(cls, address: str, data: bytes) -> Device:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(address, value["owner"], value["device_type"],
                   Location.from_value(value["location"]),
                   tuple(Stream.from_value(item) for item in value["streams"]),
                   value["registered_height"], value["updated_height"], value["status"],
                   value["decommissioned_height"])


def compute_batch_id(merkle_root: bytes, devices: tuple[str, ...], first_reading_ms: int,
                     last_reading_ms: int, reading_count: int, previous_batch_id: bytes) -> bytes:
    """Return the batch id: SHA-256 of the canonical encoding of the anchored fields.

    ``devices`` are DIDs, in the order the message lists them (sorted). The gateway computes the
    same id before it submits, so the next batch can link to it at once.
    """
    return sha256(codec.encode({
        "merkle_root": merkle_root,
        "devices": list(devices),
        "first_reading_ms": first_reading_ms,
        "last_reading_ms": last_reading_ms,
        "reading_count": reading_count,
        "previous_batch_id": previous_batch_id,
    }))


@dataclass(frozen=True, slots=True)
class Anchor:
    """An anchored batch of readings. ``devices`` are addresses (sorted); ``operator`` owns the
    devices and ``submitter`` sent the anchor (the operator itself or one of its gateways);
    ``previous_batch_id`` is empty when the batch links to none."""

    batch_id: bytes
    merkle_root: bytes
    devices: tuple[str, ...]
    first_reading_ms: int
    last_reading_ms: int
    reading_count: int
    previous_batch_id: bytes
    operator: str
    submitter: str
    height: int
    time_ns: int

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        """Return whether any reading time of the batch falls in the window [start, end)."""
        return self.first_reading_ms < end_ms and self.last_reading_ms >= start_ms

    def to_bytes(self) -> bytes:
        """Return the canonical encoding (the batch id is in the key, not repeated here)."""
        return codec.encode({
            "merkle_root": self.merkle_root,
            "devices": [bytes.fromhex(address) for address in self.devices],
            "first_reading_ms": self.first_reading_ms,
            "last_reading_ms": self.last_reading_ms,
            "reading_count": self.reading_count,
            "previous_batch_id": self.previous_batch_id,
            "operator": self.operator,
            "submitter": self.submitter,
            "height": self.height,
            "time_ns": self.time_ns,
        })

    @classmethod
    def from_bytes(cls, batch_id: bytes, data: bytes) -> Anchor:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(batch_id, value["merkle_root"],
                   tuple(raw.hex() for raw in value["devices"]), value["first_reading_ms"],
                   value["last_reading_ms"], value["reading_count"], value["previous_batch_id"],
                   value["operator"], value["submitter"], value["height"], value["time_ns"])


@dataclass(frozen=True, slots=True)
class Feed:
    """A declared feed. ``scale``: the value means ``value / 10**scale`` of ``unit``;
    ``coverage`` lists the district or line codes it covers (sorted)."""

    feed_id: str
    publisher: str
    description: str
    unit: str
    scale: int
    aggregation: str
    coverage: tuple[str, ...]
    created_height: int

    def to_bytes(self) -> bytes:
        """Return the canonical encoding (the feed id is in the key, not repeated here)."""
        return codec.encode({
            "publisher": self.publisher,
            "description": self.description,
            "unit": self.unit,
            "scale": self.scale,
            "aggregation": self.aggregation,
            "coverage": list(self.coverage),
            "created_height": self.created_height,
        })

    @classmethod
    def from_bytes(cls, feed_id: str, data: bytes) -> Feed:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(feed_id, value["publisher"], value["description"], value["unit"],
                   value["scale"], value["aggregation"], tuple(value["coverage"]),
                   value["created_height"])


@dataclass(frozen=True, slots=True)
class FeedValue:
    """One published value of a feed over the window [window_start_ms, window_end_ms).

    ``scale`` is the feed's (the value means ``value / 10**scale``); ``source_batch_ids`` name
    the anchored batches it was computed from, so anyone can recompute it; ``height`` and
    ``time_ns`` are the publishing block's.
    """

    feed_id: str
    value: int
    scale: int
    window_start_ms: int
    window_end_ms: int
    source_batch_ids: tuple[bytes, ...]
    height: int
    time_ns: int

    def to_bytes(self) -> bytes:
        """Return the canonical encoding (the feed id is in the key, not repeated here)."""
        return codec.encode({
            "value": self.value,
            "scale": self.scale,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "source_batch_ids": list(self.source_batch_ids),
            "height": self.height,
            "time_ns": self.time_ns,
        })

    @classmethod
    def from_bytes(cls, feed_id: str, data: bytes) -> FeedValue:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(feed_id, value["value"], value["scale"], value["window_start_ms"],
                   value["window_end_ms"], tuple(value["source_batch_ids"]), value["height"],
                   value["time_ns"])


def encode_uint(value: int) -> bytes:
    """Return the canonical encoding of a non-negative integer (index values)."""
    return codec.encode(value)


def decode_uint(data: bytes) -> int:
    """Decode a stored integer. Raises DecodeError/NonCanonicalError/TypeError on corrupt bytes."""
    value = codec.decode(data)
    if type(value) is not int:
        raise TypeError("stored value is not an integer")
    return value
