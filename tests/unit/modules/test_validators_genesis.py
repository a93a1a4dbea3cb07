"""Validators genesis: loading, the genesis validator set, every invalid field, and
init(export(state)) == state after proposals have passed, failed, lapsed and stayed open."""

from __future__ import annotations

from typing import Any

import pytest

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidGenesisError
from citychain.core.module import ValidatorUpdate
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.modules.validators import keys, state
from citychain.modules.validators.genesis import export_genesis, init_genesis
from citychain.modules.validators.messages import (
    MsgApproveValidatorChange,
    MsgProposeValidatorChange,
)
from citychain.modules.validators.module import MODULE
from citychain.modules.validators.params import Params
from citychain.testing.state import DictState

GENESIS = BlockContext("citychain-test", 0, 0)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_secret(f"validators-genesis/{name}")


A, B, C, CITIZEN, SUSPENDED = key("a"), key("b"), key("c"), key("citizen"), key("sus")
VA, VB, VC, NEW1, NEW2, NEW3 = (key(f"v{i}") for i in range(6))


def identity_view() -> DictState:
    view = DictState()
    init_identity(view, GENESIS, {"accounts": [
        {"pubkey": A.public_key.hex(), "roles": ["validator-org"]},
        {"pubkey": B.public_key.hex(), "roles": ["validator-org"]},
        {"pubkey": C.public_key.hex(), "roles": ["validator-org"]},
        {"pubkey": CITIZEN.public_key.hex(), "roles": ["citizen"]},
        {"pubkey": SUSPENDED.public_key.hex(), "roles": ["validator-org"],
         "suspension": {"reason": "case", "height": 0, "by": A.address}},
    ]})
    return view


def entry(val: PrivateKey, power: int, org: PrivateKey, name: str = "node") -> dict[str, Any]:
    return {"pubkey": val.public_key.hex(), "power": power, "organisation": org.did,
            "name": name}


def section() -> dict[str, Any]:
    return {"params": {"voting_period_blocks": 5},
            "validators": [entry(VA, 100, A, "a"), entry(VB, 100, B, "b"),
                           entry(VC, 100, C, "c")]}


def module_state(view: DictState) -> dict[bytes, bytes]:
    return {k: v for k, v in view.snapshot().items() if k.startswith(keys.PREFIX)}


def test_init_genesis_loads_params_and_set() -> None:
    view = identity_view()
    init_genesis(view, GENESIS, section())
    assert state.get_params(view) == Params(voting_period_blocks=5)
    assert [v.name for v in state.iter_validators(view)] == sorted(
        ["a", "b", "c"], key=lambda n: {"a": VA, "b": VB, "c": VC}[n].public_key)
    assert MODULE.genesis_validators is not None
    assert MODULE.genesis_validators(view) == tuple(
        ValidatorUpdate(v.public_key, 100) for v in sorted((VA, VB, VC),
                                                           key=lambda k: k.public_key))
    assert state.get_next_proposal_id(view) == 1


def test_empty_section_leaves_the_set_to_cometbft() -> None:
    view = identity_view()
    init_genesis(view, GENESIS, {})
    assert state.get_params(view) == Params()
    assert MODULE.genesis_validators is not None
    assert MODULE.genesis_validators(view) == ()
    assert export_genesis(view) == {"params": {"voting_period_blocks": 100}, "validators": [],
                                    "proposals": [], "next_proposal_id": 1}


def run(view: DictState, sender: PrivateKey, height: int,
        msg: MsgProposeValidatorChange | MsgApproveValidatorChange) -> None:
    MODULE.handlers[type(msg)](view, TxContext(BlockContext("c", height, 0), sender.address),
                               msg)


def end_block(view: DictState, height: int) -> None:
    assert MODULE.end_block is not None
    MODULE.end_block(view, BlockContext("c", height, 0))


def test_round_trip_after_passed_failed_lapsed_and_open_proposals() -> None:
    view = identity_view()
    init_genesis(view, GENESIS, section())
    add = MsgProposeValidatorChange
    run(view, A, 1, add("add", NEW1.public_key, 30, B.did, "n1"))        # 1: passes, applied
    run(view, A, 1, add("add", NEW2.public_key, 90, C.did, "n2"))        # 2: passes, fails
    for proposal_id in (1, 2):
        run(view, B, 1, MsgApproveValidatorChange(proposal_id))
        run(view, C, 1, MsgApproveValidatorChange(proposal_id))
    end_block(view, 1)
    run(view, B, 2, add("set-power", VA.public_key, 110, "", ""))       # 3: lapses at 7
    end_block(view, 7)
    run(view, C, 8, add("add", NEW3.public_key, 10, A.did, "n3"))       # 4: stays open
    statuses = [p.status for p in state.iter_proposals(view)]
    assert statuses == ["passed", "failed", "lapsed", "open"]

    exported = export_genesis(view)
    copy = identity_view()
    init_genesis(copy, GENESIS, exported)
    assert module_state(copy) == module_state(view)
    assert export_genesis(copy) == exported


