"""The gateway's signature verifiers (citychain.iot.sigverify): the Go one gives exactly
PyNaCl's (libsodium's) verdicts, including on the inputs where Ed25519 implementations are known
to differ; answers come back in order with gaps kept; a broken or missing verifier is reported;
and a gateway whose verifier dies goes on verifying in its ingest thread."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iot_harness import Broker, DeviceClock, IotChain, running_gateway

from citychain.core.crypto import PrivateKey, verify_signature
from citychain.iot.reading import MAX_SEQ, MAX_VALUE, Reading, parse_reading, sign_reading
from citychain.iot.sigverify import (
    GoVerifier,
    Job,
    PoolVerifier,
    ReadingJob,
    SignatureJob,
    VerifierError,
    open_verifier,
)

ORDER = 2**252 + 27742317777372353535851937790883648493  # L, the prime order of the base point
# The eight points of small order, canonically encoded (identity, order 2, 4, 4, 8 x 4)...
SMALL_ORDER = [bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
)]
# ...and encodings with y >= p (non-canonical): y = p, p + 1 (the identity again), 2^255 - 1,
# each also with the sign bit set.
NON_CANONICAL = [bytes.fromhex(h) for h in (
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
)]
ODD_POINTS = SMALL_ORDER + NON_CANONICAL


def valid_job(secret: bytes, message: bytes) -> SignatureJob:
    key = PrivateKey.from_secret(secret)
    return key.public_key, message, key.sign(message)


def _scalar(data: st.DataObject) -> bytes:
    """A scalar mod L drawn from 64 bytes (the top byte 1, so never 0)."""
    return nacl.bindings.crypto_core_ed25519_scalar_reduce(
        data.draw(st.binary(min_size=63, max_size=63)) + b"\x01")


def _challenge(r: bytes, pubkey: bytes, message: bytes) -> bytes:
    return nacl.bindings.crypto_core_ed25519_scalar_reduce(
        hashlib.sha512(r + pubkey + message).digest())


def torsion_jobs(message: bytes, data: st.DataObject) -> list[SignatureJob]:
    """Signatures valid under the cofactored equation (what batch verifiers and ZIP-215 use)
    but not libsodium's cofactorless one: an R, or a key, carrying an order-8 component."""
    add, mul = nacl.bindings.crypto_core_ed25519_add, nacl.bindings.crypto_core_ed25519_scalar_mul
    plus = nacl.bindings.crypto_core_ed25519_scalar_add
    base = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp
    a, r = _scalar(data), _scalar(data)
    pubkey, torsion = base(a), SMALL_ORDER[4]
    r_mixed = add(base(r), torsion)
    s = plus(r, mul(_challenge(r_mixed, pubkey, message), a))
    key_mixed = add(pubkey, torsion)
    r_point = base(r)
    s_key = plus(r, mul(_challenge(r_point, key_mixed, message), a))
    return [(pubkey, message, r_mixed + s), (key_mixed, message, r_point + s_key)]


