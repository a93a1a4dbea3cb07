"""The reading wire format pinned by a golden vector (reading_vector.json), the stateless checks
with their reason names, and how pending readings are cut into batches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from citychain.core import codec
from citychain.core.crypto import PrivateKey, domain_bytes, verify_signature
from citychain.core.simple_merkle import inclusion_proof, merkle_root, verify_inclusion
from citychain.iot.gateway import build_batch, split_batches
from citychain.iot.reading import (
    MAX_PAYLOAD_BYTES,
    READING_DOMAIN,
    Reading,
    ReadingRejectedError,
    parse_reading,
    sign_reading,
)
from citychain.modules.oracle.api import compute_batch_id

VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "reading_vector.json").read_text())


def test_golden_vector_bytes_signature_and_id() -> None:
    key = PrivateKey.from_secret(VECTOR["secret"])
    assert key.did == VECTOR["device"] and key.public_key.hex() == VECTOR["public_key"]
    assert VECTOR["domain"] == READING_DOMAIN
    unsigned = {name: VECTOR[name] for name in ("stream", "seq", "ts_ms", "value")}
    unsigned["device"] = VECTOR["device"]
    sign_bytes = domain_bytes(READING_DOMAIN, VECTOR["chain_id"], codec.encode(unsigned))
    assert sign_bytes.hex() == VECTOR["sign_bytes"]
    sig = bytes.fromhex(VECTOR["sig"])
    assert verify_signature(key.public_key, sign_bytes, sig)
    reading_bytes = codec.encode({**unsigned, "sig": sig})
    assert reading_bytes.hex() == VECTOR["reading_bytes"]
    assert hashlib.sha256(reading_bytes).hexdigest() == VECTOR["reading_id"]

    reading = sign_reading(key, VECTOR["chain_id"], VECTOR["stream"], VECTOR["seq"],
                           VECTOR["ts_ms"], VECTOR["value"])
    assert reading.sig.hex() == VECTOR["sig"]                    # Ed25519 is deterministic
    assert reading.reading_id.hex() == VECTOR["reading_id"]
    assert reading.to_json() == VECTOR["payload"] and reading.topic == VECTOR["topic"]
    assert parse_reading(VECTOR["payload"].encode(), VECTOR["topic"]) == reading

    second = VECTOR["batch"]["second"]
    other = sign_reading(key, VECTOR["chain_id"], second["stream"], second["seq"],
                         second["ts_ms"], second["value"])
    assert other.reading_id.hex() == second["reading_id"]
    leaves = [reading.reading_id, other.reading_id]
    assert merkle_root(leaves).hex() == VECTOR["batch"]["merkle_root"]
    assert verify_inclusion(merkle_root(leaves), other.reading_id, 1, 2,
                            inclusion_proof(leaves, 1))


def payload(**changes: Any) -> bytes:
    value = json.loads(VECTOR["payload"])
    value.update(changes)
    return json.dumps({k: v for k, v in value.items() if v is not None}).encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"{", "malformed_json"),
    (b"\xff\xfe", "malformed_json"),
    (b"[1, 2]", "bad_schema"),
    (b" " * (MAX_PAYLOAD_BYTES + 1), "oversized"),
    (payload(extra=1), "bad_schema"),
    (payload(sig=None), "bad_schema"),
    (payload(value=1.5), "bad_schema"),
    (payload(value=True), "bad_schema"),
    (payload(value="187"), "bad_schema"),
    (payload(seq=-1), "bad_schema"),
    (payload(device="did:city:xyz"), "bad_schema"),
    (payload(stream="pm 25"), "bad_schema"),
    (payload(sig="AB" * 64), "bad_schema"),
])
def test_invalid_payloads_name_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ReadingRejectedError) as caught:
        parse_reading(data)
    assert caught.value.reason == reason


def test_invalid_topic_not_naming_the_reading() -> None:
    with pytest.raises(ReadingRejectedError) as caught:
        parse_reading(VECTOR["payload"].encode(), "city/did:city:00/pm25")
    assert caught.value.reason == "bad_schema"


def readings(*specs: tuple[str, int]) -> list[tuple[int, Reading]]:
    keys = {name: PrivateKey.from_secret(f"split-{name}") for name, _ in specs}
    return [(n, sign_reading(keys[name], "c", "pm25", n, ts, 1))
            for n, (name, ts) in enumerate(specs)]


def test_split_batches_by_devices_span_and_count() -> None:
    items = readings(("a", 10), ("b", 11), ("a", 12), ("c", 13), ("a", 14))
    parts = split_batches(items, max_devices=2, max_span_ms=1000, max_readings=100)
    assert [[n for n, _ in part] for part in parts] == [[0, 1, 2], [3, 4]]
    parts = split_batches(items, max_devices=10, max_span_ms=2, max_readings=100)
    assert [[n for n, _ in part] for part in parts] == [[0, 1, 2], [3, 4]]
    parts = split_batches(items, max_devices=10, max_span_ms=1000, max_readings=2)
    assert [[n for n, _ in part] for part in parts] == [[0, 1], [2, 3], [4]]


def test_build_batch_fields_and_id() -> None:
    items = readings(("b", 20), ("a", 10), ("b", 30))
    batch = build_batch(items, b"\x01" * 32)
    assert batch.leaves == tuple(r.reading_id for _, r in items)
    assert batch.merkle_root == merkle_root(list(batch.leaves))
    assert batch.devices == tuple(sorted({r.device for _, r in items}))
    assert (batch.first_reading_ms, batch.last_reading_ms, batch.reading_count) == (10, 30, 3)
    assert batch.batch_id == compute_batch_id(batch.merkle_root, batch.devices, 10, 30, 3,
                                              b"\x01" * 32)
