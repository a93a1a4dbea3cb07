"""Oracle genesis: init(export(state)) reproduces the state exactly, and invalid sections are
refused naming the path."""

from __future__ import annotations

from typing import Any

import pytest
from oracle_world import GENESIS, NOW_MS, K, anchor_msg, batch_id_of, did, make_view, run

from citychain.core.errors import InvalidGenesisError
from citychain.modules.identity.genesis import export_genesis as export_identity
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.modules.oracle.genesis import export_genesis, init_genesis
from citychain.modules.oracle.keys import PREFIX
from citychain.modules.oracle.messages import (
    MsgDeclareFeed,
    MsgDecommissionDevice,
    MsgPublishFeedValue,
    MsgUpdateDevice,
)
from citychain.testing.state import DictState


def oracle_keys(view: DictState) -> dict[bytes, bytes]:
    return {k: v for k, v in view.snapshot().items() if k.startswith(PREFIX)}


def populated() -> DictState:
    view = make_view({"max_batch_span_ms": 7_200_000})
    first = anchor_msg((K.sensor_a, K.sensor_b), last_ms=NOW_MS - 30_000)
    run(view, K.operator, first)
    second = anchor_msg((K.sensor_a,), root=b"\x22" * 32, first_ms=NOW_MS - 30_000,
                        previous=batch_id_of(first))
    run(view, K.gateway, second)
    run(view, K.operator, MsgUpdateDevice(did(K.sensor_a), "east", ("no2:GQ:-5:400",), True,
                                          -33_868_820, 151_209_296))
    run(view, K.operator, MsgDecommissionDevice(did(K.sensor_b)))
    run(view, K.operator, MsgDeclareFeed("no2-east", "NO2 max", "GQ", 0, "max", ("east",)))
    run(view, K.operator, MsgPublishFeedValue("no2-east", NOW_MS - 60_000, NOW_MS - 30_000, 41,
                                              (batch_id_of(first).hex(),)))
    run(view, K.operator, MsgPublishFeedValue("no2-east", NOW_MS - 30_000, NOW_MS, 44,
                                              (batch_id_of(second).hex(),)))
    return view


def reloaded(section: Any, view: DictState) -> DictState:
    fresh = DictState()
    init_identity(fresh, GENESIS, export_identity(view))
    init_genesis(fresh, GENESIS, section)
    return fresh


def test_export_then_init_reproduces_state() -> None:
    view = populated()
    section = export_genesis(view)
    assert len(section["anchors"]) == 2 and len(section["feed_values"]) == 2
    again = reloaded(section, view)
    assert oracle_keys(again) == oracle_keys(view)
    assert export_genesis(again) == section


def test_empty_section_writes_default_params_only() -> None:
    view = DictState()
    init_genesis(view, GENESIS, {})
    assert list(oracle_keys(view)) == [PREFIX + b"\x00"]


def _broken(edit: Any) -> tuple[dict[str, Any], DictState]:
    view = populated()
    section = export_genesis(view)
    edit(section)
    return section, view


@pytest.mark.parametrize(("edit", "field"), [
    (lambda s: s.update(colour=1), "app_state.oracle.colour"),
    (lambda s: s["params"].update(max_batch_devices=0),
     "app_state.oracle.params.max_batch_devices"),
    (lambda s: s["devices"][0].update(address="ab" * 20), "app_state.oracle.devices[0].address"),
    (lambda s: s["devices"][0].update(device_type="Toaster"),
     "app_state.oracle.devices[0].device_type"),
    (lambda s: s["devices"][0].update(streams=["bad"]), "app_state.oracle.devices[0].streams[0]"),
    (lambda s: s["devices"][0].update(status="lost"), "app_state.oracle.devices[0].status"),
    (lambda s: s["devices"].append(dict(s["devices"][0])), "app_state.oracle.devices[5].address"),
    (lambda s: s["anchors"][0].update(batch_id="00" * 32), "app_state.oracle.anchors[0].batch_id"),
    (lambda s: s["anchors"][0].update(devices=[K.unregistered.address]),
     "app_state.oracle.anchors[0].devices[0]"),
    (lambda s: s["anchors"].append({**{k: v for k, v in s["anchors"][0].items()
                                       if k != "batch_id"}, "reading_count": 999}),
     "app_state.oracle.anchors[2].merkle_root"),
    (lambda s: s["feeds"][0].update(aggregation="median"), "app_state.oracle.feeds[0].aggregation"),
    (lambda s: s["feed_values"][1].update(window_end_ms=NOW_MS - 30_000),
     "app_state.oracle.feed_values[1].window_end_ms"),
    (lambda s: s["feed_values"][0].update(feed_id="other-feed"),
     "app_state.oracle.feed_values[0].feed_id"),
    (lambda s: s["feed_values"][0].update(source_batch_ids=["ee" * 32]),
     "app_state.oracle.feed_values[0].source_batch_ids[0]"),
])
def test_invalid_section_names_the_path(edit: Any, field: str) -> None:
    section, view = _broken(edit)
    with pytest.raises(InvalidGenesisError) as caught:
        reloaded(section, view)
    assert caught.value.field == field and caught.value.code == 20


def test_invalid_previous_batch_link() -> None:
    section, view = _broken(lambda s: None)
    linked = next(i for i, a in enumerate(section["anchors"]) if a["previous_batch_id"])
    del section["anchors"][1 - linked]
    with pytest.raises(InvalidGenesisError) as caught:
        reloaded(section, view)
    assert caught.value.field in (f"app_state.oracle.anchors[{i}].previous_batch_id"
                                  for i in range(2))


def test_invalid_device_without_identity() -> None:
    view = DictState()
    with pytest.raises(InvalidGenesisError) as caught:
        init_genesis(view, GENESIS, {"devices": [{"address": "ab" * 20, "owner": "cd" * 20,
                                                  "device_type": "Vehicle", "district": "x",
                                                  "streams": []}]})
    assert caught.value.field == "app_state.oracle.devices[0].address"
