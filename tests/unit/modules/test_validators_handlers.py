"""Validators handlers and end-block work: each message's valid case (post-state and events), its
failures (exact error, code, field, state untouched), passing, applying, lapsing and the guards."""

from __future__ import annotations

from typing import Any

import pytest

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import ChainError, RoleRequiredError
from citychain.core.events import Event
from citychain.core.messages import Msg
from citychain.core.module import ValidatorUpdate
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.modules.validators import api, keys, state
from citychain.modules.validators.errors import (
    AlreadyApprovedError,
    NotValidatorOperatorError,
    OrganisationNotEligibleError,
    OrganisationNotFoundError,
    PowerChangeTooLargeError,
    PowerUnchangedError,
    ProposalNotFoundError,
    ProposalNotOpenError,
    ProposalPendingError,
    TotalPowerTooLargeError,
    ValidatorAlreadyExistsError,
    ValidatorNotFoundError,
    ValidatorSetEmptyError,
    ValidatorSetUnmanagedError,
)
from citychain.modules.validators.genesis import init_genesis as init_validators
from citychain.modules.validators.messages import (
    MsgApproveValidatorChange,
    MsgProposeValidatorChange,
)
from citychain.modules.validators.module import MODULE
from citychain.modules.validators.types import MAX_TOTAL_POWER, Proposal, Validator
from citychain.testing.state import DictState

CHAIN_ID = "citychain-test"
HEIGHT = 21
PERIOD = 10
GENESIS = BlockContext(CHAIN_ID, 0, 0)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_secret(f"validators-handlers/{name}")


# Four operating organisations (A..D, one validator of power 100 each), a validator-org that
# operates nothing yet (NEWORG), a citizen, and a suspended validator-org.
A, B, C, D = key("org-a"), key("org-b"), key("org-c"), key("org-d")
NEWORG, CITIZEN, SUSPENDED_ORG, STRANGER = key("neworg"), key("citizen"), key("sus"), key("x")
VA, VB, VC, VD = key("val-a"), key("val-b"), key("val-c"), key("val-d")
NEWVAL, OTHERVAL = key("val-new"), key("val-other")
ORGS = (A, B, C, D)
VALS = (VA, VB, VC, VD)


def make_view(powers: tuple[int, ...] = (100, 100, 100, 100)) -> DictState:
    view = DictState()
    suspension = {"reason": "case", "height": 0, "by": A.address}
    accounts: list[dict[str, Any]] = [
        *({"pubkey": org.public_key.hex(), "roles": ["validator-org"]} for org in ORGS),
        {"pubkey": NEWORG.public_key.hex(), "roles": ["validator-org"]},
        {"pubkey": CITIZEN.public_key.hex(), "roles": ["citizen"]},
        {"pubkey": SUSPENDED_ORG.public_key.hex(), "roles": ["validator-org"],
         "suspension": suspension},
    ]
    init_identity(view, GENESIS, {"accounts": accounts})
    init_validators(view, GENESIS, {
        "params": {"voting_period_blocks": PERIOD},
        "validators": [{"pubkey": val.public_key.hex(), "power": power,
                        "organisation": org.did, "name": f"node-{i}"}
                       for i, (org, val, power)
                       in enumerate(zip(ORGS, VALS, powers, strict=False))]})
    return view


@pytest.fixture
def view() -> DictState:
    return make_view()


def run(view: DictState, sender: PrivateKey, msg: Msg, height: int = HEIGHT) -> list[Event]:
    msg.validate_basic()
    ctx = TxContext(BlockContext(CHAIN_ID, height, 0), sender.address)
    MODULE.handlers[type(msg)](view, ctx, msg)
    return ctx.events


def end_block(view: DictState, height: int = HEIGHT) -> tuple[list[Event], tuple[ValidatorUpdate,
                                                                                 ...]]:
    """Run the module's end-block and validator-update hooks as the application does."""
    block = BlockContext(CHAIN_ID, height, 0)
    assert MODULE.end_block is not None and MODULE.validator_updates is not None
    found = MODULE.end_block(view, block)
    return found, MODULE.validator_updates(view, block)


