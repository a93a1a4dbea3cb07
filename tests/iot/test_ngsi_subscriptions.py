"""NGSI-LD subscriptions against a real Mosquitto, a real solo chain and the IoT gateway: a
WasteContainer subscription with a q filter is notified at a local HTTP receiver only once the
batch is anchored, with the right entities and anchor receipts; replay from a height; a restarted
notifier resumes without gap or repeat; failed deliveries are retried and reported; invalid
bodies are 400 ProblemDetails naming the field; a deleted subscription stops."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
from citychain.core.tx import TxBody, sign_tx
from citychain.iot.ngsi import NgsiServer, NodeDirectory, create_ngsi_app
from citychain.iot.ngsi_subscriptions import (
    SubscriptionNotifier,
    SubscriptionStore,
    mount_subscriptions,
    notification_id,
)
from citychain.iot.reading import Reading, sign_reading
from citychain.iot.store import ANCHORED, ReadOnlyReadingStore
from citychain.modules.identity.messages import MsgCreateIdentity, MsgGrantRole
from citychain.modules.oracle.messages import MsgRegisterDevice

BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
BIN_STREAMS = ("fill_bp:C62:0:10000", "status:C62:0:6")


def new_device(chain: IotChain, name: str, device_type: str,
               streams: tuple[str, ...]) -> PrivateKey:
    key = PrivateKey.from_secret(f"ngsi-subscriptions-{name}")
    result = chain.client.broadcast(sign_tx(key, TxBody(CHAIN_ID, key.address, 0, (
        MsgCreateIdentity(key.public_key),))), commit=True)
    assert (result["tx_result"] or result["check_tx"])["code"] == 0, result
    chain.send("op", MsgGrantRole(key.did, "device"),
               MsgRegisterDevice(key.did, device_type, "centre", streams, True, 41_387_000,
                                 2_170_000))
    return key


class Receiver:
    """A tiny HTTP endpoint on a free loopback port recording POSTed notifications; it answers
    500 to the next ``fail`` requests."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    failing = outer.fail > 0
                    if failing:
                        outer.fail -= 1
                    else:
                        outer.received.append(json.loads(body))
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def of(self, subscription_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [n for n in self.received if n["subscriptionId"] == subscription_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Ngsi:
    """The NGSI-LD server with its subscriptions and notifier (restartable on the same file)."""

    store: ReadOnlyReadingStore
    chain: IotChain
    subscriptions_path: Path
    directory: NodeDirectory = field(init=False)
    subscriptions: SubscriptionStore = field(init=False)
    notifier: SubscriptionNotifier = field(init=False)
    server: NgsiServer = field(init=False)

    def start(self) -> Ngsi:
        self.directory = NodeDirectory(self.chain.rpc_url)
        self.subscriptions = SubscriptionStore(self.subscriptions_path)
        self.notifier = SubscriptionNotifier(self.store, self.directory, self.subscriptions,
                                             poll_seconds=0.1, backoff=lambda n: 0.3)
        app = create_ngsi_app(self.store, self.directory)
        mount_subscriptions(app, self.store, self.subscriptions, self.notifier)
        self.server = NgsiServer(app, port=free_port()).start()
        self.notifier.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.notifier.stop()
        self.subscriptions.close()
        self.directory.close()

    def post(self, body: Any) -> httpx.Response:
        return httpx.post(self.server.url + BASE + "/subscriptions", json=body, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.server.url + BASE + path, timeout=30)

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(self.server.url + BASE + path, timeout=30)


@dataclass
class World:
    broker: Broker
    chain: IotChain
    store_path: Path
    publisher: Publisher
    keys: dict[str, PrivateKey]
    receiver: Receiver
    seq: dict[str, int]
    ngsi: Ngsi = field(init=False)

    def reading(self, name: str, stream: str, value: int) -> Reading:
        self.seq[name] += 1
        return sign_reading(self.keys[name], CHAIN_ID, stream, self.seq[name],
                            now_ms() - 1000 + self.seq[name], value)

    def anchor(self, readings: list[Reading]) -> None:
        """Publish ``readings`` through a gateway and wait until all are anchored."""
        with running_gateway(self.broker, self.chain, self.store_path,
                             batch_seconds=0.2) as gateway:
            assert self.publisher.publish_readings(readings) == readings
            wait_for(lambda: gateway.stats()["accepted"] == len(readings)
                     and gateway.store.counts().get("readings_accepted", 0) == 0
                     and not gateway.store.batches("sealed"), what="readings anchored")

    def hold(self, readings: list[Reading]) -> None:
        """Publish ``readings`` through a gateway that stores them but seals no batch."""
        with running_gateway(self.broker, self.chain, self.store_path,
                             batch_seconds=600) as gateway:
            assert self.publisher.publish_readings(readings) == readings
            wait_for(lambda: gateway.stats()["accepted"] == len(readings),
                     what="readings stored")

    def eid(self, name: str) -> str:
        return f"urn:ngsi-ld:WasteContainer:{self.keys[name].address}"

    def subscribe(self, **extra: Any) -> str:
        body = {"type": "Subscription", "entities": [{"type": "WasteContainer"}],
                "q": "fillingLevel>0.5",
                "notification": {"endpoint": {"uri": self.receiver.uri,
                                              "accept": "application/json"}}}
        body.update(extra)
        answer = self.ngsi.post(body)
        assert answer.status_code == 201, answer.text
        location = answer.headers["location"]
        assert location.startswith(BASE + "/subscriptions/urn:ngsi-ld:Subscription:")
        return location.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def world(broker: Broker, chain: IotChain,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    keys = {"bin1": new_device(chain, "bin1", "WasteContainer", BIN_STREAMS),
            "bin2": new_device(chain, "bin2", "WasteContainer", BIN_STREAMS),
            "lamp": new_device(chain, "lamp", "StreetLight", ("level_bp:C62:0:10000",))}
    directory = tmp_path_factory.mktemp("ngsi-subscriptions")
    store_path = directory / "readings.db"
    publisher = Publisher(broker)
    receiver = Receiver()
    world = World(broker, chain, store_path, publisher, keys, receiver,
                  {name: 0 for name in keys})
    try:
        # History before any subscription: a full bin, a light, an empty bin, in turn.
        world.anchor([world.reading("bin1", "fill_bp", 6000)])
        world.anchor([world.reading("lamp", "level_bp", 5000)])
        world.anchor([world.reading("bin2", "fill_bp", 1000)])
        world.ngsi = Ngsi(ReadOnlyReadingStore(store_path), chain,
                          directory / "ngsi-subscriptions.db").start()
        yield world
        world.ngsi.stop()
        world.ngsi.store.close()
    finally:
        receiver.close()
        publisher.close()


def bin_batches(world: World) -> list[tuple[int, str]]:
    """(height, batch id) of the anchored batches holding a bin's reading, in (height,
    sealing) order."""
    bins = {world.keys[name].did for name in ("bin1", "bin2")}
    batches = sorted(world.ngsi.store.batches(ANCHORED), key=lambda b: b.height)
    return [(b.height, b.batch_id.hex()) for b in batches if bins & set(b.devices)]


def test_notified_only_after_anchoring_with_the_matching_entities(world: World) -> None:
    subscription = world.subscribe()
    time.sleep(0.5)
    assert world.receiver.of(subscription) == []          # history is not sent without a height
    full = world.reading("bin2", "fill_bp", 8100)
    empty = world.reading("bin1", "fill_bp", 200)
    light = world.reading("lamp", "level_bp", 9000)
    world.hold([full, empty, light])
    time.sleep(0.8)
    assert world.receiver.of(subscription) == []          # stored, not anchored: nothing yet
    world.anchor([])                                       # a gateway seals and anchors them
    notifications = wait_for(lambda: world.receiver.of(subscription), what="a notification")
    time.sleep(0.5)
    assert len(world.receiver.of(subscription)) == 1
    notification = notifications[0]
    assert notification["type"] == "Notification"
    assert notification["subscriptionId"] == subscription
    assert notification["notifiedAt"].endswith("Z")
    assert [e["id"] for e in notification["data"]] == [world.eid("bin2")]
    entity = notification["data"][0]
    assert entity["type"] == "WasteContainer"
    [instance] = entity["fillingLevel"]
    assert instance["value"] == 0.81
    provenance = instance["provenance"]["value"]
    assert provenance["readingId"] == full.reading_id.hex()
    assert provenance["status"] == "anchored"
    anchor = provenance["anchor"]
    on_chain = world.chain.anchor(bytes.fromhex(anchor["merkleRoot"]))
    assert on_chain is not None and on_chain["height"] == anchor["height"]
    assert notification["height"] == anchor["height"]
    assert notification["id"] == notification_id(subscription, anchor["height"],
                                                  bytes.fromhex(anchor["batchId"]))
    status = world.ngsi.get(f"/subscriptions/{subscription}").json()
    assert status["status"] == "active"
    assert status["notification"]["timesSent"] == 1
    assert status["notification"]["status"] == "ok"
    assert "lastNotification" in status["notification"]
    assert subscription in [s["id"] for s in world.ngsi.get("/subscriptions").json()]
    world.ngsi.delete(f"/subscriptions/{subscription}")


def test_replay_from_a_height(world: World) -> None:
    expected = bin_batches(world)
    assert len(expected) >= 3
    everything = world.subscribe(**{"citychain:fromHeight": 0, "q": "fillingLevel>=0"})
    wait_for(lambda: len(world.receiver.of(everything)) >= len(expected), what="the replay")
    time.sleep(0.5)
    notifications = world.receiver.of(everything)
    assert [(n["height"], n["anchor"]["batchId"]) for n in notifications] == expected
    assert {e["id"] for n in notifications for e in n["data"]} == {world.eid("bin1"),
                                                                   world.eid("bin2")}
    assert all(e["type"] == "WasteContainer" for n in notifications for e in n["data"])
    # From the second notification's height on: exactly the suffix.
    suffix = world.subscribe(**{"citychain:fromHeight": expected[1][0],
                                "q": "fillingLevel>=0"})
    wait_for(lambda: len(world.receiver.of(suffix)) >= len(expected) - 1, what="the suffix")
    time.sleep(0.5)
    assert [(n["height"], n["anchor"]["batchId"]) for n in world.receiver.of(suffix)
            ] == expected[1:]
    for subscription in (everything, suffix):
        assert world.ngsi.delete(f"/subscriptions/{subscription}").status_code == 204


def test_a_restarted_notifier_resumes_without_gap_or_duplicate(world: World) -> None:
    subscription = world.subscribe(**{"citychain:fromHeight": 0, "q": "fillingLevel>=0",
                                      "notification": {
                                          "endpoint": {"uri": world.receiver.uri},
                                          "attributes": ["fillingLevel"]}})
    wait_for(lambda: len(world.receiver.of(subscription)) >= 3, what="the replay")
    world.ngsi.stop()
    for value in (5100, 5200, 5300):                   # anchored while the server is down
        world.anchor([world.reading("bin1", "fill_bp", value)])
    world.ngsi.start()
    try:
        expected = bin_batches(world)
        wait_for(lambda: len(world.receiver.of(subscription)) >= len(expected),
                 what="resumed")
        time.sleep(0.6)
        received = world.receiver.of(subscription)
        ids = [n["id"] for n in received]
        assert len(ids) == len(set(ids))                # no duplicate
        assert [(n["height"], n["anchor"]["batchId"]) for n in received] == expected  # no gap
        assert all(set(e) <= {"id", "type", "location", "fillingLevel"}
                   for n in received for e in n["data"])
        assert world.ngsi.get(f"/subscriptions/{subscription}").json()[
            "notification"]["timesSent"] == len(received)
    finally:
        world.ngsi.delete(f"/subscriptions/{subscription}")


def test_a_failed_delivery_is_retried_and_reported(world: World) -> None:
    subscription = world.subscribe()
    world.receiver.fail = 2
    world.anchor([world.reading("bin2", "fill_bp", 9100)])
    failed = wait_for(lambda: (s := world.ngsi.get(f"/subscriptions/{subscription}").json())[
        "status"] == "failed" and s, what="a failure")
    assert failed["notification"]["status"] == "failed"
    assert "lastFailure" in failed["notification"]
    assert "500" in failed["notification"]["citychain:lastFailureReason"]
    [notification] = wait_for(lambda: world.receiver.of(subscription), what="the retry")
    assert [e["id"] for e in notification["data"]] == [world.eid("bin2")]
    recovered = world.ngsi.get(f"/subscriptions/{subscription}").json()
    assert recovered["status"] == "active"
    assert recovered["notification"]["timesSent"] == 3    # two failures, one success
    assert "lastSuccess" in recovered["notification"]
    world.ngsi.delete(f"/subscriptions/{subscription}")


def test_a_deleted_subscription_stops(world: World) -> None:
    subscription = world.subscribe()
    world.anchor([world.reading("bin1", "fill_bp", 9500)])
    wait_for(lambda: world.receiver.of(subscription), what="a notification")
    assert world.ngsi.delete(f"/subscriptions/{subscription}").status_code == 204
    assert world.ngsi.get(f"/subscriptions/{subscription}").status_code == 404
    assert world.ngsi.delete(f"/subscriptions/{subscription}").status_code == 404
    before = len(world.receiver.of(subscription))
    world.anchor([world.reading("bin1", "fill_bp", 9600)])
    time.sleep(1.0)
    assert len(world.receiver.of(subscription)) == before


def valid_body() -> dict[str, Any]:
    return {"type": "Subscription", "entities": [{"type": "WasteContainer"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/x"}}}


@pytest.mark.parametrize(("change", "field_name"), [
    ({"type": "Entity"}, "type"),
    ({"entities": []}, "entities"),
    ({"entities": [{"id": "urn:x"}]}, "entities[0].type"),
    ({"q": "fillingLevel~=3"}, "q"),
    ({"notification": None}, "notification"),
    ({"notification": {"endpoint": {"uri": "mqtt://127.0.0.1/x"}}},
     "notification.endpoint.uri"),
    ({"notification": {"endpoint": {"uri": "http://127.0.0.1:9/x", "accept": "text/xml"}}},
     "notification.endpoint.accept"),
    ({"notification": {"endpoint": {"uri": "http://127.0.0.1:9/x"}, "format": "keyValues"}},
     "notification.format"),
    ({"watchedAttributes": []}, "watchedAttributes"),
    ({"citychain:fromHeight": -1}, "citychain:fromHeight"),
    ({"throttling": 5}, "throttling"),
])
def test_invalid_subscription_body(world: World, change: dict[str, Any],
                                   field_name: str) -> None:
    body = {**valid_body(), **change}
    answer = world.ngsi.post(body)
    assert answer.status_code == 400
    problem = answer.json()
    assert problem["type"] == ERRORS + "BadRequestData"
    assert problem["status"] == 400 and problem["title"]
    assert problem["detail"].startswith(field_name + ":")


def test_invalid_json_duplicate_id_and_unknown_subscription(world: World) -> None:
    answer = httpx.post(world.ngsi.server.url + BASE + "/subscriptions", content=b"{",
                        headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["type"] == ERRORS + "InvalidRequest"
    body = {**valid_body(), "id": "urn:ngsi-ld:Subscription:fixed"}
    assert world.ngsi.post(body).status_code == 201
    again = world.ngsi.post(body)
    assert again.status_code == 409 and again.json()["type"] == ERRORS + "AlreadyExists"
    assert world.ngsi.delete("/subscriptions/urn:ngsi-ld:Subscription:fixed").status_code == 204
    missing = world.ngsi.get("/subscriptions/urn:ngsi-ld:Subscription:none")
    assert missing.status_code == 404 and missing.json()["type"] == ERRORS + "ResourceNotFound"
