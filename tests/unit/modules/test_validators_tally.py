"""Tally math: a proposal passes as soon as its approving organisations hold strictly more than 2/3
of the current total power (3 * approved > 2 * total, integers only), and the 1/3 change limit."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.modules.validators import handlers, state
from citychain.modules.validators.genesis import init_genesis as init_validators
from citychain.modules.validators.messages import (
    MsgApproveValidatorChange,
    MsgProposeValidatorChange,
)
from citychain.modules.validators.types import (
    Validator,
    compute_approved_power,
    has_supermajority,
    is_change_within_limit,
)
from citychain.testing.state import DictState

GENESIS = BlockContext("citychain-test", 0, 0)
BLOCK = BlockContext("citychain-test", 5, 0)
ORGS = tuple(PrivateKey.from_secret(f"validators-tally/org-{i}") for i in range(6))
VALS = tuple(PrivateKey.from_secret(f"validators-tally/val-{i}") for i in range(6))
OUTSIDER = PrivateKey.from_secret("validators-tally/outsider")


@given(st.integers(0, 10**18), st.integers(1, 10**18))
def test_supermajority_is_strictly_more_than_two_thirds(approved: int, total: int) -> None:
    assume(approved <= total)
    assert has_supermajority(approved, total) == (Fraction(approved, total) > Fraction(2, 3))


@given(st.integers(0, 10**18), st.integers(1, 10**18))
def test_change_limit_is_strictly_less_than_a_third(moved: int, total: int) -> None:
    assert is_change_within_limit(moved, total) == (Fraction(moved, total) < Fraction(1, 3))


def test_supermajority_boundaries() -> None:
    assert not has_supermajority(2, 3)
    assert has_supermajority(3, 4)
    assert not has_supermajority(200, 300)
    assert has_supermajority(201, 301)
    assert not has_supermajority(0, 0)  # an empty set never passes anything


@given(st.lists(st.integers(1, 1000), min_size=1, max_size=6),
       st.lists(st.integers(0, 5), max_size=6, unique=True))
def test_approved_power_sums_the_approvers_validators(powers: list[int],
                                                      approvers: list[int]) -> None:
    validators = [Validator(VALS[i].public_key, p, ORGS[i % 3].did, "v")
                  for i, p in enumerate(powers)]
    dids = {ORGS[i].did for i in approvers}
    expected = sum(p for i, p in enumerate(powers) if ORGS[i % 3].did in dids)
    assert compute_approved_power(validators, dids) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=6), st.data())
def test_proposal_passes_iff_approvers_hold_more_than_two_thirds(powers: list[int],
                                                                 data: st.DataObject) -> None:
    total = sum(powers)
    assume(total > 3)  # the proposed change (power + 1) must move under 1/3
    order = data.draw(st.permutations(range(len(powers))))
    count = data.draw(st.integers(0, len(powers)))
    approvers = list(order[:count])
    view = DictState()
    init_identity(view, GENESIS, {"accounts": [
        *({"pubkey": ORGS[i].public_key.hex(), "roles": ["validator-org"]}
          for i in range(len(powers))),
        {"pubkey": OUTSIDER.public_key.hex(), "roles": ["validator-org"]}]})
    init_validators(view, GENESIS, {"validators": [
        {"pubkey": VALS[i].public_key.hex(), "power": p, "organisation": ORGS[i].did,
         "name": f"v{i}"} for i, p in enumerate(powers)]})

    proposer = ORGS[approvers[0]] if approvers else OUTSIDER
    handlers.handle_propose_validator_change(
        view, TxContext(BLOCK, proposer.address),
        MsgProposeValidatorChange("set-power", VALS[0].public_key, powers[0] + 1, "", ""))
    passed_after = None
    approved = 0
    for position, index in enumerate(approvers):
        approved += powers[index]
        if position > 0:
            handlers.handle_approve_validator_change(
                view, TxContext(BLOCK, ORGS[index].address), MsgApproveValidatorChange(1))
        if passed_after is None and 3 * approved > 2 * total:
            passed_after = position
        proposal = state.get_proposal(view, 1)
        assert proposal is not None
        # It passes exactly when the running approvals first exceed 2/3, not before.
        assert (proposal.status == "passed") == (passed_after is not None)
        if passed_after is not None:
            break
    final = state.get_proposal(view, 1)
    assert final is not None
    approved_all = sum(powers[i] for i in approvers)
    assert (final.status == "passed") == (3 * approved_all > 2 * total)