def assert_fails(view: DictState, sender: PrivateKey, msg: Msg, error: type[ChainError],
                 field: str | None, height: int = HEIGHT) -> ChainError:
    """Run ``msg`` and check the exact error, its code and field, and that nothing changed."""
    msg.validate_basic()
    before = view.snapshot()
    ctx = TxContext(BlockContext(CHAIN_ID, height, 0), sender.address)
    with pytest.raises(ChainError) as caught:
        MODULE.handlers[type(msg)](view, ctx, msg)
    assert type(caught.value) is error
    assert caught.value.code == error.code
    assert caught.value.codespace == error.codespace
    assert caught.value.field == field
    assert view.snapshot() == before
    assert ctx.events == []
    return caught.value


def add(power: int = 50, val: PrivateKey = NEWVAL, org: PrivateKey = NEWORG,
        name: str = "new-node") -> MsgProposeValidatorChange:
    return MsgProposeValidatorChange("add", val.public_key, power, org.did, name)


def remove(val: PrivateKey) -> MsgProposeValidatorChange:
    return MsgProposeValidatorChange("remove", val.public_key, 0, "", "")


def set_power(val: PrivateKey, power: int) -> MsgProposeValidatorChange:
    return MsgProposeValidatorChange("set-power", val.public_key, power, "", "")


def proposal(view: DictState, proposal_id: int = 1) -> Proposal:
    found = state.get_proposal(view, proposal_id)
    assert found is not None
    return found


def proposed_event(proposal_id: int, action: str, val: PrivateKey, power: int, org: str,
                   name: str, proposer: PrivateKey, height: int = HEIGHT) -> Event:
    return Event.of("validator_change_proposed", proposal_id=proposal_id, action=action,
                    pubkey=val.public_key.hex(), power=power, organisation=org, name=name,
                    proposer=proposer.did, expiry_height=height + PERIOD)


def pass_first_proposal(view: DictState) -> None:
    run(view, B, MsgApproveValidatorChange(1))
    run(view, C, MsgApproveValidatorChange(1))
    assert proposal(view).status == "passed"


# ------------------------------------------------------------------ MsgProposeValidatorChange
def test_propose_add(view: DictState) -> None:
    before = api.get_validators(view)
    events = run(view, A, add())
    assert proposal(view) == Proposal(
        proposal_id=1, action="add", pubkey=NEWVAL.public_key, power=50, organisation=NEWORG.did,
        name="new-node", proposer=A.did, created_height=HEIGHT, expiry_height=HEIGHT + PERIOD,
        approvals=(A.did,), status="open", closed_height=0, failure="")
    assert list(state.iter_open_ids(view)) == [1]
    assert state.get_pending(view, NEWVAL.public_key) == 1
    assert state.get_next_proposal_id(view) == 2
    assert api.get_validators(view) == before  # nothing changes before the proposal passes
    assert events == [proposed_event(1, "add", NEWVAL, 50, NEWORG.did, "new-node", A)]


def test_propose_by_an_organisation_operating_nothing_counts_no_approval(
        view: DictState) -> None:
    run(view, NEWORG, add())
    assert proposal(view).approvals == ()
    assert proposal(view).proposer == NEWORG.did


def test_propose_passes_at_once_when_the_proposer_holds_more_than_two_thirds() -> None:
    view = make_view((301, 50, 50, 50))  # A holds 301 of 451: 903 > 902
    events = run(view, A, set_power(VB, 60))
    assert proposal(view).status == "passed"
    assert proposal(view).closed_height == HEIGHT
    assert list(state.iter_queued_ids(view)) == [1]
    assert list(state.iter_open_ids(view)) == []
    assert events == [
        proposed_event(1, "set-power", VB, 60, "", "", A),
        Event.of("validator_change_passed", proposal_id=1, approved_power=301, total_power=451)]


def test_propose_exactly_two_thirds_does_not_pass() -> None:
    view = make_view((200, 50, 50))  # A holds 200 of 300: 600 > 600 is false
    run(view, A, set_power(VB, 60))
    assert proposal(view).status == "open"


