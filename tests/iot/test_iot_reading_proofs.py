"""A reading's proof served by ``GET /citychain/v1/readings/{id}`` (the NGSI-LD server) and checked
by the SDK's ``verify_reading_answer`` with a trusted genesis, against a real Mosquitto, a real
solo chain and the IoT gateway: an honest answer verifies; a tampered value, a wrong aunt, a
swapped root and a reading id outside the batch each fail with their typed error; an unknown id
is a 404, a malformed one a 400, and a pending reading is never called verified. After a device
key rotation, a reading anchored before it still verifies (SDK, ``iot verify``'s RpcProver and
SdkProver: all check the key in force at the anchor's height), one signed with the old key but
anchored after it does not."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from iot_harness import (
    CHAIN_ID,
    Broker,
    DeviceClock,
    IotChain,
    Publisher,
    free_port,
    now_ms,
    running_gateway,
    wait_for,
)

from citychain.api.gateway import GatewaySettings
from citychain.api.server import GatewayThread
from citychain.client import (
    AnchorMismatchError,
    Client,
    InclusionProofError,
    ReadingPendingError,
    ReadingSignatureError,
    ReadingTamperedError,
    VerificationError,
    verify_reading_answer,
)
from citychain.client.readings import reading_id_of, reading_signing_bytes
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.simple_merkle import inclusion_proof, merkle_root
from citychain.iot import verify as iot_verify
from citychain.iot.ngsi import NgsiServer, NodeDirectory, create_ngsi_app
from citychain.iot.reading import Reading, sign_reading, signing_bytes
from citychain.iot.store import ANCHORED, ReadingStore, ReadOnlyReadingStore
from citychain.modules.identity.messages import MsgRotateKey, rotation_sign_bytes

ROUTE = "/citychain/v1/readings/"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "reading_vector.json").read_text())


def test_sdk_and_iot_reading_encodings_agree_on_the_golden_vector() -> None:
    fields = {name: VECTOR[name] for name in ("device", "stream", "seq", "ts_ms", "value")}
    sig = bytes.fromhex(VECTOR["sig"])
    reading = Reading(sig=sig, **fields)
    assert reading_signing_bytes(VECTOR["chain_id"], fields).hex() == VECTOR["sign_bytes"]
    assert reading_signing_bytes(VECTOR["chain_id"], fields) == reading.sign_bytes(
        VECTOR["chain_id"])
    assert reading_id_of(fields, sig).hex() == VECTOR["reading_id"] == reading.reading_id.hex()


@dataclass
class World:
    url: str
    client: Client
    batches: list[list[Reading]]
    pending: Reading

    def answer(self, reading_id: str) -> httpx.Response:
        return httpx.get(self.url + ROUTE + reading_id, timeout=30)

    def proof(self, reading: Reading) -> dict[str, Any]:
        response = self.answer(reading.reading_id.hex())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def world(broker: Broker, chain: IotChain,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = now_ms() - 60_000
    batches = [[sign_reading(chain.key(name), CHAIN_ID, "pm25", 300 + i, base + 1000 * i, value)
                for i, value in enumerate(values)]
               for name, values in (("s1", (11, 12, 13)), ("s2", (21, 22, 23, 24, 25)))]
    store_path = tmp_path_factory.mktemp("proofs") / "readings.db"
    publisher = Publisher(broker)
    try:
        with running_gateway(broker, chain, store_path, batch_seconds=0.2) as gateway:
            total = 0
            for readings in batches:
                assert publisher.publish_readings(readings) == readings
                total += len(readings)
                wait_for(lambda: gateway.stats()["accepted"] == total  # noqa: B023
                         and gateway.store.counts().get("readings_accepted", 0) == 0
                         and not gateway.store.batches("sealed"), what="readings anchored")
            assert sum(b.reading_count for b in gateway.store.batches(ANCHORED)) == total
        pending = sign_reading(chain.key("s2"), CHAIN_ID, "pm25", 400, now_ms(), 99)
        with running_gateway(broker, chain, store_path, batch_seconds=600) as gateway:
            assert publisher.publish_readings([pending]) == [pending]
            wait_for(lambda: gateway.stats()["accepted"] == 1, what="the pending reading")
    finally:
        publisher.close()
    store = ReadOnlyReadingStore(store_path)
    directory = NodeDirectory(chain.rpc_url)
    server = NgsiServer(create_ngsi_app(store, directory), port=free_port()).start()
    api = GatewayThread(GatewaySettings(node_url=chain.rpc_url, rate_limit=0)).start()
    client = Client(api.url, trusted_genesis=chain.genesis_path)
    try:
        yield World(server.url, client, batches, pending)
    finally:
        client.close()
        api.stop()
        server.stop()
        directory.close()
        store.close()


def test_the_served_proof_verifies_through_the_sdk(world: World) -> None:
    for readings in world.batches:
        for reading in readings:
            answer = world.proof(reading)
            assert answer["status"] == "anchored" and answer["verified"] is False
            assert answer["reading"]["sig"] == reading.sig.hex()
            assert answer["anchor"]["height"] > 0 and answer["anchor"]["tx_hash"]
            assert len(answer["batch"]["aunts"]) == len(inclusion_proof(
                [r.reading_id for r in readings], answer["batch"]["index"]))
            verified = verify_reading_answer(answer, world.client)
            assert verified.reading_id == reading.reading_id
            assert (verified.device, verified.value) == (reading.device, reading.value)
            assert verified.anchor["merkle_root"] == answer["batch"]["merkle_root"]
            assert verified.anchor["height"] == answer["anchor"]["height"]


def test_a_tampered_value_fails(world: World) -> None:
    answer = world.proof(world.batches[1][2])
    answer["reading"]["value"] += 1
    with pytest.raises(ReadingTamperedError):
        verify_reading_answer(answer, world.client)


def test_a_wrong_aunt_fails(world: World) -> None:
    answer = world.proof(world.batches[1][2])
    aunt = bytearray(bytes.fromhex(answer["batch"]["aunts"][0]))
    aunt[0] ^= 1
    answer["batch"]["aunts"][0] = aunt.hex()
    with pytest.raises(InclusionProofError):
        verify_reading_answer(answer, world.client)


def test_a_swapped_root_fails(world: World) -> None:
    reading = world.batches[1][0]
    other = world.proof(world.batches[0][0])
    answer = world.proof(reading)
    answer["batch"]["merkle_root"] = other["batch"]["merkle_root"]
    with pytest.raises(InclusionProofError):
        verify_reading_answer(answer, world.client)
    # A root the reading is really a leaf of, but that no anchor records.
    leaves = [reading.reading_id, b"\x01" * 32]
    forged = copy.deepcopy(answer)
    forged["batch"].update(merkle_root=merkle_root(leaves).hex(), index=0, total=2,
                           aunts=[a.hex() for a in inclusion_proof(leaves, 0)])
    with pytest.raises(AnchorMismatchError, match="not anchored"):
        verify_reading_answer(forged, world.client)


def test_a_reading_id_not_in_the_batch_fails(world: World) -> None:
    outsider = world.proof(world.batches[0][1])
    answer = world.proof(world.batches[1][1])
    outsider["batch"] = answer["batch"]  # the other batch's proof, root and anchor
    outsider["anchor"] = answer["anchor"]
    with pytest.raises(InclusionProofError):
        verify_reading_answer(outsider, world.client)
    answer["reading_id"] = world.batches[0][1].reading_id.hex()
    with pytest.raises(ReadingTamperedError):
        verify_reading_answer(answer, world.client)


def test_errors_are_verification_errors(world: World) -> None:
    answer = world.proof(world.batches[0][0])
    answer["reading"]["seq"] += 1
    with pytest.raises(VerificationError):
        verify_reading_answer(answer, world.client)


def test_unknown_and_malformed_ids(world: World) -> None:
    missing = world.answer("00" * 32)
    assert missing.status_code == 404
    assert missing.json()["type"] == ERRORS + "ResourceNotFound"
    for text in ("xyz", "AB" * 32, "00" * 31):
        bad = world.answer(text)
        assert bad.status_code == 400, text
        assert bad.json()["type"] == ERRORS + "BadRequestData"


def test_a_pending_reading_is_never_called_verified(world: World) -> None:
    answer = world.proof(world.pending)
    assert answer["status"] == "pending" and answer["verified"] is False
    assert answer["anchor"] is None
    with pytest.raises(ReadingPendingError):
        verify_reading_answer(answer, world.client)
    answer["status"] = "anchored"  # a lying server still has no anchor to show
    with pytest.raises(ReadingPendingError):
        verify_reading_answer(answer, world.client)


def _signed_by(key: PrivateKey, reading: Reading) -> Reading:
    """``reading`` (of the device's DID) signed by ``key`` instead."""
    sig = key.sign(signing_bytes(CHAIN_ID, reading.device, reading.stream, reading.seq,
                                 reading.ts_ms, reading.value))
    return Reading(reading.device, reading.stream, reading.seq, reading.ts_ms, reading.value,
                   sig)


def _anchored(gateway: Any, accepted: int) -> bool:
    return bool(gateway.stats()["accepted"] == accepted
                and gateway.store.counts().get("readings_accepted", 0) == 0
                and not gateway.store.batches("sealed"))


def test_a_reading_anchored_before_a_key_rotation_still_verifies(
        broker: Broker, chain: IotChain, tmp_path: Path) -> None:
    old_key, new_key = chain.key("s4"), PrivateKey.from_secret("reading-proofs/s4-rotated")
    did = old_key.did
    store_path = tmp_path / "readings.db"
    clock = DeviceClock(old_key)
    before = [clock.next(41), clock.next(42)]
    publisher = Publisher(broker)
    try:
        with running_gateway(broker, chain, store_path, batch_seconds=0.2) as gateway:
            assert publisher.publish_readings(before) == before
            wait_for(lambda: _anchored(gateway, 2), what="the readings before the rotation")

        account = codec.decode(chain.client.query("/identity/account",
                                                  {"address": old_key.address}).value)
        proof = new_key.sign(rotation_sign_bytes(CHAIN_ID, did, new_key.public_key,
                                                 int(account["sequence"])))
        chain.send("s4", MsgRotateKey(new_key.public_key, proof))
        history = codec.decode(chain.client.query("/identity/key_history", {"did": did}).value)
        rotated_at = history["keys"][1]["height"]

        # A reading signed with the old key after the rotation, which a gateway stored anyway
        # (it still trusted the old key, or lies): it is sealed and anchored after the rotation.
        late = clock.next(43)
        seeded = ReadingStore(store_path)
        try:
            seeded.commit_readings([(late, now_ms())], {did: (late.seq, late.ts_ms)}, {})
        finally:
            seeded.close()
        fresh = _signed_by(new_key, clock.next(44))
        with running_gateway(broker, chain, store_path, batch_seconds=0.2) as gateway:
            assert publisher.publish_readings([fresh]) == [fresh]
            wait_for(lambda: _anchored(gateway, 1), what="the readings after the rotation")
            heights = {r.reading_id: gateway.store.get_batch(
                gateway.store.get_reading(r.reading_id).batch_id).height  # type: ignore[union-attr]
                for r in (*before, late, fresh)}
    finally:
        publisher.close()
    assert all(heights[r.reading_id] < rotated_at for r in before)
    assert heights[late.reading_id] >= rotated_at and heights[fresh.reading_id] >= rotated_at

    store = ReadingStore(store_path)
    directory = NodeDirectory(chain.rpc_url)
    server = NgsiServer(create_ngsi_app(ReadOnlyReadingStore(store_path), directory),
                        port=free_port()).start()
    api = GatewayThread(GatewaySettings(node_url=chain.rpc_url, rate_limit=0)).start()
    client = Client(api.url, trusted_genesis=chain.genesis_path)
    rpc = iot_verify.RpcProver(chain.rpc_url, chain.genesis_path)
    try:
        # The NGSI route's answer, checked by the SDK.
        world = World(server.url, client, [], late)
        for reading in (*before, fresh):
            assert verify_reading_answer(world.proof(reading), client).reading_id == \
                reading.reading_id
        with pytest.raises(ReadingSignatureError, match="did not sign"):
            verify_reading_answer(world.proof(late), client)
        tampered = world.proof(before[0])
        tampered["reading"]["value"] += 1
        with pytest.raises(ReadingTamperedError):
            verify_reading_answer(tampered, client)

        # iot verify's provers: the solo node's RPC and the HTTP gateway with the SDK.
        for prover in (rpc, iot_verify.SdkProver(client)):
            for reading in (*before, fresh):
                assert iot_verify.verify_reading(store, reading.reading_id,
                                                 prover).reading == reading
            with pytest.raises(iot_verify.ReadingVerificationError, match="did not sign"):
                iot_verify.verify_reading(store, late.reading_id, prover)
        with sqlite3.connect(store_path) as db:
            db.execute("UPDATE readings SET value = value + 1 WHERE id = ?",
                       (before[1].reading_id,))
        for prover in (rpc, iot_verify.SdkProver(client)):
            with pytest.raises(iot_verify.ReadingVerificationError, match="altered"):
                iot_verify.verify_reading(store, before[1].reading_id, prover)
    finally:
        rpc.close()
        client.close()
        api.stop()
        server.stop()
        directory.close()
        store.close()
