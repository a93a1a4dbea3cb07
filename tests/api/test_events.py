"""Live events over SSE and WebSocket, with filters and resume across a gateway restart, and
their history pages, against a real solo node and gateway over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from api_harness import SoloCity
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from citychain.api.events import SCAN_BLOCKS_PER_PAGE, SharedReads, sse_frames
from citychain.api.gateway import Gateway, GatewaySettings
from citychain.api.node import BlockEvents, NodeStatus
from citychain.api.server import free_port
from citychain.consensus.solo.rpc import RpcServer
from citychain.core.crypto import PrivateKey
from citychain.core.messages import Msg
from citychain.core.tx import build_tx
from citychain.modules.bank.messages import MsgTransfer
from citychain.modules.identity.messages import MsgCreateIdentity, MsgGrantRole
from citychain.node.assemble import default_modules

TIMEOUT = httpx.Timeout(10.0)
"""A stream that should have sent something and did not within this fails the test."""


class Chain:
    """Commits signed txs straight through the node's RPC (so also while the gateway is down)
    and remembers each: hash, height and events."""

    def __init__(self, city: SoloCity) -> None:
        self.city = city
        self.sequences: dict[str, int] = {}
        self.committed: list[dict[str, Any]] = []
        self.rpc = httpx.Client(timeout=TIMEOUT)

    def close(self) -> None:
        self.rpc.close()

    def commit(self, key: PrivateKey, *messages: Msg) -> dict[str, Any]:
        sequence = self.sequences.get(key.address, 0)
        raw = build_tx(key, self.city.chain_id, sequence, *messages)
        answer = self.rpc.post(self.city.rpc_url, json={
            "jsonrpc": "2.0", "id": 1, "method": "broadcast_tx_commit",
            "params": {"tx": base64.b64encode(raw).decode()}}).json()["result"]
        assert answer["check_tx"]["code"] == 0, answer
        assert answer["tx_result"]["code"] == 0, answer
        self.sequences[key.address] = sequence + 1
        tx = {"hash": answer["hash"], "height": int(answer["height"]),
              "events": answer["tx_result"]["events"]}
        self.committed.append(tx)
        return tx

    def transfer(self, sender: str, recipient: str, *amounts: int) -> dict[str, Any]:
        """One tx of one transfer per amount (so one event each)."""
        to = f"did:city:{self.city.key(recipient).address}"
        return self.commit(self.city.key(sender), *(
            MsgTransfer(to=to, denom="ucity", amount=amount) for amount in amounts))

    def grant(self, name: str, role: str) -> dict[str, Any]:
        return self.commit(self.city.key("admin"), MsgGrantRole(
            did=f"did:city:{self.city.key(name).address}", role=role))

    def register(self) -> dict[str, Any]:
        """A new identity registering itself (no other account in its event)."""
        key = PrivateKey.generate()
        return self.commit(key, MsgCreateIdentity(pubkey=key.public_key))

    def tip(self) -> int:
        return max(tx["height"] for tx in self.committed)


@pytest.fixture
def chain(solo_city: SoloCity) -> Iterator[Chain]:
    chain = Chain(solo_city)
    try:
        yield chain
    finally:
        chain.close()


def history(city: SoloCity, **params: Any) -> list[dict[str, Any]]:
    """Every page of /v1/events/history, concatenated."""
    items: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=city.api_url, timeout=TIMEOUT) as client:
        for _ in range(1000):
            page = client.get("/v1/events/history",
                              params={**params, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            items.extend(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                return items
    raise AssertionError("history pagination did not end")


def sse_events(response: httpx.Response, count: int | None) -> Iterator[dict[str, Any]]:
    """Parse Server-Sent Events frames; stop after ``count`` events (None: at the stream's end),
    checking each frame's id and event name against its data."""
    fields: dict[str, str] = {}
    seen = 0
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            event = json.loads(fields["data"])
            assert fields["id"] == event["id"]
            assert fields["event"] == event["type"]
            yield event
            seen += 1
            if seen == count:
                return
        fields = {}


def read_sse(city: SoloCity, count: int, params: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    with httpx.Client(base_url=city.api_url, timeout=TIMEOUT) as client, \
            client.stream("GET", "/v1/events", params=params, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(response, count))


def read_ws(city: SoloCity, count: int, query: str) -> list[dict[str, Any]]:
    url = city.api_url.replace("http://", "ws://") + "/v1/events/ws?" + query
    with connect(url, open_timeout=10) as websocket:
        return [json.loads(websocket.recv(timeout=10)) for _ in range(count)]


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in events]


def order(event: dict[str, Any]) -> tuple[int, int]:
    return event["height"], event["n"]


def test_events_of_a_submitted_tx_arrive(solo_city: SoloCity, chain: Chain) -> None:
    alice, bob = solo_city.key("alice"), solo_city.key("bob")
    with httpx.Client(base_url=solo_city.api_url, timeout=TIMEOUT) as client, \
            client.stream("GET", "/v1/events") as response:
        # Live: the stream starts after the tip it saw when it answered, so these come next.
        assert response.status_code == 200
        transfer = chain.transfer("alice", "bob", 7, 8)
        grant = chain.grant("bob", "auditor")
        events = list(sse_events(response, 3))
    assert [event["type"] for event in events] == ["coins_transferred"] * 2 + ["role_granted"]
    first, second, third = events
    assert first == {
        "id": f"{transfer['height']}.0", "height": transfer["height"], "n": 0, "tx_index": 0,
        "tx_hash": transfer["hash"], "module": "bank", "type": "coins_transferred",
        "attributes": {"amount": "7", "denom": "ucity", "sender": f"did:city:{alice.address}",
                       "recipient": f"did:city:{bob.address}"}}
    assert (second["id"], second["attributes"]["amount"]) == (f"{transfer['height']}.1", "8")
    assert third["module"] == "identity"
    assert (third["height"], third["tx_hash"], third["id"]) == (
        grant["height"], grant["hash"], f"{grant['height']}.0")
    assert third["attributes"]["did"] == f"did:city:{bob.address}"
    assert third["attributes"]["role"] == "auditor"
    # The same events as the node reported in the txs' results, and as the history has them.
    for event, (tx, index) in zip(events, [(transfer, 0), (transfer, 1), (grant, 0)],
                                  strict=True):
        node_event = tx["events"][index]
        assert event["type"] == node_event["type"]
        assert event["attributes"] == dict(node_event["attributes"])
    assert history(solo_city, from_height=transfer["height"]) == events


def test_concurrent_streams_get_the_same_events(solo_city: SoloCity, chain: Chain) -> None:
    """Streams share the gateway's reads of the tip and of each block; each still gets all."""
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=solo_city.api_url, timeout=TIMEOUT))
        streams = [stack.enter_context(client.stream("GET", "/v1/events", params=params))
                   for params in [{}, {}, {"module": "bank"}, {"from_height": 1}]]
        websocket = stack.enter_context(connect(
            solo_city.api_url.replace("http://", "ws://") + "/v1/events/ws", open_timeout=10))
        for amount in range(1, 4):
            chain.transfer("alice", "bob", amount, amount)
        received = [list(sse_events(stream, 6)) for stream in streams]
        received.append([json.loads(websocket.recv(timeout=10)) for _ in range(6)])
    assert len(received[0]) == 6
    assert all(events == received[0] for events in received)
    assert [event["tx_hash"] for event in received[0][::2]] == [
        tx["hash"] for tx in chain.committed]


