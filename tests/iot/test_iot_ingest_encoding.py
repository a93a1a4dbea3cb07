"""The gateway's fast paths for a reading equal the general ones: its signing bytes and id
(written field by field) equal the codec's encoding, its JSON parse reads exactly what
``json.loads`` reads, refusing the same payloads for the same reasons, and the regular
expression for payloads in the devices' own form reads what the general path reads."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citychain.core import codec
from citychain.core.crypto import domain_bytes
from citychain.core.errors import DecodeError
from citychain.core.hashing import sha256
from citychain.iot.reading import (
    _WIRE_FORM,
    BAD_SCHEMA,
    MALFORMED_JSON,
    MAX_SEQ,
    MAX_VALUE,
    READING_DOMAIN,
    Reading,
    ReadingRejectedError,
    _parse_general,
    parse_reading,
)

INTEGERS = st.one_of(
    st.integers(min_value=codec.MIN_INT, max_value=codec.MAX_INT),
    st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
                     codec.MAX_INT, -1, -24, -25, -256, -257, -65537, -2**32 - 1,
                     codec.MIN_INT]))
TEXT = st.text(max_size=300)
DEVICE = "did:city:" + "ab" * 20
SIG = "0f" * 64


def codec_sign_bytes(reading: Reading, chain_id: str) -> bytes:
    return domain_bytes(READING_DOMAIN, chain_id, codec.encode(reading.unsigned_value()))


def codec_reading_bytes(reading: Reading) -> bytes:
    return codec.encode({**reading.unsigned_value(), "sig": reading.sig})


@given(device=TEXT, stream=TEXT, seq=INTEGERS, ts_ms=INTEGERS, value=INTEGERS,
       sig=st.binary(max_size=300), chain_id=st.text(max_size=40))
def test_signing_bytes_and_id_equal_the_codec_encoding(
        device: str, stream: str, seq: int, ts_ms: int, value: int, sig: bytes,
        chain_id: str) -> None:
    reading = Reading(device, stream, seq, ts_ms, value, sig)
    try:
        expected = codec_reading_bytes(reading)
    except DecodeError:           # a lone surrogate: both refuse it
        with pytest.raises(DecodeError):
            reading.reading_bytes()
        return
    assert reading.reading_bytes() == expected
    assert reading.reading_id == sha256(expected)
    assert reading.sign_bytes(chain_id) == codec_sign_bytes(reading, chain_id)


def test_fields_outside_the_fast_path_go_through_the_codec() -> None:
    flag = Reading(DEVICE, "pm25", True, 1, 2, b"\x01")           # a bool encodes as CBOR true
    assert flag.reading_bytes() == codec_reading_bytes(flag)
    assert flag.sign_bytes("c") == codec_sign_bytes(flag, "c")
    for too_big in (Reading(DEVICE, "pm25", 2**64, 1, 2, b""),
                    Reading(DEVICE, "pm25", 1, 1, -2**64 - 1, b""),
                    Reading(DEVICE + "\ud800", "pm25", 1, 1, 2, b"")):
        with pytest.raises(DecodeError):
            too_big.reading_bytes()
        with pytest.raises(DecodeError):
            too_big.sign_bytes("c")


def test_a_stored_id_is_not_recomputed() -> None:
    stored = Reading.stored(DEVICE, "pm25", 1, 2, 3, b"\x00" * 64, b"\x07" * 32)
    assert stored.reading_id == b"\x07" * 32


def payload(**changes: object) -> dict[str, object]:
    return {"device": DEVICE, "stream": "pm25", "seq": 1, "ts_ms": 2, "value": 3, "sig": SIG,
            **changes}


@pytest.mark.parametrize("data", [
    json.dumps(payload()).encode(),
    b"  " + json.dumps(payload()).encode() + b"\n",                # whitespace around
    json.dumps(payload()).encode("utf-16"),                         # with a BOM
    json.dumps(payload()).encode("utf-16-le"),
    json.dumps(payload()).encode("utf-32"),
    b"\xef\xbb\xbf" + json.dumps(payload()).encode(),               # UTF-8 BOM
    json.dumps(payload(), indent=1).encode(),
    json.dumps(payload(stream="pm\u00e925")).encode(),               # escaped: bad stream
    json.dumps(payload(stream="pm\u00e925"), ensure_ascii=False).encode(),
    json.dumps(payload(device="did:city:\ud800")).encode(),         # an escaped surrogate
    json.dumps(payload()).encode()[:-1] + b"\xed\xa0\x80}",         # a raw surrogate
    json.dumps(payload()).encode() + b"{}",                          # extra data
    json.dumps(payload()).encode()[:-1] + b",}",
    b'{"device":1}x}',
    json.dumps(payload(seq=True)).encode(),
    json.dumps(payload(value=1.0)).encode(),
    json.dumps(payload(extra=1)).encode(),
    json.dumps([payload()]).encode(),
    b"{}", b"{", b"}", b"", b"{\x00}", b"\xff{}",
])
def test_the_json_fast_path_reads_what_json_loads_reads(data: bytes) -> None:
    try:
        expected: object = json.loads(data)
    except ValueError:
        with pytest.raises(ReadingRejectedError) as refused:
            parse_reading(data)
        assert refused.value.reason == MALFORMED_JSON
        return
    try:
        reading = parse_reading(data)
    except ReadingRejectedError as exc:
        # what json.loads read is refused too (written back as ASCII JSON, which both read
        # alike)
        assert exc.reason == BAD_SCHEMA
        with pytest.raises(ReadingRejectedError) as again:
            parse_reading(json.dumps(expected).encode())
        assert again.value.reason == BAD_SCHEMA
        return
    assert expected == {**reading.unsigned_value(), "sig": reading.sig.hex()}


def _outcome(parse: Callable[[], Reading]) -> Reading | str:
    try:
        return parse()
    except ReadingRejectedError as exc:
        return exc.reason


WIRE_INTEGERS = st.one_of(INTEGERS, st.sampled_from([MAX_SEQ + 1, -MAX_VALUE - 1, 10**19,
                                                    -(10**19)]))


@given(seq=WIRE_INTEGERS, ts_ms=WIRE_INTEGERS, value=WIRE_INTEGERS,
       device=st.sampled_from([DEVICE, DEVICE.upper(), DEVICE + "0", "did:city:" + "g" * 40]),
       stream=st.sampled_from(["pm25", "a", "A" + "b" * 31, "A" + "b" * 32, "1pm", "p-m"]),
       sig=st.sampled_from([SIG, SIG.upper(), SIG[:-2], SIG + "00"]),
       topic=st.sampled_from([None, f"city/{DEVICE}/pm25", f"city/{DEVICE}/no2", "city"]),
       cut=st.integers(min_value=0, max_value=400), insert=st.sampled_from(["", " ", "0", "-"]))
def test_the_wire_form_path_reads_what_the_general_path_reads(
        seq: int, ts_ms: int, value: int, device: str, stream: str, sig: str,
        topic: str | None, cut: int, insert: str) -> None:
    text = json.dumps({"device": device, "stream": stream, "seq": seq, "ts_ms": ts_ms,
                       "value": value, "sig": sig}, sort_keys=True, separators=(",", ":"))
    data = (text[:cut] + insert + text[cut:]).encode()
    assert _outcome(lambda: parse_reading(data, topic)) == \
        _outcome(lambda: _parse_general(data, topic))


def test_a_device_s_own_payload_takes_the_wire_form_path() -> None:
    reading = Reading(DEVICE, "pm25", 7, 1_700_000_000_000, -42, bytes.fromhex(SIG))
    data = reading.to_json().encode()
    assert _WIRE_FORM.fullmatch(data) is not None
    assert parse_reading(data, reading.topic) == reading == _parse_general(data, reading.topic)