def mutations(job: SignatureJob, data: st.DataObject) -> list[SignatureJob]:
    """The valid ``job`` and variants of it that must all get libsodium's verdict."""
    pubkey, message, signature = job
    r, s = signature[:32], int.from_bytes(signature[32:], "little")
    bit = data.draw(st.integers(0, 8 * 64 - 1))
    flipped = bytearray(signature)
    flipped[bit // 8] ^= 1 << (bit % 8)
    odd = data.draw(st.sampled_from(ODD_POINTS))
    return [
        job,
        (pubkey, message + b"!", signature),                        # another message
        (pubkey, message, bytes(flipped)),                           # one bit of the signature
        (pubkey, message, r + (s + ORDER).to_bytes(32, "little")),   # S not reduced (S + L)
        (pubkey, message, odd + signature[32:]),                     # R small order/non-canonical
        (odd, message, signature),                                   # A small order/non-canonical
        (data.draw(st.binary(min_size=32, max_size=32)), message, signature),
        (pubkey, message, data.draw(st.binary(min_size=64, max_size=64))),
        (odd, message, odd + bytes(32)),                             # small A, R and S = 0
        *torsion_jobs(message, data),
    ]


@pytest.fixture(scope="module", params=[None, 0], ids=["keys-expanded", "no-key-cache"])
def go_verifier(sigverify: Path, request: pytest.FixtureRequest) -> Iterator[GoVerifier]:
    verifier = GoVerifier(sigverify, key_cache=request.param)
    yield verifier
    verifier.close()


@settings(max_examples=150, deadline=None)
@given(secret=st.binary(min_size=1, max_size=16), message=st.binary(max_size=300),
       data=st.data())
def test_the_go_verifier_gives_libsodiums_verdict(go_verifier: GoVerifier, secret: bytes,
                                                   message: bytes, data: st.DataObject) -> None:
    jobs: list[SignatureJob | None] = list(mutations(valid_job(secret, message), data))
    expected = [verify_signature(*job) for job in jobs if job is not None]
    assert expected[0] is True and expected[-2] is False  # the valid one; R with torsion
    assert go_verifier.collect(go_verifier.submit(jobs)) == expected


def test_every_odd_point_as_key_or_r_is_judged_alike(go_verifier: GoVerifier) -> None:
    # The cases where Ed25519 libraries disagree ("Taming the many EdDSAs"): small-order and
    # non-canonical A and R, each against a real signature of a real key.
    pubkey, message, signature = valid_job(b"odd points", b"reading")
    jobs: list[SignatureJob | None] = []
    for point in ODD_POINTS:
        jobs += [(point, message, signature), (pubkey, message, point + signature[32:]),
                 (point, message, point + signature[32:])]
    expected = [verify_signature(*job) for job in jobs if job is not None]
    assert expected.count(False) == len(expected)  # libsodium refuses them all
    assert go_verifier.collect(go_verifier.submit(jobs)) == expected


def test_answers_come_back_in_order_with_gaps_kept(go_verifier: GoVerifier) -> None:
    good = valid_job(b"order", b"m")
    bad = (good[0], good[1], bytes(64))
    first = go_verifier.submit([good, None, bad])
    second = go_verifier.submit([None, None])
    third = go_verifier.submit([bad, good, (b"short", b"m", good[2])])
    assert go_verifier.collect(first) == [True, None, False]
    with pytest.raises(ValueError, match="out of order"):
        go_verifier.collect(third)
    assert go_verifier.collect(second) == [None, None]
    assert go_verifier.collect(third) == [False, True, False]
    assert go_verifier.collect(go_verifier.submit([])) == []


READING_CHAIN = "sigverify-readings"
READING_KEYS = [PrivateKey.from_secret(f"sigverify-reading/{i}") for i in range(3)]
# Integers around every CBOR head size (1, 2, 3, 5 and 9 bytes) and the wire form's bounds.
EDGES = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, MAX_SEQ]


@pytest.fixture(scope="module")
def reading_verifier(sigverify: Path) -> Iterator[GoVerifier]:
    verifier = GoVerifier(sigverify, chain_id=READING_CHAIN)
    verifier.self_test()
    yield verifier
    verifier.close()


def reading_job(reading: Reading, key: PrivateKey) -> ReadingJob:
    return ReadingJob(key.public_key, reading.to_json().encode(), reading.sig)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(READING_KEYS),
       stream=st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,31}", fullmatch=True),
       seq=st.one_of(st.sampled_from(EDGES), st.integers(0, MAX_SEQ)),
       ts_ms=st.one_of(st.sampled_from(EDGES), st.integers(0, MAX_SEQ)),
       value=st.one_of(st.sampled_from([-e for e in EDGES] + EDGES),
                       st.integers(-MAX_VALUE, MAX_VALUE)),
       forge=st.booleans())
def test_the_go_verifier_encodes_a_reading_as_this_process_does(
        reading_verifier: GoVerifier, key: PrivateKey, stream: str, seq: int, ts_ms: int,
        value: int, forge: bool) -> None:
    signed = sign_reading(key, READING_CHAIN, stream, seq, ts_ms, value)
    reading = signed if not forge else Reading(
        signed.device, signed.stream, signed.seq, signed.ts_ms, signed.value,
        bytes([signed.sig[0] ^ 1]) + signed.sig[1:])
    parsed = parse_reading(reading.to_json().encode(), reading.topic)
    assert parsed.wire_payload is not None  # what the gateway hands the verifier
    pending = reading_verifier.submit([ReadingJob(key.public_key, parsed.wire_payload,
                                                  parsed.sig)])
    assert reading_verifier.collect(pending) == [not forge]
    assert pending.reading_ids == [reading.reading_id]  # the id of the bytes, valid or not


def test_a_payload_the_go_verifier_cannot_read_is_left_to_the_caller(
        reading_verifier: GoVerifier) -> None:
    key = READING_KEYS[0]
    good = sign_reading(key, READING_CHAIN, "pm25", 3, 1_700_000_000_000, -7)
    wire = good.to_json().encode()
    other_sig = sign_reading(key, READING_CHAIN, "pm25", 4, 1_700_000_000_000, -7).sig
    jobs: list[Job | None] = [
        reading_job(good, key),
        ReadingJob(key.public_key, wire.replace(b",", b", "), good.sig),      # not the wire form
        ReadingJob(key.public_key, wire.replace(b'"seq":3', b'"seq":03'), good.sig),
        ReadingJob(key.public_key, wire, other_sig),                # "sig" is not the job's
        ReadingJob(key.public_key, wire[:-1], good.sig),                      # cut short
        None,
        (key.public_key, good.sign_bytes(READING_CHAIN), good.sig),           # a plain job
    ]
    pending = reading_verifier.submit(jobs)
    assert reading_verifier.collect(pending) == [True, None, None, None, None, None, True]
    assert pending.reading_ids == [good.reading_id, None, None, None, None, None, None]
    assert parse_reading(wire.replace(b",", b", ")).wire_payload is None  # never sent as such