def mixed_chain(chain: Chain) -> None:
    """Blocks with events of two modules, some naming bob and some not."""
    chain.transfer("alice", "bob", 1, 2)
    chain.grant("bob", "auditor")
    chain.register()
    chain.transfer("alice", "admin", 3)
    chain.transfer("bob", "alice", 4)
    chain.grant("alice", "auditor")


def test_filters_by_module_type_and_account(solo_city: SoloCity, chain: Chain) -> None:
    mixed_chain(chain)
    everything = history(solo_city)
    assert len(everything) == sum(len(tx["events"]) for tx in chain.committed) == 7
    bob = solo_city.key("bob").address
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"module": "identity"}, lambda e: e["module"] == "identity"),
        ({"type": "coins_transferred"}, lambda e: e["type"] == "coins_transferred"),
        ({"type": "role_granted,identity_created"},
         lambda e: e["type"] in ("role_granted", "identity_created")),
        ({"module": ["bank", "identity"], "type": ["role_granted", "coins_transferred"]},
         lambda e: e["type"] in ("role_granted", "coins_transferred")),
        ({"account": f"did:city:{bob}"}, lambda e: f"did:city:{bob}" in
         e["attributes"].values()),
        ({"account": bob.upper()}, lambda e: f"did:city:{bob}" in e["attributes"].values()),
        ({"account": bob, "module": "bank"},
         lambda e: e["module"] == "bank" and f"did:city:{bob}" in e["attributes"].values()),
    ]
    for params, wanted in cases:
        expected = [event for event in everything if wanted(event)]
        assert 0 < len(expected) < len(everything), params
        assert history(solo_city, limit=2, **params) == expected, params
        assert read_sse(solo_city, len(expected), {"from_height": 1, **params}) == expected
    # The ids are the same whatever the filter: n counts every event of the block.
    assert {event["id"] for event in history(solo_city, module="identity")} <= set(
        ids(everything))


