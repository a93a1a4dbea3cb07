"""The validators module through the full Application: InitChain reports the genesis set, and
finalize_block returns the validator updates in exactly the block where a change passes."""

from __future__ import annotations

from citychain.app.types import ValidatorUpdate
from citychain.core.events import Event
from citychain.modules.validators.messages import (
    MsgApproveValidatorChange,
    MsgProposeValidatorChange,
)
from citychain.testing.chain import named_key
from citychain.testing.checks import assert_ok
from citychain.testing.validators import make_orgs, validators_chain

NEW_NODE = named_key("validators-app/new-node")


def event_types(events: tuple[Event, ...]) -> list[str]:
    return [event.type for event in events]


def test_init_chain_returns_the_genesis_validators() -> None:
    orgs = make_orgs((100, 200, 300))
    chain = validators_chain(orgs)
    expected = sorted((ValidatorUpdate(o.consensus.public_key, o.power) for o in orgs),
                      key=lambda update: update.pubkey)
    assert chain.init.validators == tuple(expected)
    answer = chain.runner.query("/validators/validators")
    assert answer["total_power"] == 600


def test_validator_updates_come_in_the_block_where_the_change_passes() -> None:
    chain = validators_chain()
    runner, orgs = chain.runner, chain.orgs
    propose = MsgProposeValidatorChange("add", NEW_NODE.public_key, 50, chain.cast.city.did,
                                        "city-hall-2")
    first = runner.block(runner.tx(orgs[0].org, propose))
    assert_ok(first.tx_results[0])
    assert event_types(first.tx_results[0].events) == ["validator_change_proposed"]
    assert first.validator_updates == ()

    second = runner.block(runner.tx(orgs[1].org, MsgApproveValidatorChange(1)))
    assert_ok(second.tx_results[0])
    assert second.validator_updates == ()

    passing = runner.block(runner.tx(orgs[2].org, MsgApproveValidatorChange(1)))
    assert_ok(passing.tx_results[0])
    assert event_types(passing.tx_results[0].events) == ["validator_change_approved",
                                                         "validator_change_passed"]
    assert passing.validator_updates == (ValidatorUpdate(NEW_NODE.public_key, 50),)
    assert event_types(passing.events) == ["validator_set_changed"]

    after = runner.block()
    assert after.validator_updates == ()
    assert runner.query("/validators/proposal", {"id": 1})["status"] == "passed"
    proven = runner.query("/validators/validator", {"pubkey": NEW_NODE.public_key.hex()},
                          prove=True)
    assert proven == {"pubkey": NEW_NODE.public_key.hex(), "power": 50,
                      "organisation": chain.cast.city.did, "name": "city-hall-2"}
    assert runner.query("/validators/validators")["total_power"] == 450
    assert runner.app.export_genesis()["validators"]["validators"][0].keys() == {
        "pubkey", "power", "organisation", "name"}


def test_removal_reports_power_zero() -> None:
    chain = validators_chain()
    runner, orgs = chain.runner, chain.orgs
    target = orgs[3].consensus.public_key
    response = runner.block(
        runner.tx(orgs[0].org, MsgProposeValidatorChange("remove", target, 0, "", "")),
        runner.tx(orgs[1].org, MsgApproveValidatorChange(1)),
        runner.tx(orgs[2].org, MsgApproveValidatorChange(1)))
    assert [r.code for r in response.tx_results] == [0, 0, 0]
    assert response.validator_updates == (ValidatorUpdate(target, 0),)
    assert runner.query("/validators/validator", {"pubkey": target.hex()}) is None


def test_open_proposal_lapses_at_its_expiry_height() -> None:
    chain = validators_chain(voting_period_blocks=3)
    runner, orgs = chain.runner, chain.orgs
    runner.block(runner.tx(orgs[0].org, MsgProposeValidatorChange(
        "set-power", orgs[1].consensus.public_key, 120, "", "")))
    created = runner.height
    lapsed_at = None
    for _ in range(4):
        response = runner.block()
        if "validator_change_lapsed" in event_types(response.events):
            lapsed_at = runner.height
    assert lapsed_at == created + 3
    assert runner.query("/validators/proposals") == {"proposals": [], "next_start_after": None}
    assert runner.query("/validators/proposal", {"id": 1})["status"] == "lapsed"


def test_non_validator_org_is_refused_by_the_ante_handler() -> None:
    chain = validators_chain()
    runner = chain.runner
    citizen = chain.cast.citizens[0]
    before = runner.snapshot()
    response = runner.block(runner.tx(citizen, MsgApproveValidatorChange(1)))
    result = response.tx_results[0]
    assert (result.codespace, result.code) == ("core", 14)
    changed = {k for k, v in runner.snapshot().items() if before.get(k) != v}
    assert all(not k.startswith(b"\x03") for k in changed)
