"""NGSI-LD read API (a subset of ETSI GS CIM 009) over the IoT gateway's reading store.

One entity per device that has stored readings: ``urn:ngsi-ld:<Type>:<address>`` with its Smart
Data Models type and attributes named from its streams (:data:`ATTRIBUTE_MAPPINGS`), each value
linked to its reading, batch and anchoring receipt. Readings come from the off-chain store
(read-only); device records and anchors from the node's RPC (never the state database).
Notifications are derived from anchored batches in height order, so a consumer replays from any
height; push subscriptions over the same sequence are in ngsi_subscriptions.py. See
docs/adr/0009-ngsi-ld.md.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from citychain.client.rpc import NodeClient, RpcError
from citychain.core import codec
from citychain.core.simple_merkle import inclusion_proof
from citychain.iot.store import (
    ANCHORED,
    Batch,
    ReadingStoreUnavailableError,
    ReadOnlyReadingStore,
    StoredReading,
)

__all__ = [
    "ATTRIBUTE_MAPPINGS",
    "CORE_CONTEXT",
    "AttributeMapping",
    "NgsiChain",
    "NgsiError",
    "NgsiServer",
    "NodeDirectory",
    "create_ngsi_app",
    "entity_id",
    "parse_q",
]

API_PREFIX = "/ngsi-ld/v1"
READINGS_PREFIX = "/citychain/v1"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_LAST_N = 1000
REPLAY_SUBSCRIPTION = "urn:ngsi-ld:Subscription:citychain-replay"
DEFAULT_DEVICE_TTL = 5.0

_ENTITY_ID = re.compile(r"urn:ngsi-ld:([A-Za-z][A-Za-z0-9]*):([0-9a-f]{40})")
_READING_ID = re.compile(r"[0-9a-f]{64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class AttributeMapping:
    """How a stream of a device type appears in NGSI-LD: the Smart Data Models attribute name,
    the power of ten the stream's integer is scaled by (``value = raw / 10**scale``), the
    UN/CEFACT ``unitCode`` of the shown value (None: the stream's declared unit), and, for an
    enumerated attribute, the text of each raw integer 0, 1, 2, ..."""

    attribute: str
    scale: int = 0
    unit_code: str | None = None
    values: tuple[str, ...] = ()


ATTRIBUTE_MAPPINGS: dict[tuple[str, str], AttributeMapping] = {
    ("AirQualityObserved", "pm25"): AttributeMapping("pm25", 0, "GQ"),
    ("AirQualityObserved", "pm10"): AttributeMapping("pm10", 0, "GQ"),
    ("AirQualityObserved", "no2"): AttributeMapping("no2", 0, "GQ"),
    ("AirQualityObserved", "o3"): AttributeMapping("o3", 0, "GQ"),
    ("AirQualityObserved", "so2"): AttributeMapping("so2", 0, "GQ"),
    ("AirQualityObserved", "co"): AttributeMapping("co", 0, "GQ"),
    ("AirQualityObserved", "temp"): AttributeMapping("temperature", 1, "CEL"),
    ("AirQualityObserved", "humidity_bp"): AttributeMapping("relativeHumidity", 4, "C62"),
    ("WasteContainer", "fill_bp"): AttributeMapping("fillingLevel", 4, "C62"),
    ("WasteContainer", "temp"): AttributeMapping("temperature", 1, "CEL"),
    ("WasteContainer", "weight"): AttributeMapping("cargoWeight", 0, "KGM"),
    ("WasteContainer", "status"): AttributeMapping(
        "status", 0, None, ("ok", "lidOpen", "dropped", "moved", "vandalized", "burning",
                            "unknown")),
    ("StreetLight", "status"): AttributeMapping(
        "status", 0, None, ("ok", "defectiveLamp", "columnIssue", "brokenLantern")),
    ("StreetLight", "power"): AttributeMapping("powerState", 0, None,
                                               ("off", "on", "low", "bootingUp")),
    ("StreetLight", "level_bp"): AttributeMapping("illuminanceLevel", 4, "C62"),
    ("Vehicle", "speed"): AttributeMapping("speed", 1, "KMH"),
    ("Vehicle", "heading"): AttributeMapping("heading", 0, "DD"),
    ("Vehicle", "delay"): AttributeMapping("delay", 0, "SEC"),
    ("Vehicle", "fill_bp"): AttributeMapping("fillingLevel", 4, "C62"),
    ("ParkingSpot", "occupied"): AttributeMapping("status", 0, None,
                                                  ("free", "occupied", "closed", "unknown")),
    ("NoiseLevelObserved", "laeq"): AttributeMapping("LAeq", 1, "2N"),
    ("WeatherObserved", "temp"): AttributeMapping("temperature", 1, "CEL"),
    ("WeatherObserved", "humidity_bp"): AttributeMapping("relativeHumidity", 4, "C62"),
    ("WeatherObserved", "precip"): AttributeMapping("precipitation", 1, "MMT"),
    ("TrafficFlowObserved", "count"): AttributeMapping("intensity", 0, "C62"),
    ("TrafficFlowObserved", "speed"): AttributeMapping("averageVehicleSpeed", 1, "KMH"),
    ("TrafficFlowObserved", "occupancy_bp"): AttributeMapping("occupancy", 4, "C62"),
}

# Smart Data Models subject of each device type (for the term URIs of the served @context).
SDM_DOMAINS: dict[str, str] = {
    "AirQualityObserved": "Environment",
    "BikeHireDockingStation": "Transportation",
    "EVChargingStation": "Transportation",
    "NoiseLevelObserved": "Environment",
    "ParkingSpot": "Parking",
    "StreetLight": "Streetlighting",
    "TrafficFlowObserved": "Transportation",
    "Vehicle": "Transportation",
    "WasteContainer": "WasteManagement",
    "WaterQualityObserved": "Environment",
    "WeatherObserved": "Weather",
}
NOT_ENTITIES = frozenset({"Gateway"})  # our own device type: an IoT gateway has no readings


def mapping_of(device_type: str, stream: str, unit: str) -> AttributeMapping:
    """The mapping of ``stream``; a stream outside the table keeps its name, scale 0 and unit."""
    return ATTRIBUTE_MAPPINGS.get((device_type, stream)) or AttributeMapping(stream, 0, unit)


def shown_value(mapping: AttributeMapping, raw: int) -> Decimal | str:
    """The attribute's value of a raw reading: enumerated text, or the exact decimal."""
    if mapping.values:
        return mapping.values[raw] if 0 <= raw < len(mapping.values) else "unknown"
    return Decimal(raw).scaleb(-mapping.scale)


def json_number(value: Decimal | str) -> Any:
    """Output only (nothing here is hashed): an integral value as int, else the shortest float
    that reads back as the same decimal."""
    if isinstance(value, str):
        return value
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def iso_ms(ms: int) -> str:
    """UNIX milliseconds as ISO 8601 UTC with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_ns(ns: int) -> str:
    return iso_ms(ns // 1_000_000)


def entity_id(device_type: str, address: str) -> str:
    return f"urn:ngsi-ld:{device_type}:{address}"


def did_address(did: str) -> str:
    return did.rsplit(":", 1)[-1]


# ---------------------------------------------------------------------------------- errors
class NgsiError(Exception):
    """An NGSI-LD error: ``kind`` is the last segment of the spec's type URI."""

    STATUS = {"BadRequestData": 400, "InvalidRequest": 400, "ResourceNotFound": 404,
              "InternalError": 500, "OperationNotSupported": 422,
              "AlreadyExists": 409}

    def __init__(self, kind: str, title: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.title = title
        self.detail = detail

    @property
    def status(self) -> int:
        return self.STATUS.get(self.kind, 400)

    def to_value(self) -> dict[str, Any]:
        return {"type": ERROR_BASE + self.kind, "title": self.title, "status": self.status,
                "detail": self.detail}


def bad_request(detail: str, title: str = "Bad request data") -> NgsiError:
    return NgsiError("BadRequestData", title, detail)


# ---------------------------------------------------------------------------------- q filter
QUERY_OPERATORS = ("==", "!=", ">=", "<=", ">", "<")
_TERM = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)(==|!=|>=|<=|>|<)(.+)")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class QueryTerm:
    """``attribute operator value``: value a Decimal (a number) or a str (a quoted string)."""

    attribute: str
    operator: str
    value: Decimal | str

    def matches(self, actual: Decimal | str | None) -> bool:
        if actual is None or isinstance(actual, str) != isinstance(self.value, str):
            return False
        left: Any = actual
        right: Any = self.value
        if self.operator == "==":
            return bool(left == right)
        if self.operator == "!=":
            return bool(left != right)
        if self.operator == ">":
            return bool(left > right)
        if self.operator == "<":
            return bool(left < right)
        if self.operator == ">=":
            return bool(left >= right)
        return bool(left <= right)


def parse_q(text: str) -> tuple[QueryTerm, ...]:
    """Parse the supported subset of the NGSI-LD query language: terms ``attr==v``, ``!=``,
    ``>``, ``<``, ``>=``, ``<=`` joined by ``;`` (AND); ``v`` a number or a double-quoted
    string. OR (``|``), parentheses, ranges, lists, patterns and paths are refused.

    Raises:
        NgsiError: BadRequestData naming the term that is not in the subset.
    """
    if not text:
        raise bad_request("q is empty", "Invalid query")
    if any(c in text for c in "|()") or "~=" in text:
        raise bad_request("q supports only terms joined by ';' (AND): OR '|', parentheses and "
                          "patterns are not supported", "Invalid query")
    terms = []
    for part in text.split(";"):
        match = _TERM.fullmatch(part.strip())
        if match is None:
            raise bad_request(f"q term {part!r} is not 'attribute<op>value' with op one of "
                              f"{', '.join(QUERY_OPERATORS)}", "Invalid query")
        name, operator, raw = match.groups()
        value: Decimal | str
        if len(raw) >= 2 and raw[0] == raw[-1] == '"' and '"' not in raw[1:-1]:
            value = raw[1:-1]
        elif _NUMBER.fullmatch(raw):
            try:
                value = Decimal(raw)
            except InvalidOperation:
                raise bad_request(f"q value {raw!r} is not a number", "Invalid query") from None
        else:
            raise bad_request(f"q value {raw!r} must be a number or a double-quoted string",
                              "Invalid query")
        terms.append(QueryTerm(name, operator, value))
    return tuple(terms)


# ---------------------------------------------------------------------------------- chain
class NgsiChain(Protocol):
    """What the NGSI-LD server asks of the chain (its own node, trusted like the gateway's)."""

    def device(self, did: str) -> dict[str, Any] | None:
        """The ``/oracle/device`` record of ``did`` or None."""
        ...

    def anchor(self, batch_id: bytes) -> dict[str, Any] | None:
        """The ``/oracle/anchor`` record of ``batch_id`` or None (not anchored)."""
        ...


class NodeDirectory:
    """Device records (cached ``ttl`` seconds) and anchors (cached once found: an anchor never
    changes) through the node's RPC."""

    def __init__(self, node_url: str, *, ttl: float = DEFAULT_DEVICE_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = NodeClient(node_url, timeout=30.0)
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._anchors: dict[bytes, dict[str, Any]] = {}

    def close(self) -> None:
        self._client.close()

    def _query(self, path: str, params: dict[str, Any]) -> Any:
        with self._lock:
            answer = self._client.query(path, params)
        if not answer.ok:
            raise NgsiError("InternalError", "Node refused a query",
                            f"{path}: {answer.codespace}/{answer.code} {answer.log}")
        return codec.decode(answer.value)

    def device(self, did: str) -> dict[str, Any] | None:
        now = self._clock()
        cached = self._devices.get(did)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        value: dict[str, Any] | None = self._query("/oracle/device", {"did": did})
        self._devices[did] = (now, value)
        return value

    def anchor(self, batch_id: bytes) -> dict[str, Any] | None:
        found = self._anchors.get(batch_id)
        if found is not None:
            return found
        value: dict[str, Any] | None = self._query(
            "/oracle/anchor", {"batch_id": batch_id.hex(), "devices": 0})  # receipts only
        if value is not None:
            self._anchors[batch_id] = value
        return value


# ---------------------------------------------------------------------------------- entities
@dataclass
class Device:
    """A device as an entity: its DID, type, record and stream units."""

    did: str
    device_type: str
    record: dict[str, Any]

    @property
    def entity_id(self) -> str:
        return entity_id(self.device_type, did_address(self.did))

    def mapping(self, stream: str) -> AttributeMapping:
        units = {s["name"]: s["unit"] for s in self.record["streams"]}
        return mapping_of(self.device_type, stream, units.get(stream, ""))


@dataclass
class Receipts:
    """Per request: each batch's anchoring receipt (or pending), looked up once."""

    store: ReadOnlyReadingStore
    chain: NgsiChain
    _seen: dict[bytes, dict[str, Any] | None] = field(default_factory=dict)

    def receipt(self, batch_id: bytes) -> dict[str, Any] | None:
        if batch_id not in self._seen:
            self._seen[batch_id] = self._lookup(batch_id)
        return self._seen[batch_id]

    def _lookup(self, batch_id: bytes) -> dict[str, Any] | None:
        batch = self.store.get_batch(batch_id)
        if batch is None or batch.status != ANCHORED:
            return None
        anchor = self.chain.anchor(batch_id)
        if anchor is None or anchor["merkle_root"] != batch.merkle_root.hex():
            return None  # the store says anchored; only the chain's word counts
        return {"height": int(anchor["height"]), "txHash": batch.tx_hash or None,
                "merkleRoot": anchor["merkle_root"], "batchId": batch_id.hex(),
                "blockTime": iso_ns(int(anchor["time_ns"]))}

    def provenance(self, stored: StoredReading) -> dict[str, Any]:
        reading = stored.reading
        receipt = None if stored.batch_id is None else self.receipt(stored.batch_id)
        return {"type": "Property", "value": {
            "readingId": reading.reading_id.hex(), "device": reading.device,
            "stream": reading.stream, "seq": reading.seq, "rawValue": reading.value,
            "batchId": None if stored.batch_id is None else stored.batch_id.hex(),
            "status": "pending" if receipt is None else "anchored", "anchor": receipt}}


def instance(device: Device, stored: StoredReading, receipts: Receipts) -> dict[str, Any]:
    """One NGSI-LD Property (instance) of a reading."""
    reading = stored.reading
    mapping = device.mapping(reading.stream)
    out: dict[str, Any] = {"type": "Property",
                           "value": json_number(shown_value(mapping, reading.value)),
                           "observedAt": iso_ms(reading.ts_ms)}
    if mapping.unit_code:
        out["unitCode"] = mapping.unit_code
    out["instanceId"] = f"urn:ngsi-ld:Reading:{reading.reading_id.hex()}"
    out["provenance"] = receipts.provenance(stored)
    return out


def location(device: Device) -> dict[str, Any] | None:
    place = device.record["location"]
    if not place["has_coordinates"]:
        return None
    lon = json_number(Decimal(int(place["longitude_udeg"])).scaleb(-6))
    lat = json_number(Decimal(int(place["latitude_udeg"])).scaleb(-6))
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def entity_head(device: Device) -> dict[str, Any]:
    out: dict[str, Any] = {"id": device.entity_id, "type": device.device_type}
    place = location(device)
    if place is not None:
        out["location"] = place
    return out


def wanted(name: str, attrs: frozenset[str] | None) -> bool:
    return attrs is None or name in attrs


class EntityService:
    """Entity answers from the store and the chain (one instance per app)."""

    def __init__(self, store: ReadOnlyReadingStore, chain: NgsiChain) -> None:
        self.store = store
        self.chain = chain

    def devices(self) -> list[Device]:
        """Devices with stored readings that the chain knows, by entity id."""
        found = []
        for did in sorted(self.store.device_progress()):
            device = self.device(did)
            if device is not None:
                found.append(device)
        return sorted(found, key=lambda d: d.entity_id)

    def device(self, did: str) -> Device | None:
        record = self.chain.device(did)
        if record is None or record["device_type"] in NOT_ENTITIES:
            return None
        return Device(did, str(record["device_type"]), record)

    def by_id(self, text: str) -> Device:
        """Raises: NgsiError BadRequestData (not an entity id) or ResourceNotFound."""
        match = _ENTITY_ID.fullmatch(text)
        if match is None:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", text):
                raise bad_request(f"{text!r} is not a URI", "Invalid entity id")
            raise not_found(text)
        device = self.device(f"did:city:{match.group(2)}")
        if device is None or device.device_type != match.group(1) or not self.store.device_readings(
                device.did, last=1):
            raise not_found(text)
        return device

    def select(self, types: frozenset[str] | None, ids: frozenset[str] | None,
               pattern: re.Pattern[str] | None) -> list[Device]:
        return [d for d in self.devices()
                if (types is None or d.device_type in types)
                and (ids is None or d.entity_id in ids)
                and (pattern is None or pattern.fullmatch(d.entity_id))]

    def latest(self, device: Device) -> dict[str, StoredReading]:
        """attribute name -> its newest reading."""
        out: dict[str, StoredReading] = {}
        for stored in self.store.latest_readings(device.did):
            name = device.mapping(stored.reading.stream).attribute
            current = out.get(name)
            if current is None or stored.reading.ts_ms > current.reading.ts_ms:
                out[name] = stored
        return out

    def matches(self, device: Device, terms: Sequence[QueryTerm]) -> bool:
        if not terms:
            return True  # no q: every selected entity, without reading its values
        latest = self.latest(device)
        for term in terms:
            stored = latest.get(term.attribute)
            actual = None if stored is None else shown_value(
                device.mapping(stored.reading.stream), stored.reading.value)
            if not term.matches(actual):
                return False
        return True

    def entity(self, device: Device, attrs: frozenset[str] | None,
               receipts: Receipts) -> dict[str, Any]:
        out = entity_head(device)
        if "location" in out and not wanted("location", attrs):
            del out["location"]
        for name, stored in sorted(self.latest(device).items()):
            if wanted(name, attrs):
                out[name] = instance(device, stored, receipts)
        return out

    def temporal(self, device: Device, readings: Iterable[StoredReading],
                 attrs: frozenset[str] | None, receipts: Receipts,
                 simplified: bool) -> dict[str, Any]:
        out = entity_head(device)
        if "location" in out and not wanted("location", attrs):
            del out["location"]
        by_attribute: dict[str, list[StoredReading]] = {}
        for stored in readings:
            name = device.mapping(stored.reading.stream).attribute
            if wanted(name, attrs):
                by_attribute.setdefault(name, []).append(stored)
        for name, items in sorted(by_attribute.items()):
            items.sort(key=lambda s: s.reading.ts_ms)
            if simplified:
                out[name] = {"type": "Property", "values": [
                    [json_number(shown_value(device.mapping(s.reading.stream), s.reading.value)),
                     iso_ms(s.reading.ts_ms)] for s in items]}
            else:
                out[name] = [instance(device, s, receipts) for s in items]
        return out


def not_found(entity: str) -> NgsiError:
    return NgsiError("ResourceNotFound", "Entity not found", f"no entity {entity}")


# ---------------------------------------------------------------------------------- params
def split_list(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    items = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not items:
        raise bad_request(f"empty list {text!r}")
    return items


def int_param(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", text) or not low <= int(text) <= high:
        raise bad_request(f"{name} must be an integer {low}..{high}, got {text!r}")
    return int(text)


def time_param(text: str | None, name: str) -> int:
    """An ISO 8601 instant with a time zone, as UNIX milliseconds (no float on the way)."""
    if text is None:
        raise bad_request(f"{name} is required with this timerel")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{name} {text!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise bad_request(f"{name} {text!r} has no time zone (add Z or an offset)")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def time_window(timerel: str | None, time_at: str | None,
                end_time_at: str | None) -> tuple[int | None, int | None]:
    """``[from_ms, to_ms)`` of a temporal query: ``before`` t < timeAt, ``after`` t >= timeAt,
    ``between`` timeAt <= t < endTimeAt (no timerel: the whole history)."""
    if timerel is None:
        if time_at is not None or end_time_at is not None:
            raise bad_request("timeAt and endTimeAt need timerel")
        return None, None
    if timerel == "before":
        return None, time_param(time_at, "timeAt")
    if timerel == "after":
        return time_param(time_at, "timeAt"), None
    if timerel == "between":
        start, end = time_param(time_at, "timeAt"), time_param(end_time_at, "endTimeAt")
        if end <= start:
            raise bad_request("endTimeAt must be after timeAt")
        return start, end
    raise bad_request(f"timerel must be before, after or between, got {timerel!r}")


def id_pattern(text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise bad_request(f"idPattern is not a regular expression: {exc}") from None


# ---------------------------------------------------------------------------------- app
def context_document() -> dict[str, Any]:
    """A minimal user @context: each type and attribute this server emits, as a Smart Data
    Models URI, after the NGSI-LD core context."""
    terms: dict[str, str] = {}
    for device_type, domain in sorted(SDM_DOMAINS.items()):
        terms[device_type] = f"https://smartdatamodels.org/dataModel.{domain}/{device_type}"
    for (device_type, _), mapping in sorted(ATTRIBUTE_MAPPINGS.items()):
        domain = SDM_DOMAINS[device_type]
        terms.setdefault(mapping.attribute,
                         f"https://smartdatamodels.org/dataModel.{domain}/{mapping.attribute}")
    terms["provenance"] = "urn:citychain:ngsi-ld:provenance"
    return {"@context": [CORE_CONTEXT, terms]}


def create_ngsi_app(store: ReadOnlyReadingStore, chain: NgsiChain, *,
                    context_url: str | None = None) -> FastAPI:
    """The NGSI-LD app over ``store`` (open it read-only) and ``chain``. ``context_url`` is the
    absolute URL of the served @context for Link headers (default: the request's own base)."""
    app = FastAPI(title="citychain NGSI-LD (read subset)", docs_url=None, redoc_url=None)
    service = EntityService(store, chain)
    app.state.ngsi = service

    def link_of(request: Request) -> str:
        url = context_url or str(request.base_url).rstrip("/") + API_PREFIX + "/context.jsonld"
        return f'<{url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'

    def respond(request: Request, body: Any, headers: dict[str, str] | None = None
                ) -> JSONResponse:
        out = dict(headers or {})
        if "application/ld+json" in request.headers.get("accept", ""):
            url = link_of(request).split(">", 1)[0][1:]
            items = body if isinstance(body, list) else [body]
            for item in items:
                if isinstance(item, dict):
                    item["@context"] = url
            return JSONResponse(body, media_type="application/ld+json", headers=out)
        out["Link"] = link_of(request)
        return JSONResponse(body, headers=out)

    @app.exception_handler(NgsiError)
    async def on_ngsi_error(request: Request, exc: NgsiError) -> JSONResponse:
        return JSONResponse(exc.to_value(), status_code=exc.status)

    @app.exception_handler(RpcError)
    async def on_node_error(request: Request, exc: RpcError) -> JSONResponse:
        error = NgsiError("InternalError", "Node unavailable", f"the node did not answer: {exc}")
        return JSONResponse(error.to_value(), status_code=error.status)

    @app.exception_handler(ReadingStoreUnavailableError)
    async def on_store_error(request: Request, exc: ReadingStoreUnavailableError
                             ) -> JSONResponse:
        error = NgsiError("InternalError", "Reading store unavailable", str(exc))
        return JSONResponse(error.to_value(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(bad_request(str(exc.errors()[:1])).to_value(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "ResourceNotFound" if exc.status_code == 404 else "InvalidRequest"
        error = NgsiError(kind, str(exc.detail), f"{request.method} {request.url.path}")
        return JSONResponse({**error.to_value(), "status": exc.status_code},
                            status_code=exc.status_code)

    @app.get(API_PREFIX + "/context.jsonld")
    def get_context() -> JSONResponse:
        return JSONResponse(context_document(), media_type="application/ld+json")

    @app.get(API_PREFIX + "/entities")
    def query_entities(request: Request, type: str | None = None, id: str | None = None,
                       idPattern: str | None = None, attrs: str | None = None,
                       q: str | None = None, limit: str | None = None,
                       offset: str | None = None, count: str | None = None) -> JSONResponse:
        """Entities by type / id / idPattern, filtered by ``q`` over the latest values."""
        terms = parse_q(q) if q is not None else ()
        first, size = page(offset, limit)
        selected = [d for d in service.select(split_list(type), split_list(id),
                                              id_pattern(idPattern))
                    if service.matches(d, terms)]
        receipts = Receipts(store, chain)
        wanted_attrs = split_list(attrs)
        body = [service.entity(d, wanted_attrs, receipts) for d in selected[first:first + size]]
        headers = {"NGSILD-Results-Count": str(len(selected))} if count == "true" else None
        return respond(request, body, headers)

    @app.get(API_PREFIX + "/entities/{entity}")
    def get_entity(request: Request, entity: str, attrs: str | None = None) -> JSONResponse:
        device = service.by_id(entity)
        return respond(request, service.entity(device, split_list(attrs),
                                               Receipts(store, chain)))

    @app.get(API_PREFIX + "/temporal/entities/{entity}")
    def get_temporal(request: Request, entity: str, attrs: str | None = None,
                     timerel: str | None = None, timeAt: str | None = None,
                     endTimeAt: str | None = None, lastN: str | None = None,
                     options: str | None = None) -> JSONResponse:
        device = service.by_id(entity)
        start, end = time_window(timerel, timeAt, endTimeAt)
        last = None if lastN is None else int_param(lastN, "lastN", 1, 1, MAX_LAST_N)
        readings = store.device_readings(device.did, from_ms=start, to_ms=end, last=last)
        return respond(request, service.temporal(device, readings, split_list(attrs),
                                                 Receipts(store, chain),
                                                 simplified_option(options)))

    @app.get(API_PREFIX + "/temporal/entities")
    def query_temporal(request: Request, type: str | None = None, id: str | None = None,
                       idPattern: str | None = None, attrs: str | None = None,
                       q: str | None = None, timerel: str | None = None,
                       timeAt: str | None = None, endTimeAt: str | None = None,
                       lastN: str | None = None, options: str | None = None,
                       limit: str | None = None, offset: str | None = None) -> JSONResponse:
        """Temporal representation of the selected entities (``q`` over the latest values)."""
        terms = parse_q(q) if q is not None else ()
        start, end = time_window(timerel, timeAt, endTimeAt)
        last = None if lastN is None else int_param(lastN, "lastN", 1, 1, MAX_LAST_N)
        first, size = page(offset, limit)
        simplified = simplified_option(options)
        selected = [d for d in service.select(split_list(type), split_list(id),
                                              id_pattern(idPattern))
                    if service.matches(d, terms)]
        receipts = Receipts(store, chain)
        wanted_attrs = split_list(attrs)
        body = [service.temporal(d, store.device_readings(d.did, from_ms=start, to_ms=end,
                                                          last=last),
                                 wanted_attrs, receipts, simplified)
                for d in selected[first:first + size]]
        return respond(request, body)

    @app.get(API_PREFIX + "/notifications")
    def replay_notifications(request: Request, type: str | None = None,
                             from_height: str | None = None,
                             limit: str | None = None) -> JSONResponse:
        """Notifications derived from anchored batches at heights >= ``from_height``, in
        height order; ``nextFromHeight`` resumes without gap or repeat."""
        start = int_param(from_height, "from_height", 1, 0, 2**63 - 1)
        size = int_param(limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        types = split_list(type)
        notifications, next_height = replay(service, store, chain, start, size, types)
        return respond(request, {"notifications": notifications,
                                 "nextFromHeight": next_height})

    @app.get(READINGS_PREFIX + "/readings/{reading_id}")
    def get_reading_proof(reading_id: str) -> JSONResponse:
        """A reading, its batch's Merkle inclusion proof and the batch's anchor receipt, for a
        client to check itself (``citychain.client.readings``): nothing here is verified."""
        return JSONResponse(reading_proof(store, reading_id))

    return app


def reading_proof(store: ReadOnlyReadingStore, text: str) -> dict[str, Any]:
    """The answer of ``GET /citychain/v1/readings/{id}``: ``status`` is ``anchored`` when the
    store records the batch's anchor, else ``pending`` (``batch`` None until sealed)."""
    if not _READING_ID.fullmatch(text):
        raise bad_request("a reading id is 64 lowercase hex digits", "Invalid reading id")
    rid = bytes.fromhex(text)
    stored = store.get_reading(rid)
    if stored is None:
        raise NgsiError("ResourceNotFound", "Reading not found", f"no reading {text}")
    reading = stored.reading
    batch = None if stored.batch_id is None else store.get_batch(stored.batch_id)
    body: dict[str, Any] = {
        "reading_id": text, "status": "pending", "verified": False,
        "reading": {**reading.unsigned_value(), "sig": reading.sig.hex()},
        "batch": None, "anchor": None}
    if batch is None:
        return body
    leaves = list(batch.leaves)
    index = leaves.index(rid) if rid in leaves else -1
    body["batch"] = {"batch_id": batch.batch_id.hex(), "merkle_root": batch.merkle_root.hex(),
                     "index": index, "total": len(leaves),
                     "aunts": [] if index < 0 else
                     [a.hex() for a in inclusion_proof(leaves, index)]}
    if batch.status == ANCHORED:
        body["status"] = "anchored"
        body["anchor"] = {"height": batch.height, "tx_hash": batch.tx_hash or None}
    return body


def page(offset: str | None, limit: str | None) -> tuple[int, int]:
    return (int_param(offset, "offset", 0, 0, 2**63 - 1),
            int_param(limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT))


def simplified_option(options: str | None) -> bool:
    chosen = split_list(options) or frozenset()
    unknown = chosen - {"temporalValues", "normalized"}
    if unknown:
        raise bad_request(f"options {sorted(unknown)} not supported (temporalValues only)")
    return "temporalValues" in chosen


def replay(service: EntityService, store: ReadOnlyReadingStore, chain: NgsiChain, start: int,
           size: int, types: frozenset[str] | None) -> tuple[list[dict[str, Any]], int]:
    """Up to ``size`` anchored batches from height ``start`` (all of the last height taken),
    each as a notification of the entities (of ``types``) it changed; a batch with none makes
    no notification. Returns them and the next height to ask from: one past the last height
    examined, or ``start`` when none was (never the tip: a batch whose anchor the gateway
    records late, after a crash, is still served when it is recorded, since anchoring goes in
    order and no later batch can have been recorded before it)."""
    anchored: list[tuple[int, int, Batch]] = []
    for n, batch in enumerate(store.batches(ANCHORED)):
        if batch.height >= start:
            anchored.append((batch.height, n, batch))
    anchored.sort(key=lambda item: (item[0], item[1]))
    chosen: list[Batch] = []
    for height, _, batch in anchored:
        if len(chosen) >= size and chosen[-1].height != height:
            break
        chosen.append(batch)
    receipts = Receipts(store, chain)
    out = []
    next_height = start
    for batch in chosen:
        receipt = receipts.receipt(batch.batch_id)
        if receipt is None:   # not on chain after all: stop before it, ask again later
            break
        next_height = batch.height + 1
        data = []
        for did in batch.devices:
            device = service.device(did)
            if device is None or (types is not None and device.device_type not in types):
                continue
            readings = [r for r in (store.get_reading(leaf) for leaf in batch.leaves)
                        if r is not None and r.reading.device == did]
            data.append(service.temporal(device, readings, None, receipts, False))
        if not data:          # nothing of the wanted types: no notification, the cursor moves
            continue
        out.append({"id": f"urn:ngsi-ld:Notification:{batch.batch_id.hex()}",
                    "type": "Notification", "subscriptionId": REPLAY_SUBSCRIPTION,
                    "notifiedAt": receipt["blockTime"], "height": receipt["height"],
                    "anchor": receipt, "data": data})
    return out, next_height


# ---------------------------------------------------------------------------------- server
class NgsiServer:
    """The NGSI-LD app under uvicorn in a background thread (the CLI and tests)."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int) -> None:
        self.host = host
        self.port = port
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                     log_level="warning", access_log=False,
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="ngsi", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> NgsiServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the NGSI-LD server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def wait(self, stopping: threading.Event) -> None:
        """Block until ``stopping`` is set or the server thread ends."""
        while not stopping.wait(0.5) and self._thread.is_alive():
            pass
