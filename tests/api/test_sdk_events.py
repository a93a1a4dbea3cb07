"""The SDK's event subscription against a real solo node and gateway: filtered events of
committed txs, and a subscription that survives a gateway restart without a gap or a duplicate."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from api_harness import SoloCity

from citychain.api.gateway import GatewaySettings
from citychain.api.server import GatewayThread
from citychain.client import AsyncClient, ChainEvent, Client, InvalidRequestError, TxBuilder, Wallet
from citychain.client.events import SseParser

DENOM = "ucity"


def wallet(city: SoloCity, name: str) -> Wallet:
    return Wallet.from_key_file(city.home / "keyring" / f"{name}.json")


def send(client: Client, city: SoloCity, amount: int) -> int:
    msg = TxBuilder(city.chain_id).bank.transfer(to=wallet(city, "bob").did, denom=DENOM,
                                                 amount=amount)
    submitted = client.submit(msg, wallet(city, "alice"), raise_on_failure=True)
    assert submitted.height is not None
    return submitted.height


def test_sse_parser_joins_data_lines_and_skips_comments() -> None:
    parser = SseParser()
    lines = [": keep-alive", "", "retry: 1000", "id: 3.0", "event: x", "data: {\"a\":", "data: 1}",
             ""]
    assert [parser.feed(line) for line in lines] == [None] * 7 + ['{"a":\n1}']


def test_subscription_gets_the_filtered_events_of_committed_txs(solo_city: SoloCity) -> None:
    with Client(solo_city.api_url) as client:
        first = send(client, solo_city, 11)
        send(client, solo_city, 12)
        amounts = []
        for event in client.events(module="bank", type="coins_transferred",
                                   account=wallet(solo_city, "bob").did, from_height=first):
            assert isinstance(event, ChainEvent) and event.module == "bank"
            amounts.append(event.attributes["amount"])
            if len(amounts) == 2:
                break
    assert amounts == ["11", "12"]


def test_a_bad_filter_is_an_invalid_request_naming_the_field(solo_city: SoloCity) -> None:
    with Client(solo_city.api_url) as client, pytest.raises(InvalidRequestError) as raised:
        next(client.events(module="no-such-module"))
    assert raised.value.field == "module"


def test_subscription_resumes_across_a_gateway_restart(solo_city: SoloCity) -> None:
    solo_city.stop_gateway()
    settings = GatewaySettings(node_url=solo_city.rpc_url, rate_limit=0)
    gateway = GatewayThread(settings).start()
    port = gateway.port
    received: list[ChainEvent] = []
    got_three = threading.Event()
    done = threading.Event()

    def subscribe() -> None:
        with Client(gateway.url) as client:
            for event in client.events(module="bank", type="coins_transferred", from_height=1):
                received.append(event)
                if len(received) == 3:
                    got_three.set()
                if len(received) == 8:
                    done.set()
                    return

    reader = threading.Thread(target=subscribe, daemon=True)
    reader.start()
    with Client(gateway.url) as client:
        for amount in range(1, 4):
            send(client, solo_city, amount)
    assert got_three.wait(30)
    gateway.stop()  # the stream drops; the subscriber retries until the gateway is back
    restarted = GatewayThread(settings, port=port).start()
    try:
        with Client(restarted.url) as client:
            for amount in range(4, 9):
                send(client, solo_city, amount)
        assert done.wait(30), [e.id for e in received]
    finally:
        restarted.stop()
    assert [e.attributes["amount"] for e in received] == [str(a) for a in range(1, 9)]
    ids = [tuple(int(p) for p in e.id.split(".")) for e in received]
    assert ids == sorted(set(ids))


def test_async_subscription(solo_city: SoloCity) -> None:
    async def run() -> list[Any]:
        async with AsyncClient(solo_city.api_url) as client:
            with Client(solo_city.api_url) as sync_client:
                height = send(sync_client, solo_city, 5)
            out = []
            async for event in client.events(type="coins_transferred", from_height=height):
                out.append(event.attributes["amount"])
                break
            return out

    assert asyncio.run(run()) == ["5"]
