"""Identity genesis: loading, errors naming the field path, export -> init round trip,
and determinism (the same writes whatever the order of the input)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import ChainError, InvalidGenesisError
from citychain.core.messages import Msg
from citychain.modules.identity import api, state
from citychain.modules.identity.genesis import export_genesis, init_genesis
from citychain.modules.identity.messages import (
    MsgCreateIdentity,
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgRevokeRole,
    MsgRotateKey,
    MsgSuspendIdentity,
    rotation_sign_bytes,
)
from citychain.modules.identity.module import MODULE
from citychain.modules.identity.types import ROLES, KeyRecord
from citychain.testing.state import DictState

CHAIN_ID = "citychain-test"
GENESIS = BlockContext(CHAIN_ID, 0, 0)
POOL = [PrivateKey.from_secret(f"identity-genesis/{i}") for i in range(8)]
SPARE = [PrivateKey.from_secret(f"identity-genesis/spare-{i}") for i in range(8)]
A, B, C = POOL[0], POOL[1], POOL[2]


class RecordingState(DictState):
    """A DictState that remembers the order of its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def set(self, key: bytes, value: bytes) -> None:
        self.writes.append(key)
        super().set(key, value)


def load(section: Any) -> DictState:
    view = DictState()
    init_genesis(view, GENESIS, section)
    return view


def test_minimal_section_loads() -> None:
    view = load({"accounts": [{"pubkey": A.public_key.hex(), "roles": ["validator-org"]},
                              {"pubkey": B.public_key.hex()}]})
    assert api.has_role(view, A.address, "validator-org")
    assert api.exists(view, B.address)
    assert state.get_params(view).self_registration_enabled is True
    account = state.get_account(view, B.address)
    assert account is not None and account.roles == () and account.created_height == 0


def test_empty_section_writes_default_params() -> None:
    view = load({})
    assert export_genesis(view) == {"params": {"self_registration_enabled": True},
                                    "accounts": []}


def test_full_entry_loads() -> None:
    view = load({"params": {"self_registration_enabled": False}, "accounts": [{
        "pubkey": A.public_key.hex(), "address": A.address, "roles": ["registrar", "citizen"],
        "sequence": 17, "created_height": 0,
        "suspension": {"reason": "case", "height": 4, "by": B.address},
        "key_history": [{"height": 2, "pubkey": SPARE[0].public_key.hex()},
                        {"height": 2, "pubkey": SPARE[1].public_key.hex()}],
    }]})
    info = api.get_account(view, A.address)
    assert info is not None
    assert info.pubkey == SPARE[1].public_key
    assert info.sequence == 17 and info.suspended and info.roles == ("citizen", "registrar")
    assert list(state.iter_key_records(view, A.address)) == [
        KeyRecord(0, A.public_key), KeyRecord(2, SPARE[0].public_key),
        KeyRecord(2, SPARE[1].public_key)]
    assert state.get_key_binding(view, SPARE[0].public_key) == A.address
    assert not state.get_params(view).self_registration_enabled


A_HEX = A.public_key.hex()
INVALID: list[tuple[Any, str]] = [
    ([], "app_state.identity"),
    ({"validators": []}, "app_state.identity.validators"),
    ({"params": []}, "app_state.identity.params"),
    ({"params": {"self_registration_enabled": 1}},
     "app_state.identity.params.self_registration_enabled"),
    ({"params": {"fee": 1}}, "app_state.identity.params.fee"),
    ({"accounts": {}}, "app_state.identity.accounts"),
    ({"accounts": ["x"]}, "app_state.identity.accounts[0]"),
    ({"accounts": [{"roles": []}]}, "app_state.identity.accounts[0].pubkey"),
    ({"accounts": [{"pubkey": A_HEX[:-2]}]}, "app_state.identity.accounts[0].pubkey"),
    ({"accounts": [{"pubkey": A_HEX.upper()}]}, "app_state.identity.accounts[0].pubkey"),
    ({"accounts": [{"pubkey": A_HEX, "address": B.address}]},
     "app_state.identity.accounts[0].address"),
    ({"accounts": [{"pubkey": A_HEX, "roles": ["mayor"]}]},
     "app_state.identity.accounts[0].roles[0]"),
    ({"accounts": [{"pubkey": A_HEX, "roles": ["citizen", "citizen"]}]},
     "app_state.identity.accounts[0].roles[1]"),
    ({"accounts": [{"pubkey": A_HEX, "roles": "citizen"}]},
     "app_state.identity.accounts[0].roles"),
    ({"accounts": [{"pubkey": A_HEX, "sequence": -1}]},
     "app_state.identity.accounts[0].sequence"),
    ({"accounts": [{"pubkey": A_HEX, "nickname": "al"}]},
     "app_state.identity.accounts[0].nickname"),
    ({"accounts": [{"pubkey": A_HEX}, {"pubkey": A_HEX}]},
     "app_state.identity.accounts[1].pubkey"),
    ({"accounts": [{"pubkey": A_HEX, "suspension": {"reason": "", "height": 1,
                                                     "by": B.address}}]},
     "app_state.identity.accounts[0].suspension.reason"),
    ({"accounts": [{"pubkey": A_HEX, "suspension": {"reason": "r", "height": 1}}]},
     "app_state.identity.accounts[0].suspension.by"),
    ({"accounts": [{"pubkey": A_HEX, "created_height": 5,
                    "suspension": {"reason": "r", "height": 4, "by": B.address}}]},
     "app_state.identity.accounts[0].suspension.height"),
    ({"accounts": [{"pubkey": A_HEX, "key_history": [{"height": 1}]}]},
     "app_state.identity.accounts[0].key_history[0].pubkey"),
    ({"accounts": [{"pubkey": A_HEX, "created_height": 3,
                    "key_history": [{"height": 2, "pubkey": SPARE[0].public_key.hex()}]}]},
     "app_state.identity.accounts[0].key_history[0].height"),
    ({"accounts": [{"pubkey": A_HEX,
                    "key_history": [{"height": 1, "pubkey": B.public_key.hex()}]},
                   {"pubkey": B.public_key.hex()}]},
     "app_state.identity.accounts[1].pubkey"),
    ({"accounts": [{"pubkey": A_HEX,
                    "key_history": [{"height": 1, "pubkey": A_HEX}]}]},
     "app_state.identity.accounts[0].key_history[0].pubkey"),
]


