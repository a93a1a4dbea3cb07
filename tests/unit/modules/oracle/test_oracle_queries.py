"""Oracle queries: answers, pagination, the time-range lookup of batches by device, parameter
errors, and the provable ones reading by get only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from oracle_world import NOW_MS, K, anchor_msg, batch_id_of, did, make_view, run

from citychain.core.errors import InvalidQueryError
from citychain.modules.oracle.messages import MsgDeclareFeed, MsgPublishFeedValue
from citychain.modules.oracle.module import MODULE
from citychain.modules.oracle.params import Params
from citychain.testing.state import DictState, query_view


@pytest.fixture
def view() -> DictState:
    """Identities, five registered devices (one suspended, one foreign) and default params."""
    return make_view()

# Three consecutive batches of sensor_a (two with sensor_b), 20 minutes each.
BATCHES = [anchor_msg((K.sensor_a, K.sensor_b), root=bytes([i + 1]) * 32,
                      first_ms=NOW_MS - (3 - i) * 1_200_000,
                      last_ms=NOW_MS - (3 - i) * 1_200_000 + 1_199_999)
           for i in range(3)]
IDS = [batch_id_of(msg).hex() for msg in BATCHES]


class GetOnly:
    """A view that refuses range reads (what a provable query may not do)."""

    def __init__(self, inner: DictState) -> None:
        self.inner = inner

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError("a provable query iterated")


def ask(view: Any, name: str, **params: Any) -> Any:
    """Run a query as a node does: over the state with the module's query index beside it."""
    if isinstance(view, DictState):
        view = query_view(view, MODULE.query_indexes)
    return MODULE.queries[name](view, params)


@pytest.fixture
def busy(view: DictState) -> DictState:
    for msg in BATCHES:
        run(view, K.operator, msg)
    run(view, K.operator, MsgDeclareFeed("pm25-centre", "Mean PM2.5", "GQ", 1, "mean",
                                         ("centre",)))
    for index in range(3):
        end = NOW_MS - (2 - index) * 1_200_000
        run(view, K.operator, MsgPublishFeedValue("pm25-centre", end - 1_200_000, end,
                                                  100 + index, (IDS[index],)))
    return view


def test_device_answer_includes_identity_key_and_status(busy: DictState) -> None:
    answer = ask(GetOnly(busy), "device", did=did(K.sensor_a))
    assert answer["did"] == did(K.sensor_a) and answer["owner"] == did(K.operator)
    assert answer["pubkey"] == K.sensor_a.public_key.hex()
    assert answer["identity_status"] == "active" and answer["status"] == "registered"
    assert answer["streams"] == [{"name": "pm25", "unit": "GQ", "min": 0, "max": 1000}]
    suspended = ask(busy, "device", address=K.suspended_sensor.address)
    assert suspended["identity_status"] == "suspended"
    assert ask(busy, "device", did=did(K.unregistered)) is None


def test_devices_lists_an_owner_in_pages(busy: DictState) -> None:
    everything = ask(busy, "devices", owner=did(K.operator))["devices"]
    assert sorted(everything) == everything and did(K.sensor_a) in everything
    assert did(K.foreign_sensor) not in everything
    first = ask(busy, "devices", owner=K.operator.address, limit=2)
    assert first["devices"] == everything[:2]
    rest = ask(busy, "devices", owner=did(K.operator), start_after=first["next_start_after"])
    assert first["devices"] + rest["devices"] == everything and rest["next_start_after"] is None


def test_anchor_by_id_or_root(busy: DictState) -> None:
    by_id = ask(GetOnly(busy), "anchor", batch_id=IDS[0])
    assert by_id["batch_id"] == IDS[0] and by_id["merkle_root"] == "01" * 32
    assert by_id["devices"] == sorted([did(K.sensor_a), did(K.sensor_b)])
    assert by_id["operator"] == by_id["submitter"] == did(K.operator)
    assert ask(GetOnly(busy), "anchor", merkle_root="01" * 32) == by_id
    assert ask(busy, "anchor", batch_id="00" * 32) is None
    assert ask(busy, "anchor", merkle_root="00" * 32) is None


def test_anchor_without_its_device_list(busy: DictState) -> None:
    full = ask(busy, "anchor", batch_id=IDS[0])
    assert full["device_count"] == len(full["devices"]) == 2
    short = ask(GetOnly(busy), "anchor", merkle_root="01" * 32, devices=0)
    assert "devices" not in short
    assert short == {key: value for key, value in full.items() if key != "devices"}
    assert ask(busy, "anchor", batch_id=IDS[0], devices=1) == full


