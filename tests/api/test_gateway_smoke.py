"""The gateway answers the basic routes against a solo node (a smoke test of the fixture)."""

from __future__ import annotations

import base64

import httpx
from api_harness import SoloCity

from citychain.core.tx import build_tx
from citychain.modules.bank.messages import MsgTransfer


def test_submit_then_read_back(solo_city: SoloCity) -> None:
    alice, bob = solo_city.key("alice"), solo_city.key("bob")
    raw = build_tx(alice, solo_city.chain_id, 0,
                   MsgTransfer(to=f"did:city:{bob.address}", denom="ucity", amount=7))
    with httpx.Client(base_url=solo_city.api_url) as client:
        submitted = client.post("/v1/txs", json={"tx": base64.b64encode(raw).decode()})
        assert submitted.status_code == 200, submitted.text
        body = submitted.json()
        assert body["result"]["code"] == 0
        assert body["result"]["events"][0]["type"] == "coins_transferred"
        tx = client.get(f"/v1/txs/{body['hash']}").json()
        assert tx["height"] == body["height"]
        balance = client.get("/v1/query/bank/balance",
                             params={"address": bob.address, "denom": "ucity"}).json()
        assert balance["value"]["amount"] == 5_000_007