@pytest.mark.parametrize(("section", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_genesis(section: Any, field: str) -> None:
    view = DictState()
    with pytest.raises(InvalidGenesisError) as caught:
        init_genesis(view, GENESIS, section)
    assert type(caught.value) is InvalidGenesisError
    assert caught.value.field == field
    assert view.snapshot() == {}


# ------------------------------------------------------------------ round trip
operation = st.tuples(
    st.sampled_from(["create", "grant", "revoke", "suspend", "reinstate", "rotate",
                     "sequence"]),
    st.integers(0, len(POOL) - 1),  # sender
    st.integers(0, len(POOL) - 1),  # target
    st.sampled_from(ROLES),
    st.integers(0, 50),
)


def apply(view: DictState, op: tuple[str, int, int, str, int], spare: list[PrivateKey],
          height: int) -> None:
    kind, sender_index, target_index, role, number = op
    sender, target = POOL[sender_index], POOL[target_index]
    msg: Msg
    if kind == "sequence":
        if api.exists(view, sender.address):
            api.set_sequence(view, sender.address, number)
        return
    if kind == "create":
        sender, msg = target, MsgCreateIdentity(target.public_key)
    elif kind == "grant":
        msg = MsgGrantRole(target.did, role)
    elif kind == "revoke":
        msg = MsgRevokeRole(target.did, role)
    elif kind == "suspend":
        msg = MsgSuspendIdentity(target.did, f"case-{number}")
    elif kind == "reinstate":
        msg = MsgReinstateIdentity(target.did)
    else:
        if not spare:
            return
        new = spare.pop()
        sequence = state.get_sequence(view, sender.address)
        if api.exists(view, sender.address):  # as the ante handler does
            api.set_sequence(view, sender.address, sequence + 1)
        msg = MsgRotateKey(new.public_key, new.sign(
            rotation_sign_bytes(CHAIN_ID, sender.did, new.public_key, sequence)))
    before = view.snapshot()
    try:
        MODULE.handlers[type(msg)](view, TxContext(BlockContext(CHAIN_ID, height, 0),
                                                   sender.address), msg)
    except ChainError:
        assert view.snapshot() == before  # every check runs before the first write


@settings(max_examples=60, deadline=None)
@given(roles=st.lists(st.lists(st.sampled_from(ROLES), unique=True), min_size=2,
                      max_size=len(POOL)),
       ops=st.lists(operation, max_size=30))
def test_export_then_init_reproduces_state(roles: list[list[str]],
                                           ops: list[tuple[str, int, int, str, int]]) -> None:
    view = load({"accounts": [{"pubkey": POOL[i].public_key.hex(), "roles": r}
                              for i, r in enumerate(roles)]})
    spare = list(SPARE)
    for height, op in enumerate(ops, start=1):
        apply(view, op, spare, height)
    exported = export_genesis(view)
    # The section survives JSON (the genesis file format) unchanged.
    assert json.loads(json.dumps(exported)) == exported
    again = load(json.loads(json.dumps(exported)))
    assert again.snapshot() == view.snapshot()
    assert export_genesis(again) == exported


# ------------------------------------------------------------------ determinism
@settings(max_examples=30, deadline=None)
@given(order=st.permutations(range(len(POOL))),
       roles=st.lists(st.lists(st.sampled_from(ROLES), unique=True), min_size=len(POOL),
                      max_size=len(POOL)))
def test_same_writes_whatever_the_input_order(order: list[int], roles: list[list[str]]) -> None:
    def section(indices: list[int]) -> dict[str, Any]:
        return {"params": {"self_registration_enabled": True},
                "accounts": [{"roles": list(reversed(roles[i])),
                              "pubkey": POOL[i].public_key.hex()} for i in indices]}

    first, second = RecordingState(), RecordingState()
    init_genesis(first, GENESIS, section(list(range(len(POOL)))))
    init_genesis(second, GENESIS, section(order))
    assert first.writes == second.writes
    assert first.snapshot() == second.snapshot()