def test_propose_remove_and_set_power(view: DictState) -> None:
    events = run(view, B, remove(VD))
    events += run(view, B, set_power(VC, 120))
    assert [p.action for p in state.iter_proposals(view)] == ["remove", "set-power"]
    assert events == [proposed_event(1, "remove", VD, 0, "", "", B),
                      proposed_event(2, "set-power", VC, 120, "", "", B)]


def test_invalid_propose_not_validator_org(view: DictState) -> None:
    error = assert_fails(view, CITIZEN, add(), RoleRequiredError, "sender")
    assert error.details == {"required": "validator-org"}


def test_invalid_propose_suspended_validator_org(view: DictState) -> None:
    assert_fails(view, SUSPENDED_ORG, add(), RoleRequiredError, "sender")


def test_invalid_propose_add_existing_validator(view: DictState) -> None:
    assert_fails(view, A, add(val=VB), ValidatorAlreadyExistsError, "pubkey")


def test_invalid_propose_add_organisation_without_identity(view: DictState) -> None:
    assert_fails(view, A, add(org=STRANGER), OrganisationNotFoundError, "organisation")


def test_invalid_propose_add_organisation_without_role(view: DictState) -> None:
    assert_fails(view, A, add(org=CITIZEN), OrganisationNotEligibleError, "organisation")


def test_invalid_propose_add_suspended_organisation(view: DictState) -> None:
    assert_fails(view, A, add(org=SUSPENDED_ORG), OrganisationNotEligibleError, "organisation")


def test_invalid_propose_remove_unknown_validator(view: DictState) -> None:
    assert_fails(view, A, remove(NEWVAL), ValidatorNotFoundError, "pubkey")


def test_invalid_propose_set_power_unknown_validator(view: DictState) -> None:
    assert_fails(view, A, set_power(NEWVAL, 5), ValidatorNotFoundError, "pubkey")


def test_invalid_propose_set_power_unchanged(view: DictState) -> None:
    assert_fails(view, A, set_power(VB, 100), PowerUnchangedError, "power")


def test_invalid_propose_remove_last_validator() -> None:
    view = make_view((100,))
    assert_fails(view, A, remove(VA), ValidatorSetEmptyError, "pubkey")


def test_invalid_propose_pending_change_for_the_key(view: DictState) -> None:
    run(view, A, add())
    error = assert_fails(view, B, add(power=20, org=B), ProposalPendingError, "pubkey")
    assert error.details == {"proposal_id": 1}


def test_invalid_propose_pending_until_applied(view: DictState) -> None:
    run(view, A, remove(VD))
    pass_first_proposal(view)  # passed and queued: the key is still pending until end block
    assert_fails(view, A, set_power(VD, 90), ProposalPendingError, "pubkey")


def test_propose_add_just_under_a_third(view: DictState) -> None:
    run(view, A, add(power=133))  # 399 < 400
    assert proposal(view).power == 133


def test_invalid_propose_add_a_third_or_more(view: DictState) -> None:
    error = assert_fails(view, A, add(power=134), PowerChangeTooLargeError, "power")
    assert error.details == {"moved": 134, "total": 400}


def test_invalid_propose_remove_a_third() -> None:
    view = make_view((100, 100, 100))  # removing one moves exactly 1/3
    assert_fails(view, A, remove(VC), PowerChangeTooLargeError, "pubkey")


def test_invalid_propose_set_power_moves_a_third(view: DictState) -> None:
    assert_fails(view, A, set_power(VB, 234), PowerChangeTooLargeError, "power")
    run(view, A, set_power(VB, 1))  # moves 99: 297 < 400


def test_invalid_propose_total_power_past_cometbft_maximum() -> None:
    quarter = MAX_TOTAL_POWER // 4
    view = make_view((quarter, quarter, quarter, quarter))
    error = assert_fails(view, A, add(power=quarter), TotalPowerTooLargeError, "power")
    assert error.details["limit"] == MAX_TOTAL_POWER


def test_invalid_propose_on_an_unmanaged_set() -> None:
    view = make_view(())
    assert_fails(view, A, add(), ValidatorSetUnmanagedError, "pubkey")


