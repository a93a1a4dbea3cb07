"""Supply is conserved under random transfer sequences run through the full application."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citychain.modules.bank import api as bank
from citychain.modules.bank.messages import MsgBurn, MsgMint, MsgTransfer
from citychain.testing.chain import CITIZEN_BALANCE, DENOM, Cast, memory_chain

CAST = Cast.make(citizens=5, devices=1)

# (sender index, recipient index, amount); index len(citizens) names an account with no
# identity and len + 1 the device (an identity without a balance).
transfers = st.tuples(st.integers(0, 4), st.integers(0, 6),
                      st.one_of(st.integers(1, 1000), st.integers(1, 2 * CITIZEN_BALANCE)))
blocks = st.lists(st.lists(transfers, max_size=8), min_size=1, max_size=5)


def recipient(index: int) -> str:
    if index < len(CAST.citizens):
        return CAST.citizens[index].did
    if index == len(CAST.citizens):
        return CAST.newcomer.did
    return CAST.devices[0].did


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks)
def test_transfers_conserve_supply(plan: list[list[tuple[int, int, int]]]) -> None:
    runner, cast = memory_chain(CAST)
    supply = runner.supply()
    holders = [*cast.citizens, cast.treasury, *cast.devices]
    assert supply == sum(runner.balance(key) for key in holders)
    expected = {key.address: runner.balance(key) for key in holders}
    for block in plan:
        txs = []
        for sender_index, recipient_index, amount in block:
            txs.append(runner.tx(cast.citizens[sender_index],
                                 MsgTransfer(recipient(recipient_index), DENOM, amount)))
        results = runner.run(*txs)
        for (sender_index, recipient_index, amount), result in zip(block, results, strict=True):
            if result.ok:  # mirror the successful ones in a plain model
                expected[cast.citizens[sender_index].address] -= amount
                to = recipient(recipient_index).removeprefix("did:city:")
                expected[to] += amount
            else:
                assert result.codespace == "bank"
        assert runner.supply() == supply
        assert {key.address: runner.balance(key) for key in holders} == expected
        assert bank.check_supply_invariant(runner.app.store.reader()) == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["mint", "burn", "transfer"]),
                          st.integers(0, 4), st.integers(1, 3 * CITIZEN_BALANCE)),
                min_size=1, max_size=20))
def test_mints_and_burns_move_supply_by_their_amount(
        plan: list[tuple[str, int, int]]) -> None:
    runner, cast = memory_chain(CAST)
    supply = runner.supply()
    for kind, index, amount in plan:
        if kind == "mint":
            msg = MsgMint(cast.citizens[index].did, DENOM, amount)
            raw = runner.tx(cast.treasury, msg)
        elif kind == "burn":
            raw = runner.tx(cast.treasury, MsgBurn(DENOM, amount))
        else:
            raw = runner.tx(cast.citizens[index], MsgTransfer(cast.treasury.did, DENOM, amount))
        (result,) = runner.run(raw)
        if result.ok and kind == "mint":
            supply += amount
        elif result.ok and kind == "burn":
            supply -= amount
        assert runner.supply() == supply
        assert bank.check_supply_invariant(runner.app.store.reader()) == []