def test_anchors_by_device_at_a_time(busy: DictState) -> None:
    middle = NOW_MS - 2 * 1_200_000 + 10
    answer = ask(busy, "anchors_by_device", did=did(K.sensor_a), from_ms=middle)
    assert [a["batch_id"] for a in answer["anchors"]] == [IDS[1]]
    edge = NOW_MS - 2 * 1_200_000 - 1  # the last millisecond of the first batch
    assert [a["batch_id"] for a in ask(busy, "anchors_by_device", address=K.sensor_b.address,
                                       from_ms=edge)["anchors"]] == [IDS[0]]
    assert ask(busy, "anchors_by_device", did=did(K.sensor_a), from_ms=NOW_MS)["anchors"] == []
    assert ask(busy, "anchors_by_device", did=did(K.foreign_sensor),
               from_ms=middle)["anchors"] == []


def test_anchors_by_device_over_a_range_in_pages(busy: DictState) -> None:
    params = {"did": did(K.sensor_a), "from_ms": NOW_MS - 4_000_000, "to_ms": NOW_MS}
    everything = ask(busy, "anchors_by_device", **params)
    assert [a["batch_id"] for a in everything["anchors"]] == IDS
    page = ask(busy, "anchors_by_device", **params, limit=2)
    assert [a["batch_id"] for a in page["anchors"]] == IDS[:2]
    cursor = page["next_start_after"]
    assert cursor == f"{BATCHES[1].first_reading_ms}:{IDS[1]}"
    rest = ask(busy, "anchors_by_device", **params, start_after=cursor)
    assert [a["batch_id"] for a in rest["anchors"]] == IDS[2:]
    assert rest["next_start_after"] is None


def test_feed_and_values(busy: DictState) -> None:
    feed = ask(GetOnly(busy), "feed", feed_id="pm25-centre")
    assert feed["publisher"] == did(K.operator) and feed["aggregation"] == "mean"
    latest = ask(GetOnly(busy), "feed_value", feed_id="pm25-centre")
    assert latest["value"] == 102 and latest["window_end_ms"] == NOW_MS
    assert latest["source_batch_ids"] == [IDS[2]]
    at = ask(GetOnly(busy), "feed_value", feed_id="pm25-centre",
             window_end_ms=NOW_MS - 1_200_000)
    assert at["value"] == 101
    assert ask(busy, "feed_value", feed_id="pm25-centre", window_end_ms=1) is None
    assert ask(busy, "feed", feed_id="no-such-feed") is None
    assert ask(busy, "feed_value", feed_id="no-such-feed") is None


def test_feed_history_in_pages(busy: DictState) -> None:
    first = ask(busy, "feed_history", feed_id="pm25-centre", limit=2)
    assert [v["value"] for v in first["values"]] == [100, 101]
    rest = ask(busy, "feed_history", feed_id="pm25-centre",
               start_after=first["next_start_after"])
    assert [v["value"] for v in rest["values"]] == [102] and rest["next_start_after"] is None


def test_params_answer(view: DictState) -> None:
    assert ask(GetOnly(view), "params") == Params().to_value()


@pytest.mark.parametrize(("name", "params", "field"), [
    ("device", {}, "did"),
    ("device", {"did": "x", "address": "y"}, "did"),
    ("device", {"did": "did:city:zz"}, "did"),
    ("device", {"address": "did:city:" + "ab" * 20}, "address"),
    ("devices", {}, "owner"),
    ("devices", {"owner": "bob"}, "owner"),
    ("anchor", {}, "batch_id"),
    ("anchor", {"batch_id": "AB" * 32}, "batch_id"),
    ("anchor", {"merkle_root": "ab"}, "merkle_root"),
    ("anchor", {"merkle_root": "ab" * 32, "devices": 2}, "devices"),
    ("anchor", {"merkle_root": "ab" * 32, "devices": "0"}, "devices"),
    ("anchors_by_device", {"did": "did:city:" + "ab" * 20}, "from_ms"),
    ("anchors_by_device", {"did": "did:city:" + "ab" * 20, "from_ms": 5, "to_ms": 4}, "to_ms"),
    ("anchors_by_device", {"did": "did:city:" + "ab" * 20, "from_ms": 5, "start_after": "x"},
     "start_after"),
    ("feed", {"feed_id": "A"}, "feed_id"),
    ("feed_value", {"feed_id": "abc", "window_end_ms": -1}, "window_end_ms"),
    ("feed_history", {"feed_id": "abc", "limit": 0}, "limit"),
    ("params", {"x": 1}, "x"),
])
def test_invalid_query_params(view: DictState, name: str, params: dict[str, Any],
                              field: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        ask(view, name, **params)
    assert caught.value.field == field and caught.value.code == 17


def test_module_declares_every_query_and_event() -> None:
    assert set(MODULE.query_params) == set(MODULE.queries)
    assert MODULE.provable_queries == {"device", "anchor", "feed", "feed_value", "params"}
    assert MODULE.event_types == {"device_registered", "device_updated",
                                  "device_decommissioned", "batch_anchored", "feed_declared",
                                  "feed_value_published"}