# ------------------------------------------------------------------ MsgApproveValidatorChange
def test_approve(view: DictState) -> None:
    run(view, A, add())
    events = run(view, B, MsgApproveValidatorChange(1))
    assert proposal(view).approvals == tuple(sorted((A.did, B.did)))
    assert proposal(view).status == "open"
    assert events == [Event.of("validator_change_approved", proposal_id=1, approver=B.did,
                               approved_power=200, total_power=400)]


def test_approve_passes_the_proposal(view: DictState) -> None:
    run(view, A, add())
    run(view, B, MsgApproveValidatorChange(1))
    events = run(view, C, MsgApproveValidatorChange(1))
    assert proposal(view).status == "passed"
    assert proposal(view).closed_height == HEIGHT
    assert list(state.iter_queued_ids(view)) == [1]
    assert state.get_validator(view, NEWVAL.public_key) is None  # applied at end of block
    assert events == [
        Event.of("validator_change_approved", proposal_id=1, approver=C.did,
                 approved_power=300, total_power=400),
        Event.of("validator_change_passed", proposal_id=1, approved_power=300, total_power=400)]


def test_approval_power_counts_every_validator_the_organisation_operates(
        view: DictState) -> None:
    run(view, A, add(power=120, org=A))
    pass_first_proposal(view)
    end_block(view)
    # A now operates two validators (100 + 120 of 520): A and B hold 320, 960 < 1040.
    run(view, A, set_power(VD, 90), height=HEIGHT + 1)
    events = run(view, B, MsgApproveValidatorChange(2), height=HEIGHT + 1)
    assert events == [Event.of("validator_change_approved", proposal_id=2, approver=B.did,
                               approved_power=320, total_power=520)]
    events = run(view, C, MsgApproveValidatorChange(2), height=HEIGHT + 1)
    assert events[-1] == Event.of("validator_change_passed", proposal_id=2, approved_power=420,
                                  total_power=520)


def test_invalid_approve_unknown_proposal(view: DictState) -> None:
    assert_fails(view, A, MsgApproveValidatorChange(7), ProposalNotFoundError, "proposal_id")


def test_invalid_approve_passed_proposal(view: DictState) -> None:
    run(view, A, add())
    pass_first_proposal(view)
    error = assert_fails(view, D, MsgApproveValidatorChange(1), ProposalNotOpenError,
                         "proposal_id")
    assert error.details == {"status": "passed"}


def test_invalid_approve_after_expiry_height(view: DictState) -> None:
    run(view, A, add())
    assert_fails(view, B, MsgApproveValidatorChange(1), ProposalNotOpenError, "proposal_id",
                 height=HEIGHT + PERIOD + 1)


def test_approve_at_expiry_height(view: DictState) -> None:
    run(view, A, add())
    run(view, B, MsgApproveValidatorChange(1), height=HEIGHT + PERIOD)
    assert len(proposal(view).approvals) == 2


def test_invalid_approve_by_organisation_operating_nothing(view: DictState) -> None:
    run(view, A, add())
    assert_fails(view, NEWORG, MsgApproveValidatorChange(1), NotValidatorOperatorError,
                 "sender")


def test_invalid_approve_twice(view: DictState) -> None:
    run(view, A, add())
    assert_fails(view, A, MsgApproveValidatorChange(1), AlreadyApprovedError, "proposal_id")


def test_invalid_approve_not_validator_org(view: DictState) -> None:
    run(view, A, add())
    assert_fails(view, CITIZEN, MsgApproveValidatorChange(1), RoleRequiredError, "sender")


# ------------------------------------------------------------------ end block
def test_end_block_applies_an_added_validator(view: DictState) -> None:
    run(view, A, add())
    pass_first_proposal(view)
    events, updates = end_block(view)
    assert state.get_validator(view, NEWVAL.public_key) == Validator(
        NEWVAL.public_key, 50, NEWORG.did, "new-node")
    assert api.get_total_power(view) == 450
    assert api.is_operator(view, NEWORG.did)
    assert updates == (ValidatorUpdate(NEWVAL.public_key, 50),)
    assert events == [Event.of("validator_set_changed", proposal_id=1,
                               pubkey=NEWVAL.public_key.hex(), power=50, previous_power=0,
                               organisation=NEWORG.did)]
    assert proposal(view).status == "passed"
    assert list(state.iter_queued_ids(view)) == []
    assert state.get_pending(view, NEWVAL.public_key) is None
    # The next block reports no update.
    assert end_block(view, HEIGHT + 1) == ([], ())


