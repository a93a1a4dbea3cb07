"""The gateway against a real Mosquitto and a real solo chain: every rejection reason counted and
nothing stored as valid; accepted readings stored, anchored (root, devices, count, time range on
chain) and verifiable, on a SQLite and a PostgreSQL store; a tampered reading fails; a suspension
bites within the cache bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from iot_harness import (
    CHAIN_ID,
    Broker,
    DeviceClock,
    IotChain,
    Publisher,
    now_ms,
    running_gateway,
    tamper_reading,
    wait_for,
)

from citychain.api.gateway import GatewaySettings
from citychain.api.server import GatewayThread
from citychain.client import Client
from citychain.core.crypto import PrivateKey
from citychain.iot.chain import ChainLink
from citychain.iot.gateway import Gateway, GatewayConfig, build_batch
from citychain.iot.reading import REASONS, Reading, ReadingRejectedError, sign_reading
from citychain.iot.sigverify import GoVerifier, PoolVerifier
from citychain.iot.store import ANCHORED, ReadingStore, ReadingStoreUnavailableError
from citychain.iot.verify import (
    ReadingVerificationError,
    RpcProver,
    SdkProver,
    verify_reading,
)
from citychain.modules.oracle.messages import MsgAnchorBatch
from citychain.testing.postgres import PostgresServer


def test_every_rejection_reason_is_counted_and_nothing_invalid_is_stored(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    s1 = DeviceClock(chain.key("s1"))
    chain.suspend("s4")
    stranger = PrivateKey.from_secret(bytes(range(32)))
    good = [s1.next(10), s1.next(20)]
    forged = s1.next(30)
    forged = Reading(forged.device, forged.stream, forged.seq, forged.ts_ms, forged.value + 1,
                     forged.sig)
    behind = Reading(good[1].device, "pm25", s1.seq + 5, good[1].ts_ms - 1, 1, b"")
    behind = sign_reading(chain.key("s1"), CHAIN_ID, "pm25", behind.seq, behind.ts_ms, 1)
    s1.seq += 10
    cases: list[tuple[str, str, bytes | str]] = [
        ("malformed_json", "city/x/pm25", b"{not json"),
        ("oversized", "city/x/pm25", b"{" + b" " * 5000 + b"}"),
        ("bad_schema", good[0].topic, '{"device": "did:city:00", "value": 1}'),
        ("unknown_device", "", sign_reading(stranger, CHAIN_ID, "pm25", 1, now_ms(), 1)
         .to_json()),
        ("unknown_device", "", sign_reading(chain.key("x1"), CHAIN_ID, "pm25", 1, now_ms(), 1)
         .to_json()),                                    # another operator's device
        ("inactive_device", "", sign_reading(chain.key("s4"), CHAIN_ID, "pm25", 1, now_ms(), 1)
         .to_json()),
        ("unknown_stream", "", s1.next(1, stream="noise").to_json()),
        ("bad_signature", "", forged.to_json()),
        ("replayed", "", good[0].to_json()),
        ("out_of_order", "", behind.to_json()),
        ("out_of_window", "", sign_reading(chain.key("s1"), CHAIN_ID, "pm25", s1.seq + 1,
                                           now_ms() + 3_600_000, 1).to_json()),
        ("out_of_range", "", s1.next(5000).to_json()),
    ]
    with running_gateway(broker, chain, store_path, batch_seconds=60) as gateway:
        publisher = Publisher(broker)
        try:
            assert len(publisher.publish_readings(good)) == 2
            wait_for(lambda: gateway.stats()["accepted"] == 2, what="the good readings")
            for _reason, topic, payload in cases:
                text = payload if isinstance(payload, str) else payload.decode()
                if not topic:
                    topic = _topic_of(text)
                publisher.publish(topic, payload)
            wait_for(lambda: gateway.stats()["received"] == 2 + len(cases),
                     what="every reading")
        finally:
            publisher.close()
        stats = gateway.stats()
    expected = {reason: 0 for reason in REASONS}
    for reason, _, _ in cases:
        expected[reason] += 1
    assert stats["rejected"] == expected
    assert stats["accepted"] == 2
    assert stats["rejected_total"] == {k: v for k, v in expected.items() if v}
    store = ReadingStore(store_path)
    try:
        assert store.reading_ids() == [r.reading_id for r in good]
    finally:
        store.close()


def _topic_of(payload: str) -> str:
    import json
    value = json.loads(payload)
    return f"city/{value['device']}/{value['stream']}"


def test_accepted_readings_are_anchored_and_verify_and_tampering_fails(
        broker: Broker, chain: IotChain, store_location: Path | str) -> None:
    """On a SQLite file and on a real PostgreSQL."""
    store_path = store_location
    start_height = chain.height()
    devices = [DeviceClock(chain.key(name)) for name in ("s1", "s2", "s3")]
    readings = [device.next(value) for value in range(1, 11) for device in devices]
    with running_gateway(broker, chain, store_path, batch_readings=12,
                         batch_seconds=0.3) as gateway:
        publisher = Publisher(broker)
        try:
            assert len(publisher.publish_readings(readings)) == 30
        finally:
            publisher.close()
        wait_for(lambda: gateway.store.counts().get("readings_batched") == 30, what="sealing")
        wait_for(lambda: len(gateway.store.batches(ANCHORED)) == len(gateway.store.batches()),
                 what="anchors")
        batches = gateway.store.batches()
    assert sum(b.reading_count for b in batches) == 30
    assert len(batches) >= 3
    previous = b""
    for batch in batches:
        anchor = chain.anchor(batch.merkle_root)
        assert anchor is not None
        assert anchor["batch_id"] == batch.batch_id.hex()
        assert anchor["devices"] == list(batch.devices) == sorted(batch.devices)
        assert anchor["reading_count"] == batch.reading_count == len(batch.leaves)
        assert anchor["previous_batch_id"] == previous.hex()
        assert anchor["submitter"] == chain.key("gw").did
        assert anchor["operator"] == chain.key("op").did
        mine = [r for r in readings if r.reading_id in batch.leaves]
        assert anchor["first_reading_ms"] == min(r.ts_ms for r in mine)
        assert anchor["last_reading_ms"] == max(r.ts_ms for r in mine)
        previous = batch.batch_id
    assert sorted(chain.anchored_roots(after=start_height)) == sorted(
        b.merkle_root.hex() for b in batches)

    store = ReadingStore(store_path)
    prover = RpcProver(chain.rpc_url, chain.genesis_path)
    try:
        for reading in readings[::7]:
            proof = verify_reading(store, reading.reading_id, prover)
            assert proof.reading == reading
            assert proof.anchor["merkle_root"] == proof.batch.merkle_root.hex()
        target = readings[4]
        tamper_reading(store_path, target.reading_id)
        with pytest.raises(ReadingVerificationError, match="altered"):
            verify_reading(store, target.reading_id, prover)
        with pytest.raises(ReadingVerificationError, match="no reading"):
            verify_reading(store, b"\x00" * 32, prover)

        # The same check through the HTTP gateway and the SDK's light verifier.
        api = GatewayThread(GatewaySettings(node_url=chain.rpc_url, rate_limit=0)).start()
        try:
            with Client(api.url, trusted_genesis=chain.genesis_path) as client:
                proof = verify_reading(store, readings[0].reading_id, SdkProver(client))
                assert proof.reading == readings[0]
                with pytest.raises(ReadingVerificationError, match="altered"):
                    verify_reading(store, target.reading_id, SdkProver(client))
        finally:
            api.stop()
    finally:
        prover.close()
        store.close()


def test_a_suspension_takes_effect_within_the_device_cache_bound(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    s3 = DeviceClock(chain.key("s3"), start_seq=1000)
    with running_gateway(broker, chain, store_path, device_ttl=0.2,
                         batch_seconds=60) as gateway:
        publisher = Publisher(broker)
        try:
            publisher.publish_readings([s3.next()])
            wait_for(lambda: gateway.stats()["accepted"] == 1, what="the first reading")
            chain.suspend("s3")
            wait_for(lambda: gateway.devices.refresh(chain.key("s3").did).active is False,
                     what="the suspension on chain")
            publisher.publish_readings([s3.next()])
            wait_for(lambda: gateway.stats()["received"] == 2, what="the second reading")
        finally:
            publisher.close()
        assert gateway.stats()["rejected"]["inactive_device"] == 1
        # Sealing re-checks every device: the stored reading of the suspended device is
        # dropped, never anchored (the chain would refuse the whole batch).
        assert gateway.maybe_seal(force=True) == 0
        assert gateway.store.counts()["readings_dropped"] == 1


def test_a_batch_sealed_and_sent_before_a_crash_is_recorded_not_sent_again(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    # The crash window: the batch is sealed and its anchor reached the chain, but the process
    # died before recording it. On restart the gateway finds the root on chain and records it.
    s1 = DeviceClock(chain.key("s1"), start_seq=5000)
    readings = [s1.next(v) for v in (1, 2, 3)]
    link = ChainLink(chain.rpc_url, chain.key("gw"))
    store = ReadingStore(store_path)
    try:
        gateway = Gateway(GatewayConfig(broker_port=broker.port), store, link)  # not started
        store.commit_readings([(r, now_ms()) for r in readings],
                              {r.device: (r.seq, r.ts_ms) for r in readings[-1:]}, {})
        part = [(n, reading) for n, reading, _ in store.pending(10)]
        batch = build_batch(part, store.last_batch_id())
        store.seal([(batch, [n for n, _ in part])], [])
        store.record_sends([batch.batch_id])     # as the gateway does before it sends
        height, _ = link.send_anchor(MsgAnchorBatch(
            batch.merkle_root, batch.devices, batch.first_reading_ms, batch.last_reading_ms,
            batch.reading_count, batch.previous_batch_id))
        assert gateway.anchor_sealed() == 1      # what the restarted gateway does first
        recorded = store.get_batch(batch.batch_id)
    finally:
        store.close()
        link.close()
    assert recorded is not None
    assert recorded.status == ANCHORED and recorded.sends == 1 and recorded.height == height
    assert chain.anchored_roots().count(batch.merkle_root.hex()) == 1


def test_a_batch_refused_for_a_device_is_resealed_without_it(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    # s6 is suspended after its readings were sealed but before the anchor: the chain refuses
    # the whole batch; the gateway returns its readings to sealing, which drops s6's.
    s5, s6 = DeviceClock(chain.key("s5")), DeviceClock(chain.key("s6"))
    readings = [s5.next(1), s6.next(2), s5.next(3)]
    link = ChainLink(chain.rpc_url, chain.key("gw"))
    store = ReadingStore(store_path)
    try:
        gateway = Gateway(GatewayConfig(broker_port=broker.port), store, link)  # not started
        store.commit_readings([(r, now_ms()) for r in readings], {}, {})
        assert gateway.maybe_seal(force=True) == 1
        (refused,) = store.batches()
        chain.suspend("s6")
        assert gateway.anchor_sealed() == 0
        assert store.batches() == [] and store.counts() == {"readings_accepted": 3}
        assert gateway.maybe_seal(force=True) == 1
        assert gateway.anchor_sealed() == 1
        (batch,) = store.batches(ANCHORED)
        assert batch.devices == (s5.key.did,)
        assert batch.leaves == (readings[0].reading_id, readings[2].reading_id)
        assert batch.previous_batch_id == refused.previous_batch_id
        assert store.counts() == {"readings_batched": 2, "readings_dropped": 1,
                                  "batches_anchored": 1}
    finally:
        store.close()
        link.close()


def test_signatures_verified_in_the_verifier_process_give_the_same_verdicts(
        broker: Broker, chain: IotChain, store_path: Path, verifier: str) -> None:
    # The ingest thread hands part of each chunk's signatures to a process (PyNaCl holds the
    # GIL); a forged signature is still bad_signature, and a device refused earlier (another
    # operator's) gets no verdict, so its earlier reason stands.
    s2, x1 = DeviceClock(chain.key("s2"), start_seq=7000), DeviceClock(chain.key("x1"))
    good = [s2.next(v) for v in range(9)]
    forged = Reading(good[0].device, "pm25", 9999, now_ms(), 5, bytes(64))
    other = x1.next()
    with running_gateway(broker, chain, store_path, verifier=verifier,
                         verify_processes=1) as gateway:
        assert isinstance(gateway._verifier, GoVerifier if verifier == "go" else PoolVerifier)
        verdicts = gateway._verify([*good, forged, other])
        assert [v if v is None else v[1] for v in verdicts] == [True] * 9 + [False, None]
        with pytest.raises(ReadingRejectedError) as refused:
            gateway.checker.check(forged, verdicts[9])
        assert refused.value.reason == "bad_signature"
        with pytest.raises(ReadingRejectedError) as refused:
            gateway.checker.check(other, verdicts[10])
        assert refused.value.reason == "unknown_device"


def test_sealed_batches_are_anchored_several_per_block_and_a_refusal_reseals_from_it(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    # Eight batches of two readings; the seventh holds s1's reading, and s1 is suspended
    # before anchoring. The window sends all eight at once: the first six are anchored
    # (several in one block), the seventh fails, so does the eighth (its previous batch is
    # missing); the seventh, sent alone, is refused for its device and both go back to
    # sealing, which drops s1's reading. Nothing is anchored twice.
    s5, s1 = DeviceClock(chain.key("s5"), start_seq=20_000), DeviceClock(chain.key("s1"),
                                                                          start_seq=20_000)
    readings = [s5.next(v) for v in range(12)] + [s1.next(1), s5.next(2), s5.next(3),
                                                  s5.next(4)]
    link = ChainLink(chain.rpc_url, chain.key("gw"))
    store = ReadingStore(store_path)
    before = chain.height()
    try:
        gateway = Gateway(GatewayConfig(broker_port=broker.port, batch_readings=2,
                                        anchor_window=8), store, link)  # not started
        store.commit_readings([(r, now_ms()) for r in readings], {}, {})
        assert gateway.maybe_seal(force=True) == 8
        chain.suspend("s1")
        assert gateway.anchor_sealed() == 6
        anchored = store.batches(ANCHORED)
        assert len(anchored) == 6 and store.counts()["readings_accepted"] == 4
        heights = [batch.height for batch in anchored]
        assert len(set(heights)) < len(heights), heights  # several batches per block
        assert all(batch.tx_hash for batch in anchored)
        assert gateway.maybe_seal(force=True) == 2
        assert gateway.anchor_sealed() == 2
        batches = store.batches()
        assert [b.status for b in batches] == [ANCHORED] * 8
        assert [b.previous_batch_id for b in batches[1:]] == [b.batch_id for b in batches[:-1]]
        assert s1.key.did not in {device for b in batches for device in b.devices}
        assert store.counts() == {"readings_batched": 15, "readings_dropped": 1,
                                  "batches_anchored": 8}
    finally:
        store.close()
        link.close()
    roots = chain.anchored_roots(before)
    assert sorted(roots) == sorted(b.merkle_root.hex() for b in batches)  # each once


def test_postgres_connections_lost_mid_stream_pause_the_gateway_and_lose_nothing(
        broker: Broker, chain: IotChain, postgres: PostgresServer, postgres_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    # The server drops every session of the store's database (a restart, a failover) and
    # refuses new ones for a while: each gateway thread pauses, connects again once it can,
    # and no reading is lost or stored twice.
    database = postgres_url.rsplit("/", 1)[1]
    # s2 and s5: the devices this module's earlier tests leave active
    s2, s5 = DeviceClock(chain.key("s2"), 9000), DeviceClock(chain.key("s5"), 9000)
    before = [clock.next(v) for v in range(8) for clock in (s2, s5)]
    after = [clock.next(v) for v in range(8) for clock in (s2, s5)]
    start_height = chain.height()
    with running_gateway(broker, chain, postgres_url, batch_readings=8,
                         batch_seconds=0.3) as gateway, \
            psycopg.connect(postgres.url(), autocommit=True) as admin:
        publisher = Publisher(broker)
        try:
            assert len(publisher.publish_readings(before)) == 16
            wait_for(lambda: gateway.store.counts().get("readings_batched") == 16,
                     what="the first readings sealed")
            admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (database,))
            assert len(publisher.publish_readings(after)) == 16
            wait_for(lambda: "ingest paused, reading store unreachable" in caplog.text,
                     what="the ingest thread pausing")
            wait_for(lambda: "unreachable: cannot connect to the reading store" in caplog.text,
                     what="a refused reconnection")
            assert gateway.errors == []
            admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        finally:
            publisher.close()
        with pytest.raises(ReadingStoreUnavailableError, match="lost the connection"):
            gateway.store.counts()  # this thread's session was dropped too: said once...
        wait_for(lambda: gateway.store.counts().get("readings_batched") == 32,  # ...then anew
                 what="every reading sealed")
        wait_for(lambda: len(gateway.store.batches(ANCHORED)) == len(gateway.store.batches()),
                 what="anchors")
        assert gateway.errors == []
        assert sorted(gateway.store.reading_ids()) == sorted(r.reading_id
                                                             for r in before + after)
        batches = gateway.store.batches()
    assert sum(batch.reading_count for batch in batches) == 32
    assert sorted(chain.anchored_roots(after=start_height)) == sorted(
        batch.merkle_root.hex() for batch in batches)


def test_a_store_lost_while_the_next_chunk_is_being_verified_loses_nothing(
        broker: Broker, chain: IotChain, store_path: Path, verifier: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks, published at once: while one chunk commits, the next one's signatures are
    # with the verifier. The first commits fail as a lost PostgreSQL connection does; the
    # gateway pauses, takes the verifier's answer for the chunk it drops, and retries both.
    clocks = [DeviceClock(chain.key(name), 11_000) for name in ("s2", "s5")]  # still active
    readings = [clock.next(v) for v in range(30) for clock in clocks]
    with running_gateway(broker, chain, store_path, chunk=10, batch_seconds=0.3,
                         verifier=verifier) as gateway:
        commit = gateway.store.commit_readings
        failures = iter(range(2))

        def failing_commit(*args: Any, **kwargs: Any) -> None:
            if next(failures, None) is not None:
                raise ReadingStoreUnavailableError("lost the connection (test)")
            commit(*args, **kwargs)

        monkeypatch.setattr(gateway.store, "commit_readings", failing_commit)
        publisher = Publisher(broker)
        try:
            assert len(publisher.publish_readings(readings)) == 60
        finally:
            publisher.close()
        wait_for(lambda: gateway.store.counts().get("readings_batched") == 60,
                 what="every reading sealed")
        assert gateway.errors == []
        assert next(failures, None) is None  # both failures happened
        assert sorted(gateway.store.reading_ids()) == sorted(r.reading_id for r in readings)
