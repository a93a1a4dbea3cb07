"""Oracle MsgAnchorBatch: who may anchor, what is stored and indexed, and every failure."""

from __future__ import annotations

from dataclasses import replace

import pytest
from oracle_world import (
    BLOCK,
    HEIGHT,
    NOW_MS,
    K,
    anchor_msg,
    batch_id_of,
    did,
    fails,
    make_view,
    run,
)

from citychain.core.context import TxContext
from citychain.core.errors import InvalidMessageError
from citychain.core.events import Event
from citychain.modules.identity.messages import MsgRevokeRole
from citychain.modules.identity.module import MODULE as IDENTITY
from citychain.modules.oracle import api, keys, state
from citychain.modules.oracle.errors import (
    AnchorNotAllowedError,
    BatchDeviceLimitExceededError,
    BatchRootAlreadyAnchoredError,
    BatchSpanExceededError,
    DeviceDecommissionedError,
    DeviceNotActiveError,
    DeviceNotFoundError,
    NotDeviceOwnerError,
    PreviousBatchNotFoundError,
    PreviousBatchOperatorMismatchError,
    TimestampInFutureError,
)
from citychain.modules.oracle.messages import MsgDecommissionDevice
from citychain.modules.oracle.module import MODULE
from citychain.modules.oracle.params import Params
from citychain.testing.state import DictState, query_view


@pytest.fixture
def view() -> DictState:
    """Identities, five registered devices (one suspended, one foreign) and default params."""
    return make_view()


def test_anchor_batch_stores_record_indexes_and_emits(view: DictState) -> None:
    msg = anchor_msg((K.sensor_a, K.sensor_b), count=25)
    events = run(view, K.operator, msg)
    batch_id = batch_id_of(msg)
    anchor = api.get_anchor(view, batch_id)
    assert anchor is not None
    assert anchor.merkle_root == b"\x11" * 32
    assert anchor.devices == tuple(sorted((K.sensor_a.address, K.sensor_b.address)))
    assert (anchor.first_reading_ms, anchor.last_reading_ms) == (NOW_MS - 60_000, NOW_MS - 1_000)
    assert anchor.reading_count == 25 and anchor.previous_batch_id == b""
    assert anchor.operator == anchor.submitter == K.operator.address
    assert (anchor.height, anchor.time_ns) == (HEIGHT, BLOCK.time_ns)
    assert state.get_batch_id_by_root(view, b"\x11" * 32) == batch_id
    assert list(view.iterate(keys.DEVICE_ANCHOR_PREFIX, b"\x04\x06")) == []  # not in state
    queried = query_view(view, MODULE.query_indexes)
    for device in (K.sensor_a, K.sensor_b):
        assert list(state.iter_device_anchors(queried, device.address, 0, NOW_MS)) == [
            (NOW_MS - 60_000, batch_id, NOW_MS - 1_000)]
    assert events == [Event.of(
        "batch_anchored", batch_id=batch_id.hex(), merkle_root=("11" * 32),
        operator=did(K.operator), submitter=did(K.operator), device_count=2,
        first_reading_ms=NOW_MS - 60_000, last_reading_ms=NOW_MS - 1_000, reading_count=25,
        previous_batch_id="")]


def test_chains_that_keep_device_keys_in_state_still_write_them() -> None:
    view = make_view({"device_anchor_keys_in_state": 1})
    msg = anchor_msg((K.sensor_a, K.sensor_b), count=25)
    run(view, K.operator, msg)
    batch_id = batch_id_of(msg)
    stored = [key for key, _ in view.iterate(keys.DEVICE_ANCHOR_PREFIX, b"\x04\x06")]
    assert stored == sorted(keys.device_anchor_key(device.address, NOW_MS - 60_000, batch_id)
                            for device in (K.sensor_a, K.sensor_b))
    # the index derives the same entries, so a query answers alike on both kinds of chain
    queried = query_view(view, MODULE.query_indexes)
    assert list(queried.iterate(keys.DEVICE_ANCHOR_PREFIX, b"\x04\x06")) == list(
        view.iterate(keys.DEVICE_ANCHOR_PREFIX, b"\x04\x06"))


def test_gateway_anchors_for_its_owner(view: DictState) -> None:
    msg = anchor_msg()
    events = run(view, K.gateway, msg)
    anchor = api.get_anchor(view, batch_id_of(msg))
    assert anchor is not None
    assert (anchor.operator, anchor.submitter) == (K.operator.address, K.gateway.address)
    assert events[0].get("operator") == did(K.operator)
    assert events[0].get("submitter") == did(K.gateway)


def test_anchor_links_previous_batch_of_same_operator(view: DictState) -> None:
    first = anchor_msg(last_ms=NOW_MS - 30_000)
    run(view, K.operator, first)
    second = anchor_msg(root=b"\x22" * 32, first_ms=NOW_MS - 30_000, previous=batch_id_of(first))
    events = run(view, K.gateway, second)
    assert events[0].get("previous_batch_id") == batch_id_of(first).hex()
    stored = api.get_anchor(view, batch_id_of(second))
    assert stored is not None and stored.previous_batch_id == batch_id_of(first)


def test_anchor_at_the_skew_limit_is_accepted(view: DictState) -> None:
    skew = Params().max_timestamp_skew_ms
    run(view, K.operator, anchor_msg(first_ms=NOW_MS, last_ms=NOW_MS + skew))


def test_invalid_anchor_by_citizen(view: DictState) -> None:
    fails(view, K.citizen, anchor_msg(), AnchorNotAllowedError, "sender")


def test_invalid_anchor_by_suspended_operator(view: DictState) -> None:
    fails(view, K.suspended_operator, anchor_msg(), AnchorNotAllowedError, "sender")


