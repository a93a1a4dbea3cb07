"""The NGSI-LD read API against a real Mosquitto, a real solo chain and the IoT gateway: entities by
id and type with Smart Data Models names, attrs projection, every q operator and AND, temporal
queries (between/before/after, lastN), provenance checked against the chain's anchors, a pending
reading, NGSI-LD errors, notifications replayed by height without gap or repeat, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from iot_harness import (
    CHAIN_ID,
    Broker,
    IotChain,
    Publisher,
    free_port,
    now_ms,
    running_gateway,
    wait_for,
)

from citychain.core.crypto import PrivateKey
from citychain.core.simple_merkle import merkle_root
from citychain.core.tx import TxBody, sign_tx
from citychain.iot.ngsi import NgsiServer, NodeDirectory, create_ngsi_app, iso_ms
from citychain.iot.reading import Reading, sign_reading
from citychain.iot.store import ANCHORED, ReadingStoreUnavailableError, ReadOnlyReadingStore
from citychain.modules.identity.messages import MsgCreateIdentity, MsgGrantRole
from citychain.modules.oracle.messages import MsgRegisterDevice

BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def new_device(chain: IotChain, name: str, device_type: str, streams: tuple[str, ...],
               lat_udeg: int, lon_udeg: int) -> PrivateKey:
    """A fresh identity with the device role, registered by the operator with coordinates."""
    key = PrivateKey.from_secret(f"ngsi-{name}")
    result = chain.client.broadcast(sign_tx(key, TxBody(CHAIN_ID, key.address, 0, (
        MsgCreateIdentity(key.public_key),))), commit=True)
    assert (result["tx_result"] or result["check_tx"])["code"] == 0, result
    chain.send("op", MsgGrantRole(key.did, "device"),
               MsgRegisterDevice(key.did, device_type, "centre", streams, True, lat_udeg,
                                 lon_udeg))
    return key


@dataclass
class World:
    url: str
    store: ReadOnlyReadingStore
    chain: IotChain
    keys: dict[str, PrivateKey]
    readings: dict[str, list[Reading]]
    pending: Reading

    def eid(self, name: str, device_type: str) -> str:
        return f"urn:ngsi-ld:{device_type}:{self.keys[name].address}"

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + BASE + path, params=params, timeout=30)


@pytest.fixture(scope="module")
def world(broker: Broker, chain: IotChain,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    keys = {
        "bin": new_device(chain, "bin", "WasteContainer",
                          ("fill_bp:C62:0:10000", "status:C62:0:6"), 41_387_000, 2_170_000),
        "lamp": new_device(chain, "lamp", "StreetLight",
                           ("level_bp:C62:0:10000", "status:C62:0:3"), 41_388_000, 2_171_000),
        "bus": new_device(chain, "bus", "Vehicle", ("delay:SEC:-600:7200", "speed:KMH:0:2000"),
                          41_389_000, 2_172_000),
        "s1": chain.key("s1"), "s2": chain.key("s2")}
    base = now_ms() - 120_000
    plan = {"bin": [("fill_bp", 1200), ("fill_bp", 4800), ("status", 1), ("fill_bp", 7312)],
            "lamp": [("status", 0), ("level_bp", 5000)],
            "bus": [("speed", 315), ("delay", 40), ("speed", 422), ("delay", -15)],
            "s1": [("pm25", 12), ("temp", 215), ("pm25", 35)],
            "s2": [("pm25", 80), ("temp", -32)]}
    readings: dict[str, list[Reading]] = {}
    for name, items in plan.items():
        readings[name] = [sign_reading(keys[name], CHAIN_ID, stream, 100 + i,
                                       base + 1000 * i, value)
                          for i, (stream, value) in enumerate(items)]
    everything = [r for name in plan for r in readings[name]]
    store_path = tmp_path_factory.mktemp("ngsi") / "readings.db"
    publisher = Publisher(broker)
    try:
        # Several small batches (one per device, anchored in turn), then one pending reading.
        with running_gateway(broker, chain, store_path, batch_seconds=0.2) as gateway:
            total = 0
            for name in plan:
                assert len(publisher.publish_readings(readings[name])) == len(readings[name])
                total += len(readings[name])
                wait_for(lambda: gateway.stats()["accepted"] == total  # noqa: B023
                         and gateway.store.counts().get("readings_accepted", 0) == 0
                         and not gateway.store.batches("sealed"), what=f"{name} anchored")
            assert sum(b.reading_count for b in gateway.store.batches(ANCHORED)) == len(
                everything)
        pending = sign_reading(keys["s2"], CHAIN_ID, "pm25", 200, now_ms(), 99)
        with running_gateway(broker, chain, store_path, batch_seconds=600) as gateway:
            assert publisher.publish_readings([pending]) == [pending]
            wait_for(lambda: gateway.stats()["accepted"] == 1, what="the pending reading")
    finally:
        publisher.close()
    store = ReadOnlyReadingStore(store_path)
    directory = NodeDirectory(chain.rpc_url)
    server = NgsiServer(create_ngsi_app(store, directory), port=free_port()).start()
    try:
        yield World(server.url, store, chain, keys, readings, pending)
    finally:
        server.stop()
        directory.close()
        store.close()


def test_entity_by_id_has_smart_data_models_attributes_and_location(world: World) -> None:
    answer = world.get(f"/entities/{world.eid('bin', 'WasteContainer')}")
    assert answer.status_code == 200
    assert "rel=\"http://www.w3.org/ns/json-ld#context\"" in answer.headers["link"]
    entity = answer.json()
    assert entity["id"] == world.eid("bin", "WasteContainer")
    assert entity["type"] == "WasteContainer"
    assert entity["location"] == {"type": "GeoProperty", "value": {
        "type": "Point", "coordinates": [2.17, 41.387]}}
    filling = entity["fillingLevel"]
    last_fill = world.readings["bin"][3]
    assert filling["value"] == 0.7312 and filling["unitCode"] == "C62"
    assert filling["observedAt"] == iso_ms(last_fill.ts_ms)
    assert filling["provenance"]["value"]["readingId"] == last_fill.reading_id.hex()
    assert filling["provenance"]["value"]["rawValue"] == 7312
    assert entity["status"]["value"] == "lidOpen"
    vehicle = world.get(f"/entities/{world.eid('bus', 'Vehicle')}").json()
    assert vehicle["speed"]["value"] == 42.2 and vehicle["speed"]["unitCode"] == "KMH"
    assert vehicle["delay"]["value"] == -15
    air = world.get(f"/entities/{world.eid('s1', 'AirQualityObserved')}").json()
    assert air["pm25"]["value"] == 35 and air["temperature"]["value"] == 21.5
    assert "location" not in air                      # registered without coordinates
    context = httpx.get(world.url + BASE + "/context.jsonld").json()["@context"]
    assert context[0] == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
    assert "fillingLevel" in context[1] and "WasteContainer" in context[1]
    ld = httpx.get(world.url + BASE + f"/entities/{world.eid('bin', 'WasteContainer')}",
                   headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert ld.json()["@context"].endswith("/ngsi-ld/v1/context.jsonld")


def test_entities_by_type_id_and_pattern_with_paging(world: World) -> None:
    air = world.get("/entities", type="AirQualityObserved").json()
    assert [e["id"] for e in air] == sorted([world.eid("s1", "AirQualityObserved"),
                                             world.eid("s2", "AirQualityObserved")])
    mixed = world.get("/entities", type="StreetLight,Vehicle").json()
    assert sorted(e["type"] for e in mixed) == ["StreetLight", "Vehicle"]
    by_id = world.get("/entities", id=world.eid("lamp", "StreetLight")).json()
    assert [e["id"] for e in by_id] == [world.eid("lamp", "StreetLight")]
    pattern = world.get("/entities", idPattern="urn:ngsi-ld:(Vehicle|StreetLight):.*").json()
    assert len(pattern) == 2
    everything = world.get("/entities", count="true")
    assert everything.headers["ngsild-results-count"] == "5"
    ids = [e["id"] for e in everything.json()]
    pages = [e["id"] for offset in range(0, 5, 2)
             for e in world.get("/entities", limit="2", offset=str(offset)).json()]
    assert pages == ids == sorted(ids)
    assert world.get("/entities", type="ParkingSpot").json() == []


def test_attrs_projection(world: World) -> None:
    entity = world.get(f"/entities/{world.eid('bin', 'WasteContainer')}",
                       attrs="fillingLevel").json()
    assert set(entity) == {"id", "type", "fillingLevel"}
    listed = world.get("/entities", type="Vehicle", attrs="speed,location").json()
    assert set(listed[0]) == {"id", "type", "speed", "location"}


@pytest.mark.parametrize(("q", "expected"), [
    ("pm25==35", ["s1"]),
    ("pm25!=35", ["s2"]),
    ("pm25>35", ["s2"]),
    ("pm25<100", ["s1", "s2"]),          # the pending 99 is s2's latest value
    ("pm25>=99", ["s2"]),
    ("pm25<=35", ["s1"]),
    ("temperature<0", ["s2"]),
    ("temperature>=21.5;pm25<40", ["s1"]),
    ("temperature>=21.5;pm25>40", []),
])
def test_q_operators_and_and_over_latest_values(world: World, q: str,
                                                 expected: list[str]) -> None:
    found = world.get("/entities", type="AirQualityObserved", q=q).json()
    assert sorted(e["id"] for e in found) == sorted(
        world.eid(name, "AirQualityObserved") for name in expected)


def test_q_on_strings_and_scaled_ratios(world: World) -> None:
    assert [e["type"] for e in world.get("/entities", q='status=="lidOpen"').json()] == [
        "WasteContainer"]
    assert [e["type"] for e in world.get("/entities", q='status=="ok"').json()] == [
        "StreetLight"]
    assert [e["type"] for e in world.get("/entities", q="fillingLevel>0.7").json()] == [
        "WasteContainer"]
    assert world.get("/entities", q="fillingLevel>0.7312").json() == []


def test_temporal_between_before_after_and_last_n(world: World) -> None:
    eid = world.eid("bus", "Vehicle")
    speeds = [r for r in world.readings["bus"] if r.stream == "speed"]
    delays = [r for r in world.readings["bus"] if r.stream == "delay"]
    whole = world.get(f"/temporal/entities/{eid}").json()
    assert [i["value"] for i in whole["speed"]] == [31.5, 42.2]
    assert [i["observedAt"] for i in whole["delay"]] == [iso_ms(r.ts_ms) for r in delays]
    assert all(i["provenance"]["value"]["status"] == "anchored" for i in whole["speed"])

    between = world.get(f"/temporal/entities/{eid}", timerel="between",
                        timeAt=iso_ms(speeds[0].ts_ms), endTimeAt=iso_ms(speeds[1].ts_ms)
                        ).json()
    assert [i["value"] for i in between["speed"]] == [31.5]      # end excluded
    assert [i["value"] for i in between["delay"]] == [40]
    before = world.get(f"/temporal/entities/{eid}", timerel="before",
                       timeAt=iso_ms(delays[0].ts_ms)).json()
    assert [i["value"] for i in before["speed"]] == [31.5] and "delay" not in before
    after = world.get(f"/temporal/entities/{eid}", timerel="after",
                      timeAt=iso_ms(speeds[1].ts_ms), attrs="speed").json()
    assert [i["value"] for i in after["speed"]] == [42.2] and "delay" not in after

    last = world.get(f"/temporal/entities/{eid}", lastN="1").json()
    assert [i["value"] for i in last["speed"]] == [42.2]
    assert [i["value"] for i in last["delay"]] == [-15]
    simple = world.get(f"/temporal/entities/{eid}", lastN="2", attrs="speed",
                       options="temporalValues").json()
    assert simple["speed"] == {"type": "Property", "values": [
        [31.5, iso_ms(speeds[0].ts_ms)], [42.2, iso_ms(speeds[1].ts_ms)]]}

    fills = world.get("/temporal/entities", type="WasteContainer", attrs="fillingLevel",
                      timerel="after", timeAt=iso_ms(world.readings["bin"][1].ts_ms)).json()
    assert [[i["value"] for i in e["fillingLevel"]] for e in fills] == [[0.48, 0.7312]]


def test_provenance_links_to_the_anchor_on_chain(world: World) -> None:
    checked = 0
    for name, device_type in (("bin", "WasteContainer"), ("bus", "Vehicle"),
                              ("s1", "AirQualityObserved")):
        temporal = world.get(f"/temporal/entities/{world.eid(name, device_type)}").json()
        for key, instances in temporal.items():
            if key in ("id", "type", "location"):
                continue
            for item in instances:
                provenance = item["provenance"]["value"]
                anchor = provenance["anchor"]
                assert provenance["status"] == "anchored"
                batch = world.store.get_batch(bytes.fromhex(provenance["batchId"]))
                assert batch is not None
                # the batch's leaves hash to the root the chain holds, at that height
                assert merkle_root(list(batch.leaves)).hex() == anchor["merkleRoot"]
                assert bytes.fromhex(provenance["readingId"]) in batch.leaves
                on_chain = world.chain.anchor(batch.merkle_root)
                assert on_chain is not None
                assert on_chain["batch_id"] == provenance["batchId"] == anchor["batchId"]
                assert on_chain["height"] == anchor["height"]
                results = world.chain.client.call("block_results", height=anchor["height"])
                roots = [dict(e["attributes"])["merkle_root"]
                         for tx in results["txs_results"] for e in tx["events"]
                         if e["type"] == "batch_anchored"]
                assert anchor["merkleRoot"] in roots
                tx = world.chain.client.tx(anchor["txHash"])
                assert int(tx["height"]) == anchor["height"]
                checked += 1
    assert checked == 4 + 4 + 3


def test_a_reading_not_yet_anchored_is_pending(world: World) -> None:
    air = world.get(f"/entities/{world.eid('s2', 'AirQualityObserved')}").json()
    assert air["pm25"]["value"] == 99
    provenance = air["pm25"]["provenance"]["value"]
    assert provenance["readingId"] == world.pending.reading_id.hex()
    assert provenance["status"] == "pending"
    assert provenance["batchId"] is None and provenance["anchor"] is None
    assert air["temperature"]["provenance"]["value"]["status"] == "anchored"


@pytest.mark.parametrize(("path", "params", "status", "kind"), [
    ("/entities", {"q": "pm25~=3"}, 400, "BadRequestData"),
    ("/entities", {"q": "pm25==3|pm25==4"}, 400, "BadRequestData"),
    ("/entities", {"q": "pm25=3"}, 400, "BadRequestData"),
    ("/entities", {"q": "pm25==abc"}, 400, "BadRequestData"),
    ("/entities", {"limit": "1000"}, 400, "BadRequestData"),
    ("/entities", {"idPattern": "("}, 400, "BadRequestData"),
    ("/entities/urn:ngsi-ld:Vehicle:" + "0" * 40, {}, 404, "ResourceNotFound"),
    ("/entities/not a uri", {}, 400, "BadRequestData"),
    ("/temporal/entities/urn:ngsi-ld:Vehicle:" + "0" * 40, {}, 404, "ResourceNotFound"),
    ("/temporal/entities", {"timerel": "during", "timeAt": "2026-01-01T00:00:00Z"}, 400,
     "BadRequestData"),
    ("/temporal/entities", {"timerel": "between", "timeAt": "2026-01-01T00:00:00Z"}, 400,
     "BadRequestData"),
    ("/temporal/entities", {"timerel": "before", "timeAt": "yesterday"}, 400,
     "BadRequestData"),
    ("/temporal/entities", {"lastN": "0"}, 400, "BadRequestData"),
    ("/subscriptions", {}, 404, "ResourceNotFound"),
])
def test_errors_in_ngsi_ld_format(world: World, path: str, params: dict[str, str],
                                  status: int, kind: str) -> None:
    answer = world.get(path, **params)
    assert answer.status_code == status
    body = answer.json()
    assert body["type"] == ERRORS + kind
    assert body["status"] == status and body["title"] and body["detail"]


def test_a_type_mismatch_in_the_id_is_not_found(world: World) -> None:
    wrong = f"urn:ngsi-ld:Vehicle:{world.keys['bin'].address}"
    assert world.get(f"/entities/{wrong}").status_code == 404


def test_notifications_replay_by_height_without_gap_or_repeat(world: World) -> None:
    anchored = sorted(world.store.batches(ANCHORED), key=lambda b: b.height)
    assert len(anchored) >= 5
    seen: list[dict[str, Any]] = []
    height = 0
    for _ in range(50):
        page = world.get("/notifications", from_height=str(height), limit="1").json()
        if not page["notifications"]:
            assert page["nextFromHeight"] == height
            break
        seen.extend(page["notifications"])
        assert page["nextFromHeight"] == page["notifications"][-1]["height"] + 1
        height = page["nextFromHeight"]
    ids = [n["anchor"]["batchId"] for n in seen]
    assert ids == [b.batch_id.hex() for b in anchored]          # every batch, once, in order
    assert [n["height"] for n in seen] == sorted(n["height"] for n in seen)
    instances = {i["provenance"]["value"]["readingId"]
                 for n in seen for entity in n["data"] for key, items in entity.items()
                 if key not in ("id", "type", "location") for i in items}
    assert instances == {r.reading_id.hex() for rs in world.readings.values() for r in rs}
    assert world.pending.reading_id.hex() not in instances
    first = seen[0]
    assert first["type"] == "Notification" and first["subscriptionId"]
    assert first["notifiedAt"].endswith("Z")

    # Replaying from the middle gives exactly the suffix; a type filter keeps the heights.
    middle = seen[2]["height"]
    suffix = world.get("/notifications", from_height=str(middle), limit="100").json()
    assert [n["anchor"]["batchId"] for n in suffix["notifications"]] == ids[2:]
    waste = world.get("/notifications", type="WasteContainer", limit="100").json()
    assert {e["type"] for n in waste["notifications"] for e in n["data"]} == {"WasteContainer"}
    assert waste["nextFromHeight"] == anchored[-1].height + 1


def test_cli_serves_the_store(world: World) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "citychain.cli", "iot", "ngsi", "--store",
         str(world.store.path), "--node", world.chain.rpc_url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "iot ngsi ready" in line, line
        answer = httpx.get(f"http://127.0.0.1:{port}{BASE}/entities", params={
            "type": "StreetLight"}, timeout=30)
        assert [e["id"] for e in answer.json()] == [world.eid("lamp", "StreetLight")]
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


def test_an_unreachable_node_is_an_internal_error(world: World) -> None:
    directory = NodeDirectory(f"http://127.0.0.1:{free_port()}")
    server = NgsiServer(create_ngsi_app(world.store, directory), port=free_port()).start()
    try:
        answer = httpx.get(server.url + BASE + "/entities", timeout=30)
    finally:
        server.stop()
        directory.close()
    assert answer.status_code == 500
    assert answer.json()["type"] == ERRORS + "InternalError"


def test_a_lost_reading_store_is_an_internal_error_naming_it(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def lost(*args: object, **kwargs: object) -> None:
        raise ReadingStoreUnavailableError("lost the connection to the reading store "
                                           "postgresql://city@127.0.0.1:5432/readings: gone")

    monkeypatch.setattr(world.store, "device_readings", lost)
    monkeypatch.setattr(world.store, "latest_readings", lost)
    directory = NodeDirectory(world.chain.rpc_url)
    server = NgsiServer(create_ngsi_app(world.store, directory), port=free_port()).start()
    try:
        answer = httpx.get(server.url + BASE + "/entities", params={"type": "StreetLight"},
                           timeout=30)
    finally:
        server.stop()
        directory.close()
    assert answer.status_code == 500
    assert answer.json()["type"] == ERRORS + "InternalError"
    assert answer.json()["title"] == "Reading store unavailable"
    assert "lost the connection to the reading store postgresql://" in answer.json()["detail"]