@pytest.mark.parametrize(("change", "field"), [
    (lambda s: s.update(extra=1), "app_state.validators.extra"),
    (lambda s: s.update(params={"voting_period_blocks": 0}),
     "app_state.validators.params.voting_period_blocks"),
    (lambda s: s.update(params={"period": 3}), "app_state.validators.params.period"),
    (lambda s: s.update(validators={}), "app_state.validators.validators"),
    (lambda s: s["validators"].append("x"), "app_state.validators.validators[3]"),
    (lambda s: s["validators"].append(entry(VA, 5, A)),
     "app_state.validators.validators[3].pubkey"),
    (lambda s: s["validators"][0].update(pubkey="zz" * 32),
     "app_state.validators.validators[0].pubkey"),
    (lambda s: s["validators"][0].update(pubkey="AB" * 32),
     "app_state.validators.validators[0].pubkey"),
    (lambda s: s["validators"][0].update(power=0), "app_state.validators.validators[0].power"),
    (lambda s: s["validators"][0].update(power=True),
     "app_state.validators.validators[0].power"),
    (lambda s: s["validators"][0].update(power=(2**63 - 1) // 8 - 150),
     "app_state.validators.validators[2].power"),
    (lambda s: s["validators"][0].update(organisation=CITIZEN.did),
     "app_state.validators.validators[0].organisation"),
    (lambda s: s["validators"][0].update(organisation=SUSPENDED.did),
     "app_state.validators.validators[0].organisation"),
    (lambda s: s["validators"][0].update(organisation=NEW1.did),
     "app_state.validators.validators[0].organisation"),
    (lambda s: s["validators"][0].update(organisation="city-hall"),
     "app_state.validators.validators[0].organisation"),
    (lambda s: s["validators"][0].update(name=""), "app_state.validators.validators[0].name"),
    (lambda s: s["validators"][0].pop("name"), "app_state.validators.validators[0].name"),
    (lambda s: s["validators"][0].update(role="x"), "app_state.validators.validators[0].role"),
    (lambda s: s.update(next_proposal_id=0), "app_state.validators.next_proposal_id"),
])
def test_invalid_genesis(change: Any, field: str) -> None:
    raw = section()
    change(raw)
    view = identity_view()
    before = view.snapshot()
    with pytest.raises(InvalidGenesisError) as caught:
        init_genesis(view, GENESIS, raw)
    assert caught.value.field == field
    assert view.snapshot() == before


def exported_with_proposals() -> dict[str, Any]:
    view = identity_view()
    init_genesis(view, GENESIS, section())
    run(view, A, 1, MsgProposeValidatorChange("add", NEW1.public_key, 30, B.did, "n1"))
    return export_genesis(view)


@pytest.mark.parametrize(("change", "field"), [
    (lambda p: p.update(action="swap"), "app_state.validators.proposals[0].action"),
    (lambda p: p.update(status="done"), "app_state.validators.proposals[0].status"),
    (lambda p: p.update(approvals=[C.did, A.did]), "app_state.validators.proposals[0].approvals"),
    (lambda p: p.update(approvals=["x"]), "app_state.validators.proposals[0].approvals[0]"),
    (lambda p: p.update(proposer=""), "app_state.validators.proposals[0].proposer"),
    (lambda p: p.update(id=0), "app_state.validators.proposals[0].id"),
    (lambda p: p.pop("failure"), "app_state.validators.proposals[0].failure"),
])
def test_invalid_genesis_proposal(change: Any, field: str) -> None:
    raw = exported_with_proposals()
    change(raw["proposals"][0])
    with pytest.raises(InvalidGenesisError) as caught:
        init_genesis(identity_view(), GENESIS, raw)
    assert caught.value.field == field


def test_invalid_genesis_two_open_proposals_for_one_key() -> None:
    raw = exported_with_proposals()
    raw["proposals"].append(dict(raw["proposals"][0], id=2))
    raw["next_proposal_id"] = 3
    with pytest.raises(InvalidGenesisError) as caught:
        init_genesis(identity_view(), GENESIS, raw)
    assert caught.value.field == "app_state.validators.proposals[1].pubkey"


def test_invalid_genesis_next_id_not_above_the_proposals() -> None:
    raw = exported_with_proposals()
    raw["next_proposal_id"] = 1
    with pytest.raises(InvalidGenesisError) as caught:
        init_genesis(identity_view(), GENESIS, raw)
    assert caught.value.field == "app_state.validators.next_proposal_id"
