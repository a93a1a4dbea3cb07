"""The reading wire format: a device-signed JSON payload, its canonical bytes, id and checks.

A reading arrives on MQTT topic ``city/<device DID>/<stream>`` as JSON::

    {"device": "did:city:<address>", "stream": "pm25", "seq": 7, "ts_ms": 1700000000000,
     "value": 42, "sig": "<128 hex>"}

``sig`` is Ed25519 by the device's key over ``domain_bytes(READING_DOMAIN, chain_id,
codec.encode({"device", "stream", "seq", "ts_ms", "value"}))``; the reading id is the SHA-256 of
the canonical encoding of all six fields with ``sig`` as bytes (``reading_bytes``), so the id
(and the Merkle leaf) commits to the signature too. See docs/adr/0008-iot-gateway.md.
"""

from __future__ import annotations

import json
import re
from binascii import unhexlify
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from citychain.core import codec
from citychain.core.crypto import (
    ADDRESS_PATTERN,
    DID_PREFIX,
    PrivateKey,
    address_from_did,
    domain_bytes,
)
from citychain.core.hashing import sha256

READING_DOMAIN = "citychain/iot-reading/v1"
MAX_PAYLOAD_BYTES = 4096
MAX_SEQ = 2**63 - 1
MAX_VALUE = 2**63 - 1
TOPIC_PREFIX = "city"

_STREAM_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,31}")
_SIG_RE = re.compile(r"[0-9a-f]{128}")
_FIELDS = frozenset({"device", "stream", "seq", "ts_ms", "value", "sig"})

# Rejection reasons, stable names (counted by the gateway, listed in the ADR), in check order.
MALFORMED_JSON = "malformed_json"
OVERSIZED = "oversized"
BAD_SCHEMA = "bad_schema"
UNKNOWN_DEVICE = "unknown_device"
INACTIVE_DEVICE = "inactive_device"
UNKNOWN_STREAM = "unknown_stream"
BAD_SIGNATURE = "bad_signature"
REPLAYED = "replayed"
OUT_OF_ORDER = "out_of_order"
OUT_OF_WINDOW = "out_of_window"
OUT_OF_RANGE = "out_of_range"
REASONS = (OVERSIZED, MALFORMED_JSON, BAD_SCHEMA, UNKNOWN_DEVICE, INACTIVE_DEVICE,
           UNKNOWN_STREAM, BAD_SIGNATURE, REPLAYED, OUT_OF_ORDER, OUT_OF_WINDOW, OUT_OF_RANGE)