def test_reading_jobs_need_a_verifier_that_knows_the_chain(sigverify: Path) -> None:
    key = READING_KEYS[1]
    job = reading_job(sign_reading(key, READING_CHAIN, "pm25", 1, 1_700_000_000_000, 1), key)
    plain = GoVerifier(sigverify)
    pool = PoolVerifier(1)
    try:
        assert not plain.encodes_readings and not pool.encodes_readings
        for verifier in (plain, pool):
            with pytest.raises(TypeError, match="reading jobs"):
                verifier.submit([job])
    finally:
        plain.close()
        pool.close()
    # the binary itself, asked without the chain's prefix, reads no reading
    wire = job.payload
    request = (b"\x01\x00\x00\x00" + job.pubkey + job.signature
               + (len(wire) | 1 << 31).to_bytes(4, "little") + wire)
    done = subprocess.run([str(sigverify)], input=request, capture_output=True, timeout=30)
    assert done.returncode == 0 and done.stdout == b"\x02" + bytes(32)


def test_a_malformed_request_stops_the_binary_with_a_message(sigverify: Path) -> None:
    done = subprocess.run([str(sigverify)], input=b"\x02\x00\x00\x00" + bytes(50),
                          capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"malformed request: signature 0 of 2: unexpected EOF" in done.stderr
    assert subprocess.run([str(sigverify)], input=b"", timeout=30).returncode == 0


def test_a_killed_verifier_is_reported(sigverify: Path) -> None:
    verifier = GoVerifier(sigverify)
    try:
        pending = verifier.submit([valid_job(b"k", b"m")])
        os.kill(verifier._process.pid, signal.SIGKILL)
        verifier._process.wait(10)
        with pytest.raises(VerifierError, match="stopped"):
            verifier.collect(pending)  # its answer may or may not have been written
            verifier.collect(verifier.submit([valid_job(b"k", b"m")]))
    finally:
        verifier.close()


def test_open_verifier_picks_go_when_built_and_says_when_it_is_missing(
        sigverify: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYCHAIN_SIGVERIFY", str(sigverify))
    verifier = open_verifier("auto", 1)
    assert isinstance(verifier, GoVerifier)
    verifier.close()
    verifier = open_verifier("python", 1)
    assert isinstance(verifier, PoolVerifier)
    verifier.close()
    assert open_verifier("go", 0) is None

    monkeypatch.setenv("CITYCHAIN_SIGVERIFY", str(tmp_path / "nowhere"))
    monkeypatch.setenv("CITYCHAIN_BIN", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VerifierError, match=r"citychain-sigverify not found .*install_sigverify"):
        open_verifier("go", 1)
    verifier = open_verifier("auto", 1)
    assert isinstance(verifier, PoolVerifier)
    verifier.close()
    with pytest.raises(ValueError, match="verifier must be one of auto, go, python"):
        open_verifier("rust", 1)


def test_a_verifier_that_accepts_everything_fails_its_self_test(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    liar = tmp_path / "citychain-sigverify"
    liar.write_text(f"""#!{sys.executable}
import struct, sys
while header := sys.stdin.buffer.read(4):
    count = struct.unpack("<I", header)[0]
    for _ in range(count):
        fixed = sys.stdin.buffer.read(100)
        sys.stdin.buffer.read(struct.unpack("<I", fixed[96:])[0])
    sys.stdout.buffer.write(b"\\x01" * count)
    sys.stdout.buffer.flush()
""")
    liar.chmod(liar.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CITYCHAIN_SIGVERIFY", str(liar))
    with pytest.raises(VerifierError, match=r"failed its self-test: \[True, None, True\]"):
        open_verifier("go", 1)
    verifier = open_verifier("auto", 1)  # auto falls back to PyNaCl
    assert isinstance(verifier, PoolVerifier)
    verifier.close()


def test_a_gateway_whose_verifier_dies_verifies_in_its_ingest_thread(
        broker: Broker, chain: IotChain, tmp_path: Path, sigverify: Path) -> None:
    clock = DeviceClock(chain.key("s3"), start_seq=9000)
    with running_gateway(broker, chain, tmp_path / "readings.db", verifier="go") as gateway:
        assert isinstance(gateway._verifier, GoVerifier)
        os.kill(gateway._verifier._process.pid, signal.SIGKILL)
        gateway._verifier._process.wait(10)
        readings = [clock.next(v) for v in range(9)]
        forged = Reading(readings[0].device, "pm25", 9999, readings[-1].ts_ms + 1, 5, bytes(64))
        assert gateway._verify([*readings, forged]) == []  # no verdicts: checked one by one
        assert gateway._verifier is None