def test_end_block_applies_a_removal(view: DictState) -> None:
    run(view, A, remove(VD))
    pass_first_proposal(view)
    events, updates = end_block(view)
    assert state.get_validator(view, VD.public_key) is None
    assert not api.is_operator(view, D.did)
    assert updates == (ValidatorUpdate(VD.public_key, 0),)
    assert events == [Event.of("validator_set_changed", proposal_id=1,
                               pubkey=VD.public_key.hex(), power=0, previous_power=100,
                               organisation=D.did)]


def test_end_block_applies_a_power_change(view: DictState) -> None:
    run(view, A, set_power(VB, 130))
    pass_first_proposal(view)
    events, updates = end_block(view)
    assert state.get_validator(view, VB.public_key) == Validator(VB.public_key, 130, B.did,
                                                                 "node-1")
    assert updates == (ValidatorUpdate(VB.public_key, 130),)
    assert events[0].get("previous_power") == "100"


def test_end_block_applies_in_proposal_id_order(view: DictState) -> None:
    run(view, A, set_power(VC, 110))
    run(view, A, add(power=20))
    for proposal_id in (2, 1):  # the later proposal passes first
        run(view, B, MsgApproveValidatorChange(proposal_id))
        run(view, C, MsgApproveValidatorChange(proposal_id))
    events, updates = end_block(view)
    assert [e.get("proposal_id") for e in events] == ["1", "2"]
    assert updates == (ValidatorUpdate(VC.public_key, 110), ValidatorUpdate(NEWVAL.public_key,
                                                                            20))


def test_end_block_fails_a_change_that_breaks_the_block_limit(view: DictState) -> None:
    run(view, A, add(power=100))
    run(view, A, add(power=40, val=OTHERVAL, name="other"))
    for proposal_id in (1, 2):
        run(view, B, MsgApproveValidatorChange(proposal_id))
        run(view, C, MsgApproveValidatorChange(proposal_id))
    events, updates = end_block(view)  # 100 + 40 = 140 moved: 420 >= 400
    assert updates == (ValidatorUpdate(NEWVAL.public_key, 100),)
    assert state.get_validator(view, OTHERVAL.public_key) is None
    failed = proposal(view, 2)
    assert failed.status == "failed"
    assert failed.failure.startswith("validators/6: ")
    assert events[1] == Event.of("validator_change_failed", proposal_id=2,
                                 codespace="validators", code=6, reason=failed.failure)
    assert state.get_pending(view, OTHERVAL.public_key) is None
    assert list(state.iter_queued_ids(view)) == []


def test_end_block_lapses_at_the_expiry_height(view: DictState) -> None:
    run(view, A, add())
    assert end_block(view, HEIGHT + PERIOD - 1) == ([], ())
    events, updates = end_block(view, HEIGHT + PERIOD)
    assert updates == ()
    assert events == [Event.of("validator_change_lapsed", proposal_id=1,
                               expiry_height=HEIGHT + PERIOD)]
    assert proposal(view).status == "lapsed"
    assert proposal(view).closed_height == HEIGHT + PERIOD
    assert list(state.iter_open_ids(view)) == []
    assert list(state.iter_expired_ids(view, HEIGHT + 10 * PERIOD)) == []
    assert state.get_pending(view, NEWVAL.public_key) is None
    assert_fails(view, B, MsgApproveValidatorChange(1), ProposalNotOpenError, "proposal_id",
                 height=HEIGHT + PERIOD + 1)
    run(view, A, add(), height=HEIGHT + PERIOD + 1)  # the key may be proposed again
    assert proposal(view, 2).status == "open"


def test_end_block_keys_stay_inside_the_module_prefix(view: DictState) -> None:
    run(view, A, add())
    pass_first_proposal(view)
    end_block(view)
    assert all(k.startswith(keys.PREFIX) or k.startswith(b"\x01") for k in view.snapshot())
