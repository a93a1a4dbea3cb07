"""Oracle device handlers: register, update, decommission — each success (state and events) and
every failure (exact error, code and field, state untouched)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from oracle_world import BLOCK, HEIGHT, K, did, fails, make_view, run

from citychain.core.context import TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidMessageError, RoleRequiredError
from citychain.core.events import Event
from citychain.modules.identity import api as identity
from citychain.modules.identity.messages import MsgRotateKey, rotation_sign_bytes
from citychain.modules.identity.module import MODULE as IDENTITY
from citychain.modules.oracle import api, state
from citychain.modules.oracle.errors import (
    DeviceAlreadyRegisteredError,
    DeviceDecommissionedError,
    DeviceIdentityNotFoundError,
    DeviceNotActiveError,
    DeviceNotFoundError,
    DeviceRoleMissingError,
    NotDeviceOwnerError,
    StreamLimitExceededError,
)
from citychain.modules.oracle.messages import (
    MsgDecommissionDevice,
    MsgRegisterDevice,
    MsgUpdateDevice,
)
from citychain.modules.oracle.params import Params
from citychain.modules.oracle.types import Location, Stream
from citychain.testing.state import DictState


@pytest.fixture
def view() -> DictState:
    """Identities, five registered devices (one suspended, one foreign) and default params."""
    return make_view()


def register(who: str = did(K.spare), streams: tuple[str, ...] = ("pm10:GQ:0:2000",
                                                                  "pm25:GQ:0:1000")
             ) -> MsgRegisterDevice:
    return MsgRegisterDevice(who, "AirQualityObserved", "centre", streams, True, 52_520_008,
                             13_404_954)


def test_register_device_stores_record_and_emits(view: DictState) -> None:
    events = run(view, K.operator, register())
    device = state.get_device(view, K.spare.address)
    assert device is not None
    assert device.owner == K.operator.address
    assert device.device_type == "AirQualityObserved"
    assert device.location == Location("centre", True, 52_520_008, 13_404_954)
    assert device.streams == (Stream("pm10", "GQ", 0, 2000), Stream("pm25", "GQ", 0, 1000))
    assert (device.registered_height, device.updated_height) == (HEIGHT, HEIGHT)
    assert device.status == "registered" and device.decommissioned_height == 0
    assert list(state.iter_owner_devices(view, K.operator.address)).count(K.spare.address) == 1
    assert events == [Event.of("device_registered", did=did(K.spare), owner=did(K.operator),
                               device_type="AirQualityObserved", district="centre",
                               stream_count=2)]
    assert api.is_device_active(view, did(K.spare))
    assert api.device_pubkey(view, did(K.spare)) == K.spare.public_key


def test_invalid_register_sender_not_operator(view: DictState) -> None:
    error = fails(view, K.citizen, register(), RoleRequiredError, "sender")
    assert error.details["required"] == "operator"


def test_invalid_register_sender_suspended_operator(view: DictState) -> None:
    fails(view, K.suspended_operator, register(), RoleRequiredError, "sender")


def test_invalid_register_device_without_identity(view: DictState) -> None:
    fails(view, K.operator, register("did:city:" + "ab" * 20), DeviceIdentityNotFoundError,
          "did")


def test_invalid_register_identity_without_device_role(view: DictState) -> None:
    error = fails(view, K.operator, register(did(K.citizen)), DeviceRoleMissingError, "did")
    assert error.details["held"] == ["citizen"]


def test_invalid_register_suspended_device(view: DictState) -> None:
    fails(view, K.operator, register(did(K.suspended_sensor)), DeviceNotActiveError, "did")


def test_invalid_register_already_registered(view: DictState) -> None:
    error = fails(view, K.other_operator, register(did(K.sensor_a)),
                  DeviceAlreadyRegisteredError, "did")
    assert error.details["status"] == "registered"


def test_invalid_register_decommissioned_device(view: DictState) -> None:
    run(view, K.operator, MsgDecommissionDevice(did(K.sensor_a)))
    error = fails(view, K.operator, register(did(K.sensor_a)), DeviceAlreadyRegisteredError,
                  "did")
    assert error.details["status"] == "decommissioned"


def test_invalid_register_more_streams_than_params(view: DictState) -> None:
    state.set_params(view, replace(Params(), max_device_streams=1))
    error = fails(view, K.operator, register(), StreamLimitExceededError, "streams")
    assert error.details["limit"] == 1


def test_invalid_register_unsorted_streams(view: DictState) -> None:
    fails(view, K.operator, register(streams=("pm25:GQ:0:1000", "pm10:GQ:0:2000")),
          InvalidMessageError, "streams[1]")


def test_invalid_register_unknown_device_type(view: DictState) -> None:
    msg = MsgRegisterDevice(did(K.spare), "Toaster", "centre", (), False, 0, 0)
    fails(view, K.operator, msg, InvalidMessageError, "device_type")


def test_update_device_replaces_location_and_streams(view: DictState) -> None:
    msg = MsgUpdateDevice(did(K.sensor_a), "east", ("no2:GQ:0:400",), False, 0, 0)
    events = run(view, K.operator, msg)
    device = state.get_device(view, K.sensor_a.address)
    assert device is not None
    assert device.location == Location("east")
    assert device.streams == (Stream("no2", "GQ", 0, 400),)
    assert (device.registered_height, device.updated_height) == (1, HEIGHT)
    assert device.device_type == "AirQualityObserved" and device.owner == K.operator.address
    assert events == [Event.of("device_updated", did=did(K.sensor_a), owner=did(K.operator),
                               district="east", stream_count=1)]


def test_invalid_update_not_owner(view: DictState) -> None:
    msg = MsgUpdateDevice(did(K.sensor_a), "east", (), False, 0, 0)
    error = fails(view, K.other_operator, msg, NotDeviceOwnerError, "did")
    assert error.details["owner"] == did(K.operator)


def test_invalid_update_unregistered(view: DictState) -> None:
    msg = MsgUpdateDevice(did(K.unregistered), "east", (), False, 0, 0)
    fails(view, K.operator, msg, DeviceNotFoundError, "did")


def test_invalid_update_decommissioned(view: DictState) -> None:
    run(view, K.operator, MsgDecommissionDevice(did(K.sensor_a)))
    msg = MsgUpdateDevice(did(K.sensor_a), "east", (), False, 0, 0)
    fails(view, K.operator, msg, DeviceDecommissionedError, "did")


def test_invalid_update_sender_not_operator(view: DictState) -> None:
    msg = MsgUpdateDevice(did(K.sensor_a), "east", (), False, 0, 0)
    fails(view, K.sensor_a, msg, RoleRequiredError, "sender")


def test_invalid_update_more_streams_than_params(view: DictState) -> None:
    state.set_params(view, replace(Params(), max_device_streams=1))
    msg = MsgUpdateDevice(did(K.sensor_a), "east", ("a:GQ:0:1", "b:GQ:0:1"), False, 0, 0)
    fails(view, K.operator, msg, StreamLimitExceededError, "streams")


def test_invalid_update_coordinates_without_flag(view: DictState) -> None:
    msg = MsgUpdateDevice(did(K.sensor_a), "east", (), False, 1, 0)
    fails(view, K.operator, msg, InvalidMessageError, "latitude_udeg")


def test_decommission_device_keeps_record_and_deactivates(view: DictState) -> None:
    events = run(view, K.operator, MsgDecommissionDevice(did(K.sensor_a)))
    device = state.get_device(view, K.sensor_a.address)
    assert device is not None and device.decommissioned
    assert device.decommissioned_height == HEIGHT
    assert events == [Event.of("device_decommissioned", did=did(K.sensor_a),
                               owner=did(K.operator))]
    assert not api.is_device_active(view, did(K.sensor_a))
    assert api.device_pubkey(view, did(K.sensor_a)) is None
    assert identity.is_active(view, K.sensor_a.address)  # the identity itself is untouched


def test_invalid_decommission_twice(view: DictState) -> None:
    run(view, K.operator, MsgDecommissionDevice(did(K.sensor_a)))
    fails(view, K.operator, MsgDecommissionDevice(did(K.sensor_a)), DeviceDecommissionedError,
          "did")


def test_invalid_decommission_not_owner(view: DictState) -> None:
    fails(view, K.other_operator, MsgDecommissionDevice(did(K.sensor_a)), NotDeviceOwnerError,
          "did")


def test_invalid_decommission_unregistered(view: DictState) -> None:
    fails(view, K.operator, MsgDecommissionDevice(did(K.unregistered)), DeviceNotFoundError,
          "did")


def test_invalid_decommission_sender_not_operator(view: DictState) -> None:
    fails(view, K.citizen, MsgDecommissionDevice(did(K.sensor_a)), RoleRequiredError, "sender")


def test_suspension_and_rotation_show_at_once_through_the_facade(view: DictState) -> None:
    assert api.is_device_active(view, did(K.sensor_a))
    assert not api.is_device_active(view, did(K.suspended_sensor))
    assert api.device_pubkey(view, did(K.suspended_sensor)) == K.suspended_sensor.public_key
    assert not api.is_device_active(view, did(K.unregistered))
    assert api.device_pubkey(view, did(K.unregistered)) is None
    assert api.get_device(view, "not-a-did") is None
    # Rotate sensor_a's key through the identity module's own handler: the facade follows.
    new_key = PrivateKey.from_secret("oracle-tests/rotated")
    identity.set_sequence(view, K.sensor_a.address, 1)
    signature = new_key.sign(rotation_sign_bytes(BLOCK.chain_id, did(K.sensor_a),
                                                 new_key.public_key, 0))
    IDENTITY.handlers[MsgRotateKey](view, TxContext(BLOCK, K.sensor_a.address),
                                    MsgRotateKey(new_key.public_key, signature))
    assert api.device_pubkey(view, did(K.sensor_a)) == new_key.public_key
