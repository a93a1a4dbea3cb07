"""The oracle's ``device_records`` query: an owner's full device records in pages, each exactly
the ``device`` answer; its bounds, parameter errors and the size of its largest page."""

from __future__ import annotations

from typing import Any

import pytest
from oracle_world import GENESIS, K, did, make_view

from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidQueryError
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.modules.oracle.genesis import init_genesis as init_oracle
from citychain.modules.oracle.module import MODULE
from citychain.modules.oracle.queries import MAX_RECORDS_LIMIT
from citychain.testing.state import DictState

OWNED = sorted([K.sensor_a, K.sensor_b, K.gateway, K.suspended_sensor],
               key=lambda who: who.address)


def ask(view: DictState, name: str, **params: Any) -> Any:
    return MODULE.queries[name](view, params)


@pytest.fixture
def view() -> DictState:
    """Four devices of the operator (one suspended), one of another operator."""
    return make_view()


def test_records_are_the_device_answers_in_address_order(view: DictState) -> None:
    answer = ask(view, "device_records", owner=did(K.operator))
    assert answer["owner"] == did(K.operator) and answer["next_start_after"] is None
    assert [record["did"] for record in answer["records"]] == [did(who) for who in OWNED]
    for record in answer["records"]:
        assert record == ask(view, "device", did=record["did"])
    statuses = {record["did"]: record["identity_status"] for record in answer["records"]}
    assert statuses[did(K.suspended_sensor)] == "suspended"


def test_records_in_pages(view: DictState) -> None:
    everything = ask(view, "device_records", owner=K.operator.address)["records"]
    first = ask(view, "device_records", owner=did(K.operator), limit=3)
    assert first["records"] == everything[:3]
    assert first["next_start_after"] == OWNED[2].address
    rest = ask(view, "device_records", owner=did(K.operator),
               start_after=first["next_start_after"])
    assert rest["records"] == everything[3:] and rest["next_start_after"] is None
    by_did = ask(view, "device_records", owner=did(K.operator), start_after=did(OWNED[2]),
                 limit=3)
    assert by_did == rest
    exact = ask(view, "device_records", owner=did(K.operator), limit=4)
    assert exact["records"] == everything and exact["next_start_after"] is None


def test_an_owner_without_devices_gets_an_empty_page(view: DictState) -> None:
    for owner in (did(K.citizen), "did:city:" + "ee" * 20):
        assert ask(view, "device_records", owner=owner) == {
            "owner": owner, "records": [], "next_start_after": None}
    after_last = ask(view, "device_records", owner=did(K.operator), start_after="ff" * 20)
    assert after_last["records"] == [] and after_last["next_start_after"] is None


def test_records_match_the_devices_query(view: DictState) -> None:
    listed = ask(view, "devices", owner=did(K.operator))["devices"]
    records = ask(view, "device_records", owner=did(K.operator))["records"]
    assert [record["did"] for record in records] == listed
    assert did(K.foreign_sensor) not in listed


def _fleet(count: int) -> DictState:
    """An operator with ``count`` registered devices (two streams each)."""
    sensors = [PrivateKey.from_secret(f"device-records/{n}") for n in range(count)]
    view = DictState()
    init_identity(view, GENESIS, {"accounts": [
        {"pubkey": K.operator.public_key.hex(), "roles": ["operator"]},
        *({"pubkey": s.public_key.hex(), "roles": ["device"]} for s in sensors)]})
    init_oracle(view, GENESIS, {"devices": [
        {"address": s.address, "owner": K.operator.address,
         "device_type": "AirQualityObserved", "district": "centre",
         "streams": ["pm25:GQ:0:1000", "temp:CEL:-500:600"], "registered_height": 1}
        for s in sensors]})
    return view


def test_the_largest_page_is_bounded_and_about_half_a_megabyte() -> None:
    view = _fleet(MAX_RECORDS_LIMIT + 1)
    page = ask(view, "device_records", owner=did(K.operator), limit=MAX_RECORDS_LIMIT)
    assert len(page["records"]) == MAX_RECORDS_LIMIT and page["next_start_after"] is not None
    assert len(codec.encode(page)) < 700_000
    rest = ask(view, "device_records", owner=did(K.operator),
               start_after=page["next_start_after"], limit=MAX_RECORDS_LIMIT)
    assert len(rest["records"]) == 1 and rest["next_start_after"] is None
    assert len(ask(view, "device_records", owner=did(K.operator))["records"]) == 100  # default


@pytest.mark.parametrize(("params", "field"), [
    ({}, "owner"),
    ({"owner": "bob"}, "owner"),
    ({"owner": 7}, "owner"),
    ({"owner": "did:city:" + "ab" * 20, "start_after": "x"}, "start_after"),
    ({"owner": "did:city:" + "ab" * 20, "limit": 0}, "limit"),
    ({"owner": "did:city:" + "ab" * 20, "limit": MAX_RECORDS_LIMIT + 1}, "limit"),
    ({"owner": "did:city:" + "ab" * 20, "limit": "10"}, "limit"),
    ({"owner": "did:city:" + "ab" * 20, "did": "did:city:" + "ab" * 20}, "did"),
])
def test_invalid_device_records_params(view: DictState, params: dict[str, Any],
                                       field: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        ask(view, "device_records", **params)
    assert caught.value.field == field and caught.value.code == 17


def test_device_records_is_declared_and_not_provable() -> None:
    assert "device_records" in MODULE.queries
    assert [param.name for param in MODULE.query_params["device_records"]] == [
        "owner", "start_after", "limit"]
    assert "device_records" not in MODULE.provable_queries   # a range, like devices