INVALID: list[tuple[dict[str, str], str]] = [
    ({"module": "nope"}, "module"),
    ({"module": "bank,nope"}, "module"),
    ({"type": "coins_sent"}, "type"),
    ({"module": "bank", "type": "role_granted"}, "type"),
    ({"account": "did:city:xyz"}, "account"),
    ({"account": "12345"}, "account"),
    ({"from_height": "0"}, "from_height"),
    ({"from_height": "x"}, "from_height"),
]


def test_invalid_filter_or_start_is_a_400(solo_city: SoloCity) -> None:
    with httpx.Client(base_url=solo_city.api_url, timeout=TIMEOUT) as client:
        for params, field in INVALID:
            for path in ("/v1/events", "/v1/events/history"):
                answer = client.get(path, params=params)
                assert answer.status_code == 400, (path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert (answer.json()["codespace"], answer.json()["code"]) == ("api", 1)
                assert answer.json()["field"] == field, answer.json()
    for params, field in INVALID:  # WebSocket: an error message, then close code 1008
        query = str(httpx.QueryParams(params))
        url = solo_city.api_url.replace("http://", "ws://") + "/v1/events/ws?" + query
        with connect(url, open_timeout=10) as websocket:
            error = json.loads(websocket.recv(timeout=10))["error"]
            assert (error["status"], error["field"]) == (400, field)
            with pytest.raises(ConnectionClosed) as closed:
                websocket.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason


def test_invalid_event_ids_are_a_400(solo_city: SoloCity) -> None:
    with httpx.Client(base_url=solo_city.api_url, timeout=TIMEOUT) as client:
        for params, headers, field in [({"after": "4"}, {}, "after"),
                                       ({"after": "0.1"}, {}, "after"),
                                       ({}, {"Last-Event-ID": "x.1"}, "Last-Event-ID")]:
            answer = client.get("/v1/events", params=params, headers=headers)
            assert (answer.status_code, answer.json()["field"]) == (400, field)
        for cursor in ("x", "1.", "-1"):
            answer = client.get("/v1/events/history", params={"cursor": cursor})
            assert (answer.status_code, answer.json()["field"]) == (400, "cursor")
        answer = client.get("/v1/events/history", params={"from_height": 5, "to_height": 4})
        assert (answer.status_code, answer.json()["field"]) == (400, "to_height")


def test_resume_across_a_gateway_restart_loses_and_repeats_nothing(
        solo_city: SoloCity, chain: Chain) -> None:
    for amount in range(1, 4):
        chain.transfer("alice", "bob", amount, amount + 100)
    received: list[dict[str, Any]] = []
    # A client reads a few events and leaves.
    received += read_sse(solo_city, 3, {"from_height": 1})
    for amount in range(4, 6):
        chain.transfer("alice", "bob", amount)
    # It comes back with its last id and stays connected while the gateway stops: its stream
    # ends (the server does not wait for it), and what it got so far counts.
    with httpx.Client(base_url=solo_city.api_url, timeout=TIMEOUT) as client, \
            client.stream("GET", "/v1/events",
                          headers={"Last-Event-ID": received[-1]["id"]}) as response:
        stream = sse_events(response, None)
        received += [next(stream) for _ in range(4)]
        solo_city.stop_gateway()
        received += list(stream)  # whatever was already in flight, then the end
    # Txs commit while the gateway is down; it comes back up (a new process state).
    for amount in range(6, 9):
        chain.transfer("alice", "bob", amount)
    chain.grant("bob", "auditor")
    solo_city.start_gateway()
    chain.transfer("bob", "alice", 9)
    total = sum(len(tx["events"]) for tx in chain.committed)
    received += read_sse(solo_city, total - len(received),
                         headers={"Last-Event-ID": received[-1]["id"]})

    everything = history(solo_city, limit=3)
    assert ids(received) == ids(everything)
    assert received == everything
    assert len(set(ids(received))) == len(received) == total
    assert all(order(a) < order(b) for a, b in itertools.pairwise(received))
    # Against the txs actually committed: every tx's events, in commit order.
    expected = [(tx["hash"], event["type"]) for tx in chain.committed for event in tx["events"]]
    assert [(event["tx_hash"], event["type"]) for event in received] == expected
    # `after` resumes the same way as Last-Event-ID.
    middle = everything[len(everything) // 2]["id"]
    assert read_sse(solo_city, 2, {"after": middle}) == everything[len(everything) // 2 + 1:][:2]


def test_websocket_gives_the_same_events_as_sse(solo_city: SoloCity, chain: Chain) -> None:
    mixed_chain(chain)
    bob = solo_city.key("bob").address
    cases: list[dict[str, Any]] = [{"from_height": 1}, {"from_height": 2, "account": bob},
                                   {"after": "1.0", "module": "bank"}]
    for params in cases:
        after = params.pop("after", None)
        expected = [event for event in history(solo_city, **params)
                    if after is None or order(event) > (1, 0)]
        if after is not None:
            params["after"] = after
        query = str(httpx.QueryParams(params))
        assert read_ws(solo_city, len(expected), query) == expected
        assert read_sse(solo_city, len(expected), params) == expected
    # Live over WebSocket: the stream starts after the tip it saw when it accepted.
    url = solo_city.api_url.replace("http://", "ws://") + "/v1/events/ws?type=coins_transferred"
    with connect(url, open_timeout=10) as websocket:
        tx = chain.transfer("alice", "bob", 11)
        event = json.loads(websocket.recv(timeout=10))
        assert (event["tx_hash"], event["attributes"]["amount"]) == (tx["hash"], "11")
        # The gateway stopping ends the stream with "going away" (it does not wait for us).
        solo_city.stop_gateway()
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (1001, 1012)


def test_stream_waits_for_an_unreachable_node(solo_city: SoloCity, chain: Chain) -> None:
    first = chain.transfer("alice", "bob", 1)
    port = free_port()
    solo_city.start_gateway(GatewaySettings(node_url=f"http://127.0.0.1:{port}", rate_limit=0))
    with httpx.Client(base_url=solo_city.api_url, timeout=TIMEOUT) as client, \
            client.stream("GET", "/v1/events", params={"from_height": 1}) as response:
        # The node is not there: the stream is open and waits (retrying) instead of failing.
        assert response.status_code == 200
        rpc = RpcServer(solo_city.runtime.node, "127.0.0.1", port)
        rpc.start()
        try:
            second = chain.transfer("alice", "bob", 2)
            events = list(sse_events(response, 2))
        finally:
            rpc.stop()
    assert [event["tx_hash"] for event in events] == [first["hash"], second["hash"]]


def test_history_pages_cover_every_event_exactly_once(solo_city: SoloCity,
                                                      chain: Chain) -> None:
    mixed_chain(chain)
    everything = history(solo_city, limit=100)
    assert len(everything) == sum(len(tx["events"]) for tx in chain.committed) == 7
    for limit in (1, 3, 6, 7):
        assert history(solo_city, limit=limit) == everything
    tip = chain.tip()
    assert history(solo_city, from_height=2, to_height=tip - 1, limit=2) == [
        event for event in everything if 2 <= event["height"] <= tip - 1]
    # Blocks beyond one page's scan: pages stop there, say where, and still cover everything.
    start = chain.grant("alice", "operator")["height"]
    while chain.tip() < start + SCAN_BLOCKS_PER_PAGE:
        chain.transfer("alice", "admin", 1)
    chain.grant("bob", "operator")
    with httpx.Client(base_url=solo_city.api_url, timeout=TIMEOUT) as client:
        first = client.get("/v1/events/history", params={
            "type": "role_granted", "from_height": start, "limit": 100}).json()
    assert len(first["items"]) == 1
    assert first["next_cursor"] == str(start + SCAN_BLOCKS_PER_PAGE - 1)
    granted = history(solo_city, type="role_granted", limit=100)
    assert [event["attributes"]["role"] for event in granted] == ["auditor"] * 2 + [
        "operator"] * 2
    everything = history(solo_city, limit=100)
    assert all(order(a) < order(b) for a, b in itertools.pairwise(everything))
    assert len(everything) == sum(len(tx["events"]) for tx in chain.committed)


def test_silence_gets_a_heartbeat_comment_and_events_get_frames() -> None:
    event = {"id": "7.2", "type": "coins_transferred", "height": 7, "n": 2}

    async def waiting_then_one_event() -> AsyncGenerator[dict[str, Any] | None]:
        yield None
        yield event

    async def frames(heartbeat: float) -> list[str]:
        return [frame async for frame in sse_frames(waiting_then_one_event(),
                                                    heartbeat=heartbeat)]

    data = json.dumps(event, separators=(",", ":"))
    event_frame = f"id: 7.2\nevent: coins_transferred\ndata: {data}\n\n"
    assert asyncio.run(frames(0)) == ["retry: 3000\n\n", ": keep-alive\n\n", event_frame]
    assert asyncio.run(frames(3600)) == ["retry: 3000\n\n", event_frame]


class CountingNode:
    """A node backend that counts reads and answers after a moment (so reads overlap)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def status(self) -> NodeStatus:
        self.calls.append("status")
        await asyncio.sleep(0.01)
        return NodeStatus("c", "solo", 5, "", "", "")

    async def block_events(self, height: int) -> BlockEvents:
        self.calls.append(f"block_events {height}")
        await asyncio.sleep(0.01)
        return BlockEvents(height, [(0, "ab" * 32, {"type": "coins_transferred",
                                                    "attributes": [["amount", "1"]]})])


def test_streams_share_the_reads_of_the_tip_and_of_each_block() -> None:
    node = CountingNode()
    gateway = Gateway(settings=GatewaySettings(event_poll_seconds=60),
                      node=node, modules=default_modules())  # node: a duck-typed NodeBackend
    reads = SharedReads(gateway, keep_blocks=2)

    async def many() -> None:
        tips = await asyncio.gather(*(reads.tip() for _ in range(5)))
        blocks = await asyncio.gather(*(reads.block(3) for _ in range(5)))
        assert tips == [5] * 5
        assert all(block == blocks[0] for block in blocks)
        assert blocks[0][0]["module"] == "bank" and blocks[0][0]["id"] == "3.0"
        assert await reads.tip() == 5 and await reads.block(3) == blocks[0]  # kept
        for height in (1, 2, 3):  # only the 2 most recent are kept
            await reads.block(height)

    asyncio.run(many())
    assert node.calls == ["status", "block_events 3", "block_events 1", "block_events 2",
                          "block_events 3"]