def test_invalid_anchor_by_device_that_is_not_a_gateway(view: DictState) -> None:
    fails(view, K.sensor_a, anchor_msg(), AnchorNotAllowedError, "sender")


def test_invalid_anchor_by_decommissioned_gateway(view: DictState) -> None:
    run(view, K.operator, MsgDecommissionDevice(did(K.gateway)))
    fails(view, K.gateway, anchor_msg(), AnchorNotAllowedError, "sender")


def revoke(view: DictState, who: str, role: str) -> None:
    IDENTITY.handlers[MsgRevokeRole](view, TxContext(BLOCK, K.registrar.address),
                                     MsgRevokeRole(who, role))


def test_invalid_anchor_by_gateway_whose_owner_lost_the_operator_role(view: DictState) -> None:
    revoke(view, did(K.operator), "operator")
    fails(view, K.gateway, anchor_msg(), AnchorNotAllowedError, "sender")


def test_invalid_anchor_by_gateway_that_lost_the_device_role(view: DictState) -> None:
    revoke(view, did(K.gateway), "device")
    fails(view, K.gateway, anchor_msg(), AnchorNotAllowedError, "sender")


def test_invalid_anchor_device_that_lost_the_device_role(view: DictState) -> None:
    revoke(view, did(K.sensor_a), "device")
    fails(view, K.operator, anchor_msg(), DeviceNotActiveError, "devices[0]")
    assert not api.is_device_active(view, did(K.sensor_a))


def test_invalid_anchor_more_devices_than_params(view: DictState) -> None:
    state.set_params(view, replace(Params(), max_batch_devices=1))
    error = fails(view, K.operator, anchor_msg((K.sensor_a, K.sensor_b)),
                  BatchDeviceLimitExceededError, "devices")
    assert error.details["limit"] == 1


def test_invalid_anchor_span_too_long(view: DictState) -> None:
    span = Params().max_batch_span_ms
    error = fails(view, K.operator, anchor_msg(first_ms=NOW_MS - span - 1, last_ms=NOW_MS),
                  BatchSpanExceededError, "last_reading_ms")
    assert error.details == {"span": span + 1, "limit": span}


def test_invalid_anchor_readings_in_the_future(view: DictState) -> None:
    skew = Params().max_timestamp_skew_ms
    error = fails(view, K.operator, anchor_msg(first_ms=NOW_MS, last_ms=NOW_MS + skew + 1),
                  TimestampInFutureError, "last_reading_ms")
    assert error.details["limit"] == NOW_MS + skew


def test_invalid_anchor_root_anchored_twice(view: DictState) -> None:
    first = anchor_msg()
    run(view, K.operator, first)
    again = anchor_msg((K.sensor_b,))  # same root, other fields: still refused
    error = fails(view, K.operator, again, BatchRootAlreadyAnchoredError, "merkle_root")
    assert error.details["batch_id"] == batch_id_of(first)
    fails(view, K.gateway, first, BatchRootAlreadyAnchoredError, "merkle_root")


def test_invalid_anchor_previous_batch_unknown(view: DictState) -> None:
    fails(view, K.operator, anchor_msg(previous=b"\x99" * 32), PreviousBatchNotFoundError,
          "previous_batch_id")


def test_invalid_anchor_previous_batch_of_other_operator(view: DictState) -> None:
    foreign = anchor_msg((K.foreign_sensor,), root=b"\x33" * 32)
    run(view, K.other_operator, foreign)
    fails(view, K.operator, anchor_msg(previous=batch_id_of(foreign)),
          PreviousBatchOperatorMismatchError, "previous_batch_id")


def test_invalid_anchor_unregistered_device(view: DictState) -> None:
    msg = anchor_msg((K.sensor_a, K.unregistered))
    index = msg.devices.index(did(K.unregistered))
    fails(view, K.operator, msg, DeviceNotFoundError, f"devices[{index}]")


def test_invalid_anchor_decommissioned_device(view: DictState) -> None:
    run(view, K.operator, MsgDecommissionDevice(did(K.sensor_b)))
    msg = anchor_msg((K.sensor_a, K.sensor_b))
    fails(view, K.operator, msg, DeviceDecommissionedError,
          f"devices[{msg.devices.index(did(K.sensor_b))}]")


def test_invalid_anchor_device_of_other_operator(view: DictState) -> None:
    msg = anchor_msg((K.sensor_a, K.foreign_sensor))
    error = fails(view, K.gateway, msg, NotDeviceOwnerError,
                  f"devices[{msg.devices.index(did(K.foreign_sensor))}]")
    assert error.details["owner"] == did(K.other_operator)


def test_invalid_anchor_suspended_device(view: DictState) -> None:
    msg = anchor_msg((K.suspended_sensor,))
    fails(view, K.operator, msg, DeviceNotActiveError, "devices[0]")


def test_invalid_anchor_unsorted_devices(view: DictState) -> None:
    msg = anchor_msg((K.sensor_a, K.sensor_b))
    swapped = replace(msg, devices=tuple(reversed(msg.devices)))
    fails(view, K.operator, swapped, InvalidMessageError, "devices[1]")


def test_invalid_anchor_fewer_readings_than_devices(view: DictState) -> None:
    fails(view, K.operator, anchor_msg((K.sensor_a, K.sensor_b), count=1), InvalidMessageError,
          "reading_count")


def test_invalid_anchor_root_not_32_bytes(view: DictState) -> None:
    fails(view, K.operator, replace(anchor_msg(), merkle_root=b"\x01" * 31), InvalidMessageError,
          "merkle_root")


def test_invalid_anchor_last_before_first(view: DictState) -> None:
    fails(view, K.operator, anchor_msg(first_ms=NOW_MS, last_ms=NOW_MS - 1),
          InvalidMessageError, "last_reading_ms")
