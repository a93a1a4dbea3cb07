"""The gateway's device cache follows the chain's events: with a long ttl, a suspension or a key
rotation committed on chain takes effect at the gateway within about a block (real Mosquitto,
real solo chain); the cache itself: invalidation by DID, reads racing an invalidation, its bound,
and which events name which devices."""

from __future__ import annotations

import time
from pathlib import Path

from iot_harness import (
    CHAIN_ID,
    Broker,
    DeviceClock,
    IotChain,
    Publisher,
    running_gateway,
    wait_for,
)

from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.iot.chain import DeviceCache, DeviceInfo, devices_named
from citychain.iot.gateway import Gateway
from citychain.iot.reading import Reading, signing_bytes
from citychain.modules.identity.messages import (
    MsgRotateKey,
    MsgSuspendIdentity,
    rotation_sign_bytes,
)

LONG_TTL = 300.0
ADDRESS = "ab" * 20
DID = f"did:city:{ADDRESS}"


def _did(byte: str) -> str:
    return "did:city:" + byte * 20


def _info(did: str, active: bool = True) -> DeviceInfo:
    return DeviceInfo(did, "did:city:" + "00" * 20, b"k" * 32, active, {})


def _wait_until_followed(gateway: Gateway, height: int) -> float:
    """Seconds until the gateway's follower has applied block ``height``."""
    started = time.monotonic()
    wait_for(lambda: gateway.follower.height >= height, timeout=5.0,
             what=f"the gateway to follow block {height}")
    return time.monotonic() - started


def _publish_and_count(gateway: Gateway, publisher: Publisher, readings: list[Reading]) -> None:
    before = gateway.stats()["received"]
    assert len(publisher.publish_readings(readings)) == len(readings)
    wait_for(lambda: gateway.stats()["received"] == before + len(readings),
             what="the readings at the gateway")


def test_a_suspension_takes_effect_within_a_block_with_a_long_ttl(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    s3, s1 = DeviceClock(chain.key("s3")), DeviceClock(chain.key("s1"))
    with running_gateway(broker, chain, store_path, device_ttl=LONG_TTL,
                         batch_seconds=60) as gateway:
        publisher = Publisher(broker)
        try:
            _publish_and_count(gateway, publisher, [s3.next(), s1.next()])
            assert gateway.stats()["accepted"] == 2
            assert s3.key.did in gateway.devices and s1.key.did in gateway.devices
            committed = chain.send("admin", MsgSuspendIdentity(s3.key.did, "test"))
            height = int(committed["height"])
            assert _wait_until_followed(gateway, height) < 3.0
            assert s3.key.did not in gateway.devices      # dropped by the event...
            assert s1.key.did in gateway.devices          # ...and only that device's record
            _publish_and_count(gateway, publisher, [s3.next(), s3.next(), s1.next()])
        finally:
            publisher.close()
        stats = gateway.stats()
    assert stats["rejected"]["inactive_device"] == 2
    assert stats["accepted"] == 3


def test_a_key_rotation_takes_effect_within_a_block_with_a_long_ttl(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    old_key = chain.key("s4")
    s4 = DeviceClock(old_key)
    new_key = PrivateKey.from_secret(bytes(range(100, 132)))
    with running_gateway(broker, chain, store_path, device_ttl=LONG_TTL,
                         batch_seconds=60) as gateway:
        publisher = Publisher(broker)
        try:
            _publish_and_count(gateway, publisher, [s4.next()])
            assert gateway.stats()["accepted"] == 1
            committed = chain.send("s4", _rotation(chain, old_key, new_key))
            assert _wait_until_followed(gateway, int(committed["height"])) < 3.0
            old_signed = s4.next()
            new_signed = _signed_by(new_key, s4.next())
            _publish_and_count(gateway, publisher, [old_signed, new_signed])
        finally:
            publisher.close()
        stats = gateway.stats()
    assert stats["rejected"]["bad_signature"] == 1
    assert stats["accepted"] == 2
    assert gateway.store.reading_ids()[-1] == new_signed.reading_id


def _rotation(chain: IotChain, old_key: PrivateKey, new_key: PrivateKey) -> MsgRotateKey:
    account = codec.decode(chain.client.query("/identity/account",
                                              {"address": old_key.address}).value)
    sequence = int(account["sequence"])
    proof = new_key.sign(rotation_sign_bytes(CHAIN_ID, old_key.did, new_key.public_key,
                                             sequence))
    return MsgRotateKey(new_key.public_key, proof)


def _signed_by(key: PrivateKey, reading: Reading) -> Reading:
    """``reading`` (of another device's DID) signed by ``key`` instead."""
    sig = key.sign(signing_bytes(CHAIN_ID, reading.device, reading.stream, reading.seq,
                                 reading.ts_ms, reading.value))
    return Reading(reading.device, reading.stream, reading.seq, reading.ts_ms, reading.value,
                   sig)


def test_invalidate_drops_only_the_named_records() -> None:
    fetched: list[str] = []

    def fetch(did: str) -> DeviceInfo | None:
        fetched.append(did)
        return _info(did)

    cache = DeviceCache(fetch, ttl=LONG_TTL)
    other = "did:city:" + "cd" * 20
    cache.get(DID)
    cache.get(other)
    cache.get(DID)
    assert fetched == [DID, other]
    cache.invalidate([DID])
    cache.get(DID)
    cache.get(other)
    assert fetched == [DID, other, DID]


def test_a_read_in_flight_during_an_invalidation_is_not_kept() -> None:
    cache: DeviceCache

    def fetch(did: str) -> DeviceInfo | None:
        cache.invalidate([did])      # the suspension's block is applied while we read
        return _info(did)

    cache = DeviceCache(fetch, ttl=LONG_TTL)
    assert cache.get(DID) == _info(DID)
    assert DID not in cache


def test_the_ttl_still_bounds_a_record_and_the_size_is_bounded() -> None:
    now = [0.0]
    fetched: list[str] = []

    def fetch(did: str) -> DeviceInfo | None:
        fetched.append(did)
        return None

    cache = DeviceCache(fetch, ttl=10.0, clock=lambda: now[0], max_entries=2)
    cache.get(DID)
    now[0] = 9.9
    cache.get(DID)
    now[0] = 10.0
    cache.get(DID)
    assert fetched == [DID, DID]
    dids = [f"did:city:{n:040x}" for n in range(3)]
    for did in dids:
        cache.get(did)
    assert len(cache) == 2
    assert dids[0] not in cache and dids[1] in cache and dids[2] in cache


def test_device_events_name_their_devices_and_others_name_none() -> None:
    events = [
        ("identity_suspended", {"did": DID, "reason": "x", "suspended_by": _did("01")}),
        ("key_rotated", {"did": _did("02"), "old_pubkey": "00", "new_pubkey": "11"}),
        ("device_decommissioned", {"did": _did("03"), "owner": _did("04")}),
        ("device_updated", {"address": "05" * 20}),
        ("batch_anchored", {"operator": _did("06")}),
        ("transfer", {"did": _did("07")}),
    ]
    assert devices_named(events) == {DID, _did("02"), _did("03"), _did("05")}
    assert devices_named(events[4:]) == set()
    # An event of a device-changing type that names no account: every record must go.
    assert devices_named([("role_revoked", {"role": "device"})]) is None