class ReadingRejectedError(Exception):
    """A reading failed a check; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Reading:
    """One signed reading (``value`` in the stream's scaled integer unit)."""

    device: str
    stream: str
    seq: int
    ts_ms: int
    value: int
    sig: bytes

    def unsigned_value(self) -> dict[str, Any]:
        return {"device": self.device, "stream": self.stream, "seq": self.seq,
                "ts_ms": self.ts_ms, "value": self.value}

    def sign_bytes(self, chain_id: str) -> bytes:
        """The bytes the device signs."""
        encoded = self._encoded()
        if encoded is None:
            return signing_bytes(chain_id, self.device, self.stream, self.seq, self.ts_ms,
                                 self.value)
        seq, rest = encoded
        return _sign_prefix(chain_id) + seq + rest

    def reading_bytes(self) -> bytes:
        """Canonical encoding of the signed reading (all six fields, ``sig`` as bytes)."""
        encoded = self._encoded()
        if encoded is None or type(self.sig) is not bytes:
            return codec.encode({**self.unsigned_value(), "sig": self.sig})
        seq, rest = encoded
        return b"".join((_MAP_6, seq, _KEY_SIG, codec.encode_scalar(self.sig), rest))

    def _encoded(self) -> tuple[bytes, bytes] | None:
        """Keys and values of the five signed fields as :func:`citychain.core.codec.encode`
        writes them in a map, in its key order (length first, then bytewise: seq, [sig,]
        ts_ms, value, device, stream), cut before where ``sig`` goes: (seq, the rest). None
        when a field is not a plain str or an int within the codec's range (``codec.encode``
        then says why). Computed once per object (signing bytes and id both use it)."""
        cached: tuple[bytes, bytes] | None = self.__dict__.get("encoded_fields")
        if cached is not None:
            return cached
        device, stream, seq, ts_ms, value = (
            self.device, self.stream, self.seq, self.ts_ms, self.value)
        if type(device) is not str or type(stream) is not str or type(seq) is not int or \
                type(ts_ms) is not int or type(value) is not int or \
                not codec.MIN_INT <= min(seq, ts_ms, value) <= \
                max(seq, ts_ms, value) <= codec.MAX_INT:
            return None
        try:
            tail = _device_stream_fields(device, stream)
        except UnicodeEncodeError:
            return None
        scalar = codec.encode_scalar
        encoded = (_KEY_SEQ + scalar(seq), b"".join((
            _KEY_TS_MS, scalar(ts_ms), _KEY_VALUE, scalar(value), tail)))
        self.__dict__["encoded_fields"] = encoded
        return encoded

    @property
    def reading_id(self) -> bytes:
        """SHA-256 of :meth:`reading_bytes`: the content address and the Merkle leaf (computed
        once per object: ingest stores it, sealing uses it as the leaf)."""
        cached: bytes | None = self.__dict__.get("reading_id")
        if cached is None:
            cached = self.__dict__["reading_id"] = sha256(self.reading_bytes())
        return cached

    @classmethod
    def stored(cls, device: str, stream: str, seq: int, ts_ms: int, value: int, sig: bytes,
               reading_id: bytes) -> Reading:
        """A reading loaded from the gateway's own store with the id computed when it was
        stored (sealing reads thousands per batch; :mod:`citychain.iot.verify` recomputes ids
        instead, to catch a tampered store)."""
        reading = cls(device, stream, seq, ts_ms, value, sig)
        reading.__dict__["reading_id"] = reading_id
        return reading

    @property
    def wire_payload(self) -> bytes | None:
        """The payload this reading was parsed from when it was in :meth:`to_json`'s exact form
        (what the Go verifier reads a reading from), else None."""
        payload: bytes | None = self.__dict__.get("wire_payload")
        return payload

    @property
    def topic(self) -> str:
        return f"{TOPIC_PREFIX}/{self.device}/{self.stream}"

    def to_json(self) -> str:
        """The wire payload (JSON, keys sorted, ``sig`` as lowercase hex)."""
        return json.dumps({**self.unsigned_value(), "sig": self.sig.hex()}, sort_keys=True,
                          separators=(",", ":"))


_MAP_5 = codec.map_head(5)
_MAP_6 = codec.map_head(6)
_KEY_SEQ = codec.encode_scalar("seq")
_KEY_SIG = codec.encode_scalar("sig")
_KEY_TS_MS = codec.encode_scalar("ts_ms")
_KEY_VALUE = codec.encode_scalar("value")
_KEY_DEVICE = codec.encode_scalar("device")
_KEY_STREAM = codec.encode_scalar("stream")


@lru_cache(maxsize=65_536)
def _device_stream_fields(device: str, stream: str) -> bytes:
    """The last two keys and values of the signed map (every reading of a device's stream
    repeats them, so they are encoded once)."""
    return b"".join((_KEY_DEVICE, codec.encode_scalar(device), _KEY_STREAM,
                     codec.encode_scalar(stream)))


@lru_cache(maxsize=65_536)
def _topic_of(device: str, stream: str) -> str | None:
    """The topic of a reading of ``device`` (a did:city DID) on ``stream`` (a well-formed
    name); None when either is malformed (which :func:`parse_reading` then names)."""
    if address_from_did(device) is None or not _STREAM_RE.fullmatch(stream):
        return None
    return f"{TOPIC_PREFIX}/{device}/{stream}"


@lru_cache(maxsize=16)
def _sign_prefix(chain_id: str) -> bytes:
    """What the signing bytes of every reading on ``chain_id`` start with: the domain, the
    chain id and the head of the five-field map."""
    return domain_bytes(READING_DOMAIN, chain_id, b"") + _MAP_5


def signing_bytes(chain_id: str, device: str, stream: str, seq: int, ts_ms: int,
                  value: int) -> bytes:
    """``domain || chain id || codec.encode({device, stream, seq, ts_ms, value})``."""
    return domain_bytes(READING_DOMAIN, chain_id, codec.encode(
        {"device": device, "stream": stream, "seq": seq, "ts_ms": ts_ms, "value": value}))


def sign_reading(key: PrivateKey, chain_id: str, stream: str, seq: int, ts_ms: int,
                 value: int) -> Reading:
    """Build a reading of the device ``key`` and sign it (for devices, simulators and tests)."""
    did = key.did
    sig = key.sign(signing_bytes(chain_id, did, stream, seq, ts_ms, value))
    return Reading(did, stream, seq, ts_ms, value, sig)


# The payload as Reading.to_json writes it (keys sorted, no spaces, no escapes), field by field
# as parse_reading's checks accept it, up to the integer ranges: what devices usually send.
_UINT = "0|[1-9][0-9]{0,18}"
_WIRE_FORM = re.compile((
    f'\\{{"device":"({re.escape(DID_PREFIX)}{ADDRESS_PATTERN})","seq":({_UINT}),'
    f'"sig":"({_SIG_RE.pattern})","stream":"({_STREAM_RE.pattern})","ts_ms":({_UINT}),'
    f'"value":(-?(?:{_UINT}))\\}}').encode())


def parse_reading(payload: bytes, topic: str | None = None) -> Reading:
    """Parse a wire payload (stateless checks only: size, JSON, field names and types, topic).

    A payload in :meth:`Reading.to_json`'s exact form is read by one regular expression (the
    same reading JSON decoding gives, a few microseconds sooner); any other goes through the
    JSON decoder and the checks one by one, which also name what is wrong.

    Raises:
        ReadingRejectedError: ``oversized``, ``malformed_json`` or ``bad_schema``.
    """
    match = _WIRE_FORM.fullmatch(payload)
    if match is not None:
        device, seq, sig, stream, ts_ms, value = match.groups()
        seq_, ts_ms_, value_ = int(seq), int(ts_ms), int(value)
        if seq_ <= MAX_SEQ and ts_ms_ <= MAX_SEQ and -MAX_VALUE <= value_ <= MAX_VALUE:
            did, name = device.decode(), stream.decode()
            if topic is None or topic == f"{TOPIC_PREFIX}/{did}/{name}":
                reading = Reading(did, name, seq_, ts_ms_, value_, unhexlify(sig))
                reading.__dict__["wire_payload"] = payload
                return reading
    return _parse_general(payload, topic)


def _parse_general(payload: bytes, topic: str | None) -> Reading:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ReadingRejectedError(OVERSIZED, f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    value = _load_json(payload)
    if not isinstance(value, dict) or value.keys() != _FIELDS:
        raise ReadingRejectedError(BAD_SCHEMA, f"fields must be {sorted(_FIELDS)}")
    device, stream, seq, ts_ms, number, sig = (
        value["device"], value["stream"], value["seq"], value["ts_ms"], value["value"],
        value["sig"])
    expected_topic = _topic_of(device, stream) \
        if type(device) is str and type(stream) is str else None
    if expected_topic is None:
        if type(device) is not str or address_from_did(device) is None:
            raise _schema_error("device must be a did:city DID")
        raise _schema_error("stream must match [A-Za-z][A-Za-z0-9_.]{0,31}")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise _schema_error("seq must be an integer 0..2**63-1")
    if type(ts_ms) is not int or not 0 <= ts_ms <= MAX_SEQ:
        raise _schema_error("ts_ms must be an integer 0..2**63-1")
    if type(number) is not int or not -MAX_VALUE <= number <= MAX_VALUE:
        raise _schema_error("value must be an integer within +-(2**63-1)")
    if type(sig) is not str or not _SIG_RE.fullmatch(sig):
        raise _schema_error("sig must be 128 lowercase hex digits")
    if topic is not None and topic != expected_topic:
        raise _schema_error(f"topic {topic!r} does not name the reading's device and stream")
    return Reading(device, stream, seq, ts_ms, number, bytes.fromhex(sig))


_DECODER = json.JSONDecoder()


def _load_json(payload: bytes) -> Any:
    """``json.loads(payload)``, without its encoding detection and whitespace scans for the
    usual payload (UTF-8, an object from the first byte to the last).

    Raises:
        ReadingRejectedError: ``malformed_json``.
    """
    try:
        if payload[:1] == b"{" and payload[-1:] == b"}" and payload[1:2] != b"\x00":
            # json.loads reads such bytes as UTF-8 (surrogates passed) too
            text = payload.decode("utf-8", "surrogatepass")
            value, end = _DECODER.raw_decode(text)
            if end == len(text):
                return value
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReadingRejectedError(MALFORMED_JSON, str(exc)) from None


def _schema_error(detail: str) -> ReadingRejectedError:
    return ReadingRejectedError(BAD_SCHEMA, detail)
