"""The oracle module through the full Application: register devices, anchor a batch from a
gateway, publish a feed value, then read everything back with Merkle proofs checked against the
committed app hash; a suspension takes effect in the very next block."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from citychain.app.application import Application
from citychain.app.types import TxResult
from citychain.client.verify import ProvenView, verify_reads
from citychain.core import codec
from citychain.core.errors import NotProvableError, RoleRequiredError
from citychain.core.module import Module
from citychain.core.query_index import QueryIndex
from citychain.modules.identity.api import ACCOUNT_KEEPER
from citychain.modules.identity.messages import MsgSuspendIdentity
from citychain.modules.identity.module import MODULE as IDENTITY
from citychain.modules.oracle.errors import DeviceNotActiveError
from citychain.modules.oracle.keys import DEVICE_ANCHOR_PREFIX
from citychain.modules.oracle.messages import (
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgPublishFeedValue,
    MsgRegisterDevice,
)
from citychain.modules.oracle.module import MODULE
from citychain.modules.oracle.types import compute_batch_id
from citychain.store import MemoryStore
from citychain.testing.chain import (
    GENESIS_TIME_NS,
    Cast,
    ChainRunner,
    make_genesis,
    memory_chain,
    sqlite_app,
)
from citychain.testing.checks import assert_error, assert_ok

ROOT = bytes(range(32))


def proven(runner: ChainRunner, name: str, params: dict[str, Any]) -> Any:
    """Ask ``/oracle/<name>`` with proofs, check every proof against the committed app hash and
    re-run the query over the proven reads only; return the (verified) answer."""
    response = runner.app.query(f"/oracle/{name}", codec.encode(params), 0, True)
    assert response.ok, response.log
    reads = verify_reads(runner.app_hash, list(response.reads))
    answer = codec.decode(response.value)
    assert MODULE.queries[name](ProvenView(reads), params) == answer
    return answer


CAST = Cast.make(devices=3, prefix="oracle-app/")


def started(runner: ChainRunner | None = None) -> tuple[ChainRunner, Cast, bytes]:
    """Register a gateway and two sensors, anchor one batch listing both sensors, declare a
    feed and publish a value from the batch (on ``runner``, default: a fresh memory chain)."""
    cast = CAST
    if runner is None:
        runner, _ = memory_chain(cast)
    gateway, sensor_a, sensor_b = cast.devices
    operator = cast.operator
    results = runner.run(
        runner.tx(operator, MsgRegisterDevice(gateway.did, "Gateway", "centre", (), False, 0, 0)),
        runner.tx(operator, MsgRegisterDevice(sensor_a.did, "AirQualityObserved", "centre",
                                              ("pm25:GQ:0:1000",), True, 52_520_008,
                                              13_404_954)),
        runner.tx(operator, MsgRegisterDevice(sensor_b.did, "WasteContainer", "north",
                                              ("fillingLevel:P1:0:100",), False, 0, 0)))
    for result in results:
        assert_ok(result)
    now_ms = runner.time_ns // 1_000_000
    devices = tuple(sorted((sensor_a.did, sensor_b.did)))
    anchor = MsgAnchorBatch(ROOT, devices, now_ms - 60_000, now_ms - 1_000, 120, b"")
    (result,) = runner.run(runner.tx(gateway, anchor))
    assert_ok(result)
    assert [e.type for e in result.events] == ["batch_anchored"]
    batch_id = compute_batch_id(ROOT, devices, now_ms - 60_000, now_ms - 1_000, 120, b"")
    assert result.events[0].get("batch_id") == batch_id.hex()
    results = runner.run(
        runner.tx(operator, MsgDeclareFeed("pm25-centre", "Mean PM2.5, centre", "GQ", 1, "mean",
                                           ("centre",))),
        runner.tx(operator, MsgPublishFeedValue("pm25-centre", now_ms - 60_000, now_ms, 184,
                                                (batch_id.hex(),))))
    for result in results:
        assert_ok(result)
    return runner, cast, batch_id


def test_device_anchor_and_feed_value_read_back_proven() -> None:
    runner, cast, batch_id = started()
    gateway, sensor_a, sensor_b = cast.devices
    device = proven(runner, "device", {"did": sensor_a.did})
    assert device["owner"] == cast.operator.did and device["identity_status"] == "active"
    assert device["pubkey"] == sensor_a.public_key.hex()
    assert device["location"]["latitude_udeg"] == 52_520_008

    anchor = proven(runner, "anchor", {"merkle_root": ROOT.hex()})
    assert anchor["batch_id"] == batch_id.hex() and anchor["reading_count"] == 120
    assert anchor["operator"] == cast.operator.did and anchor["submitter"] == gateway.did
    assert anchor["devices"] == sorted([sensor_a.did, sensor_b.did])

    feed = proven(runner, "feed", {"feed_id": "pm25-centre"})
    assert feed["publisher"] == cast.operator.did and feed["scale"] == 1
    value = proven(runner, "feed_value", {"feed_id": "pm25-centre"})
    assert value["value"] == 184 and value["source_batch_ids"] == [batch_id.hex()]
    assert proven(runner, "feed_value", {"feed_id": "pm25-centre",
                                         "window_end_ms": value["window_end_ms"]}) == value
    assert proven(runner, "feed_value", {"feed_id": "no-such-feed"}) is None  # non-membership
    assert proven(runner, "params", {})["max_batch_devices"] == 1_000

    covering = runner.query("/oracle/anchors_by_device",
                            {"did": sensor_b.did, "from_ms": anchor["first_reading_ms"] + 5})
    assert [a["batch_id"] for a in covering["anchors"]] == [batch_id.hex()]
    refused = runner.app.query("/oracle/anchors_by_device",
                               codec.encode({"did": sensor_b.did, "from_ms": 1}), 0, True)
    assert (refused.codespace, refused.code) == (NotProvableError.codespace,
                                                 NotProvableError.code)

    exported = runner.app.export_genesis()["oracle"]
    assert len(exported["devices"]) == 3 and len(exported["feed_values"]) == 1


def test_suspension_takes_effect_in_the_next_block() -> None:
    runner, cast, _ = started()
    _, sensor_a, _ = cast.devices
    (result,) = runner.run(runner.tx(cast.registrar, MsgSuspendIdentity(sensor_a.did, "case-9")))
    assert_ok(result)
    assert proven(runner, "device", {"did": sensor_a.did})["identity_status"] == "suspended"
    now_ms = runner.time_ns // 1_000_000
    late = MsgAnchorBatch(b"\x42" * 32, (sensor_a.did,), now_ms - 5_000, now_ms, 3, b"")
    (result,) = runner.run(runner.tx(cast.operator, late))
    assert_error(result, DeviceNotActiveError)


def test_ante_refuses_oracle_messages_without_the_operator_role() -> None:
    runner, cast = memory_chain(Cast.make(devices=1, prefix="oracle-app/"))
    citizen = cast.citizens[0]
    register = MsgRegisterDevice(cast.devices[0].did, "Vehicle", "centre", (), False, 0, 0)
    checked: TxResult = runner.check(runner.tx(citizen, register))
    assert_error(checked, RoleRequiredError)


def _covering(runner: ChainRunner, did: str, height: int = 0) -> list[str]:
    answer = runner.query("/oracle/anchors_by_device",
                          {"did": did, "from_ms": FROM_MS, "to_ms": FROM_MS + 3_600_000},
                          height=height)
    return [item["batch_id"] for item in answer["anchors"]]


FROM_MS = GENESIS_TIME_NS // 1_000_000  # every batch of these tests lies within an hour of it


def test_anchors_by_device_come_from_the_query_index_at_each_height() -> None:
    runner, cast, batch_id = started()
    _, sensor_a, sensor_b = cast.devices
    height = runner.query("/oracle/anchor", {"batch_id": batch_id.hex()})["height"]
    # the (device, batch) pairs are not in the authenticated state ...
    assert not any(key.startswith(DEVICE_ANCHOR_PREFIX) for key in runner.snapshot())
    # ... yet the query finds the batch from the height it was anchored at, not before
    for sensor in (sensor_a, sensor_b):
        assert _covering(runner, sensor.did, height - 1) == []
        assert _covering(runner, sensor.did, height) == [batch_id.hex()]
        assert _covering(runner, sensor.did) == [batch_id.hex()]


def test_a_chain_keeping_device_keys_in_state_answers_alike_with_another_app_hash() -> None:
    plain, cast, batch_id = started()
    genesis = make_genesis(cast)
    app_state = dict(genesis.app_state, oracle={"params": {"device_anchor_keys_in_state": 1}})
    legacy, _ = memory_chain(cast, replace(genesis, app_state=app_state))
    started(legacy)
    in_state = [key for key in legacy.snapshot() if key.startswith(DEVICE_ANCHOR_PREFIX)]
    assert len(in_state) == 2
    assert legacy.app_hash != plain.app_hash
    for sensor in cast.devices[1:]:
        assert _covering(legacy, sensor.did) == _covering(plain, sensor.did) == [batch_id.hex()]


def test_a_state_database_without_its_index_is_rebuilt_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    runner = ChainRunner(sqlite_app(path), make_genesis(CAST), proposer=CAST.node.address)
    runner.start().block()
    _, cast, batch_id = started(runner)
    app_hash = runner.app_hash
    entries = runner.app.store.index_entries()
    assert len(entries) == 2
    runner.app.store.close()
    with sqlite3.connect(path) as db:  # as a database written before the index existed
        db.execute("DROP TABLE query_index")
        db.execute("DROP TABLE query_index_info")
    reopened = ChainRunner(sqlite_app(path), make_genesis(CAST), proposer=CAST.node.address)
    reopened.start()
    try:
        assert reopened.app.store.index_entries() == entries
        assert reopened.app_hash == app_hash
        assert _covering(reopened, cast.devices[1].did) == [batch_id.hex()]
        (result,) = reopened.run(reopened.tx(cast.devices[0], MsgAnchorBatch(
            bytes(32), (cast.devices[2].did,), FROM_MS + 10, FROM_MS + 20, 1, batch_id)))
        assert_ok(result)  # and later commits keep writing it
        assert len(_covering(reopened, cast.devices[2].did)) == 2
    finally:
        reopened.app.store.close()


def test_a_provable_query_may_not_read_a_query_index() -> None:
    peek = Module(name="peek", handlers={}, queries={"entry": lambda view, params:
                                                       view.get(b"\x99\x01a")},
                  provable_queries=frozenset({"entry"}),
                  query_indexes=(QueryIndex("peek.index", 1, b"\x99\x00", b"\x99\x01",
                                            lambda key, value: [(b"\x99\x01" + value, b"")]),))
    app = Application(MemoryStore(), [IDENTITY, peek], ACCOUNT_KEEPER)
    assert app.query("/peek/entry", b"", 0, False).ok
    refused = app.query("/peek/entry", b"", 0, True)
    assert (refused.codespace, refused.code) == (NotProvableError.codespace,
                                                 NotProvableError.code)
    assert "query index" in refused.log
