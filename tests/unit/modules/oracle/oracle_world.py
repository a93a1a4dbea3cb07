"""Shared world of the oracle unit tests: identities, registered devices, and helpers that run a
message through the module's handler table (pure: a DictState, no application)."""

from __future__ import annotations

from typing import Any

import pytest

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import ChainError
from citychain.core.events import Event
from citychain.core.messages import Msg
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.modules.oracle.genesis import init_genesis as init_oracle
from citychain.modules.oracle.messages import MsgAnchorBatch
from citychain.modules.oracle.module import MODULE
from citychain.modules.oracle.types import compute_batch_id
from citychain.testing.state import DictState

CHAIN_ID = "citychain-test"
HEIGHT = 30
NOW_MS = 1_767_225_600_000
BLOCK = BlockContext(CHAIN_ID, HEIGHT, NOW_MS * 1_000_000)
GENESIS = BlockContext(CHAIN_ID, 0, 0)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_secret(f"oracle-tests/{name}")


class K:
    """Who is who in the oracle tests."""

    operator = key("operator")
    other_operator = key("other-operator")
    suspended_operator = key("suspended-operator")
    registrar = key("registrar")
    citizen = key("citizen")
    sensor_a = key("sensor-a")  # registered, owned by operator
    sensor_b = key("sensor-b")  # registered, owned by operator
    gateway = key("gateway")  # registered Gateway, owned by operator
    unregistered = key("unregistered")  # device role, not registered
    suspended_sensor = key("suspended-sensor")  # registered, identity suspended
    foreign_sensor = key("foreign-sensor")  # registered, owned by other_operator
    spare = key("spare")  # device role, not registered (for registrations)



def did(who: PrivateKey) -> str:
    return f"did:city:{who.address}"


def device_entry(who: PrivateKey, owner: PrivateKey, device_type: str = "AirQualityObserved",
                 district: str = "centre") -> dict[str, Any]:
    return {"address": who.address, "owner": owner.address, "device_type": device_type,
            "district": district, "streams": ["pm25:GQ:0:1000"], "registered_height": 1}


def make_view(params: dict[str, Any] | None = None) -> DictState:
    view = DictState()
    suspension = {"reason": "case", "height": 0, "by": K.registrar.address}
    accounts: list[dict[str, Any]] = [
        {"pubkey": K.operator.public_key.hex(), "roles": ["operator"]},
        {"pubkey": K.other_operator.public_key.hex(), "roles": ["operator"]},
        {"pubkey": K.suspended_operator.public_key.hex(), "roles": ["operator"],
         "suspension": suspension},
        {"pubkey": K.registrar.public_key.hex(), "roles": ["registrar"]},
        {"pubkey": K.citizen.public_key.hex(), "roles": ["citizen"]},
        {"pubkey": K.sensor_a.public_key.hex(), "roles": ["device"]},
        {"pubkey": K.sensor_b.public_key.hex(), "roles": ["device"]},
        {"pubkey": K.gateway.public_key.hex(), "roles": ["device"]},
        {"pubkey": K.unregistered.public_key.hex(), "roles": ["device"]},
        {"pubkey": K.suspended_sensor.public_key.hex(), "roles": ["device"],
         "suspension": suspension},
        {"pubkey": K.foreign_sensor.public_key.hex(), "roles": ["device"]},
        {"pubkey": K.spare.public_key.hex(), "roles": ["device"]},
    ]
    init_identity(view, GENESIS, {"accounts": accounts})
    init_oracle(view, GENESIS, {
        "params": params or {},
        "devices": [
            device_entry(K.sensor_a, K.operator),
            device_entry(K.sensor_b, K.operator, "WasteContainer", "north"),
            device_entry(K.gateway, K.operator, "Gateway"),
            device_entry(K.suspended_sensor, K.operator),
            device_entry(K.foreign_sensor, K.other_operator),
        ],
    })
    return view


def run(view: DictState, sender: PrivateKey, msg: Msg, block: BlockContext = BLOCK) -> list[Event]:
    """Validate and handle ``msg`` from ``sender``; return the events."""
    msg.validate_basic()
    ctx = TxContext(block, sender.address)
    MODULE.handlers[type(msg)](view, ctx, msg)
    return ctx.events


def fails(view: DictState, sender: PrivateKey, msg: Msg, error: type[ChainError],
          field: str | None = None, block: BlockContext = BLOCK) -> ChainError:
    """Run ``msg``, expect exactly ``error`` (naming ``field``) and no state change."""
    before = view.snapshot()
    ctx = TxContext(block, sender.address)
    with pytest.raises(ChainError) as caught:
        msg.validate_basic()
        MODULE.handlers[type(msg)](view, ctx, msg)
    assert type(caught.value) is error, caught.value
    assert (caught.value.codespace, caught.value.code) == (error.codespace, error.code)
    if field is not None:
        assert caught.value.field == field
    assert view.snapshot() == before and ctx.events == []
    return caught.value


def anchor_msg(devices: tuple[PrivateKey, ...] = (K.sensor_a,), *, root: bytes = b"\x11" * 32,
               first_ms: int = NOW_MS - 60_000, last_ms: int = NOW_MS - 1_000,
               count: int | None = None, previous: bytes = b"") -> MsgAnchorBatch:
    dids = tuple(sorted(did(d) for d in devices))
    return MsgAnchorBatch(root, dids, first_ms, last_ms,
                          count if count is not None else 10 * len(dids), previous)


def batch_id_of(msg: MsgAnchorBatch) -> bytes:
    return compute_batch_id(msg.merkle_root, msg.devices, msg.first_reading_ms,
                            msg.last_reading_ms, msg.reading_count, msg.previous_batch_id)
