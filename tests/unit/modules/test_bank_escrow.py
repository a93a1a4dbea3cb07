"""Bank escrow: deposits and payments through api.py (post-state and events), their failures,
the escrow query, genesis round trip with escrows, and supply conserved under random moves."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
import test_bank_handlers as harness  # the bank handler tests' accounts and genesis
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core.errors import ChainError, InvalidGenesisError, InvalidQueryError
from citychain.core.events import Event
from citychain.modules.bank import api, keys, state
from citychain.modules.bank.errors import (
    AmountInvalidError,
    DenomNotFoundError,
    EscrowInsufficientError,
    InsufficientFundsError,
    RecipientNotFoundError,
    RecipientSuspendedError,
    TransfersDisabledError,
)
from citychain.modules.bank.events import EVENT_TYPES
from citychain.modules.bank.genesis import export_genesis, init_genesis
from citychain.modules.bank.module import MODULE
from citychain.modules.identity.genesis import export_genesis as export_identity
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.testing.state import DictState

TREASURY, ALICE, BOB = harness.TREASURY, harness.ALICE, harness.BOB
SUSPENDED, STRANGER = harness.SUSPENDED, harness.STRANGER
OWNER, ESCROW = "contracts", "c/17"


@pytest.fixture
def view() -> DictState:
    return harness.make_view()


def escrowed(view: DictState, denom: str = "ucity", escrow_id: str = ESCROW) -> int:
    return api.get_escrow_balance(view, OWNER, escrow_id, denom)


def assert_fails(view: DictState, error: type[ChainError], field: str | None,
                 call: Any, *args: Any) -> ChainError:
    """Call the api function, check the exact error, its code and field, and that nothing
    changed."""
    before = view.snapshot()
    with pytest.raises(ChainError) as caught:
        call(view, *args)
    assert type(caught.value) is error
    assert (caught.value.codespace, caught.value.code) == (error.codespace, error.code)
    assert caught.value.field == field
    assert view.snapshot() == before
    return caught.value


# ------------------------------------------------------------------ deposit
def test_deposit_to_escrow(view: DictState) -> None:
    event = api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 120)
    assert harness.balance(view, ALICE) == 180
    assert escrowed(view) == 120
    assert api.get_supply(view, "ucity") == 1_350  # no mint, no burn
    assert view.get(keys.escrow_key(OWNER, ESCROW, "ucity")) is not None
    assert event == Event.of("coins_escrowed", holder=ALICE.did, owner=OWNER, escrow_id=ESCROW,
                             denom="ucity", amount=120)
    assert api.check_supply_invariant(view) == []


def test_deposits_add_up_and_escrows_are_separate(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 100)
    api.deposit_to_escrow(view, TREASURY.address, OWNER, ESCROW, "ucity", 50)
    api.deposit_to_escrow(view, TREASURY.address, OWNER, "c/18", "ucity", 7)
    assert escrowed(view) == 150
    assert escrowed(view, escrow_id="c/18") == 7
    assert api.get_escrow_balance(view, "voting", ESCROW, "ucity") == 0
    assert api.check_supply_invariant(view) == []


def test_deposit_whole_balance_leaves_no_key(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 300)
    assert view.get(keys.balance_key(ALICE.address, "ucity")) is None


def test_deposit_from_suspended_holder_is_allowed(view: DictState) -> None:
    # As with api.transfer, the holder side is the calling module's business.
    api.deposit_to_escrow(view, SUSPENDED.address, OWNER, ESCROW, "ucity", 50)
    assert escrowed(view) == 50


def test_invalid_deposit_insufficient_funds(view: DictState) -> None:
    error = assert_fails(view, InsufficientFundsError, "amount", api.deposit_to_escrow,
                         ALICE.address, OWNER, ESCROW, "ucity", 301)
    assert error.details == {"required": 301, "available": 300, "denom": "ucity"}


def test_invalid_deposit_unknown_denom(view: DictState) -> None:
    assert_fails(view, DenomNotFoundError, "denom", api.deposit_to_escrow,
                 ALICE.address, OWNER, ESCROW, "ugold", 1)
    assert_fails(view, DenomNotFoundError, "denom", api.deposit_to_escrow,
                 ALICE.address, OWNER, ESCROW, "x" * 300, 1)


@pytest.mark.parametrize("amount", [0, -1, 2**63, True])
def test_invalid_deposit_amount(view: DictState, amount: int) -> None:
    assert_fails(view, AmountInvalidError, "amount", api.deposit_to_escrow,
                 ALICE.address, OWNER, ESCROW, "ucity", amount)


def test_invalid_deposit_transfers_disabled() -> None:
    view = harness.make_view(transfers_enabled=False)
    assert_fails(view, TransfersDisabledError, None, api.deposit_to_escrow,
                 ALICE.address, OWNER, ESCROW, "ucity", 1)


@pytest.mark.parametrize("owner, escrow_id", [
    ("", ESCROW), (OWNER, ""), ("x" * 65, ESCROW), (OWNER, "c\n17"), ("contracté", ESCROW),
])
def test_invalid_escrow_names_are_programming_errors(view: DictState, owner: str,
                                                     escrow_id: str) -> None:
    before = view.snapshot()
    with pytest.raises(ValueError):
        api.deposit_to_escrow(view, ALICE.address, owner, escrow_id, "ucity", 1)
    with pytest.raises(ValueError):
        api.pay_from_escrow(view, owner, escrow_id, BOB.address, "ucity", 1)
    with pytest.raises(ValueError):
        api.get_escrow_balance(view, owner, escrow_id, "ucity")
    with pytest.raises(ValueError):
        api.iter_escrow_balances(view, owner, escrow_id)
    assert view.snapshot() == before


def test_longest_escrow_names(view: DictState) -> None:
    owner, escrow_id = "o" * 64, "~" * 64
    api.deposit_to_escrow(view, ALICE.address, owner, escrow_id, "ucity", 3)
    assert api.get_escrow_balance(view, owner, escrow_id, "ucity") == 3
    assert api.check_supply_invariant(view) == []


# ------------------------------------------------------------------ pay
def test_pay_from_escrow(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 120)
    event = api.pay_from_escrow(view, OWNER, ESCROW, BOB.address, "ucity", 45)
    assert escrowed(view) == 75
    assert harness.balance(view, BOB) == 45
    assert api.get_supply(view, "ucity") == 1_350
    assert event == Event.of("escrow_paid", owner=OWNER, escrow_id=ESCROW, recipient=BOB.did,
                             denom="ucity", amount=45)
    assert api.check_supply_invariant(view) == []


def test_pay_whole_escrow_leaves_no_key(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 120)
    api.pay_from_escrow(view, OWNER, ESCROW, ALICE.address, "ucity", 120)
    assert view.get(keys.escrow_key(OWNER, ESCROW, "ucity")) is None
    assert list(api.iter_escrow_balances(view, OWNER, ESCROW)) == []
    assert harness.balance(view, ALICE) == 300


def test_pay_while_transfers_disabled() -> None:
    # Payments settle what is already escrowed; only deposits follow the pause switch.
    paused = harness.make_view(transfers_enabled=False)
    state.set_escrow_balance(paused, OWNER, ESCROW, "ucity", 10)
    state.set_balance(paused, ALICE.address, "ucity", 290)
    api.pay_from_escrow(paused, OWNER, ESCROW, BOB.address, "ucity", 10)
    assert harness.balance(paused, BOB) == 10
    assert api.check_supply_invariant(paused) == []


def test_invalid_pay_escrow_insufficient(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 20)
    error = assert_fails(view, EscrowInsufficientError, "amount", api.pay_from_escrow,
                         OWNER, ESCROW, BOB.address, "ucity", 21)
    assert error.details == {"required": 21, "available": 20, "denom": "ucity"}
    assert (error.codespace, error.code) == ("bank", 9)


def test_invalid_pay_from_unknown_escrow(view: DictState) -> None:
    error = assert_fails(view, EscrowInsufficientError, "amount", api.pay_from_escrow,
                         OWNER, "never", BOB.address, "ucity", 1)
    assert error.details == {"required": 1, "available": 0, "denom": "ucity"}


def test_invalid_pay_unknown_recipient(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 20)
    assert_fails(view, RecipientNotFoundError, "to", api.pay_from_escrow,
                 OWNER, ESCROW, STRANGER.address, "ucity", 5)


def test_invalid_pay_suspended_recipient(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 20)
    assert_fails(view, RecipientSuspendedError, "to", api.pay_from_escrow,
                 OWNER, ESCROW, SUSPENDED.address, "ucity", 5)


def test_invalid_pay_unknown_denom(view: DictState) -> None:
    assert_fails(view, DenomNotFoundError, "denom", api.pay_from_escrow,
                 OWNER, ESCROW, BOB.address, "ugold", 1)


@pytest.mark.parametrize("amount", [0, -5, 2**63])
def test_invalid_pay_amount(view: DictState, amount: int) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 20)
    assert_fails(view, AmountInvalidError, "amount", api.pay_from_escrow,
                 OWNER, ESCROW, BOB.address, "ucity", amount)


# ------------------------------------------------------------------ reads, query, invariant
def test_iter_escrow_balances_in_key_order(view: DictState) -> None:
    api.mint(view, ALICE.address, "uvoucher", 9)
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "uvoucher", 4)
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 6)
    assert list(api.iter_escrow_balances(view, OWNER, ESCROW)) == [("ucity", 6), ("uvoucher", 4)]
    assert api.get_escrow_balance(view, OWNER, ESCROW, "NOPE") == 0


def test_escrow_key_layout() -> None:
    assert keys.escrow_key("contracts", "c/17", "ucity") == (
        b"\x02\x04" + b"\x09contracts" + b"\x04c/17" + b"\x05ucity")
    assert keys.split_escrow_key(keys.escrow_key("a", "b", "ucity")) == ("a", "b", "ucity")


def test_escrow_query(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 6)
    query = MODULE.queries["escrow"]
    assert query(view, {"owner": OWNER, "escrow_id": ESCROW}) == {
        "owner": OWNER, "escrow_id": ESCROW, "balances": [{"denom": "ucity", "amount": 6}]}
    assert query(view, {"owner": OWNER, "escrow_id": "none"})["balances"] == []
    assert "escrow" not in MODULE.provable_queries
    assert [p.name for p in MODULE.query_params["escrow"]] == ["owner", "escrow_id"]


@pytest.mark.parametrize("params, field", [
    ({"owner": OWNER}, "escrow_id"),
    ({"owner": "", "escrow_id": ESCROW}, "owner"),
    ({"owner": OWNER, "escrow_id": 17}, "escrow_id"),
    ({"owner": OWNER, "escrow_id": ESCROW, "denom": "ucity"}, "denom"),
])
def test_invalid_escrow_query(view: DictState, params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        MODULE.queries["escrow"](view, params)
    assert caught.value.field == field


def test_event_types_declared() -> None:
    assert {"coins_escrowed", "escrow_paid"} <= EVENT_TYPES
    assert MODULE.event_types == EVENT_TYPES


def test_supply_invariant_counts_escrows(view: DictState) -> None:
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 100)
    assert api.check_supply_invariant(view) == []
    state.set_escrow_balance(view, OWNER, ESCROW, "ucity", 101)
    view.set(keys.escrow_key(OWNER, ESCROW, "ugold"), b"\x01")
    view.set(keys.escrow_key(OWNER, "c/0", "uvoucher"), b"\x00")
    assert api.check_supply_invariant(view) == [
        f"escrow {OWNER}/c/0 in uvoucher is 0, outside 1..2**63-1",
        f"escrow {OWNER}/{ESCROW} is in unknown denom ugold",
        "balances of ucity sum to 1351, supply is 1350",
        "balances of ugold sum to 1, supply is 0",
    ]


# ------------------------------------------------------------------ genesis
def test_genesis_round_trip_with_escrows(view: DictState) -> None:
    api.mint(view, ALICE.address, "uvoucher", 9)
    api.deposit_to_escrow(view, ALICE.address, OWNER, "c/9", "uvoucher", 2)
    api.deposit_to_escrow(view, ALICE.address, OWNER, ESCROW, "ucity", 30)
    api.deposit_to_escrow(view, TREASURY.address, "voting", "p/1", "ucity", 5)
    section = json.loads(json.dumps({"identity": export_identity(view),
                                     "bank": export_genesis(view)}))
    assert section["bank"]["escrows"] == [
        {"owner": "voting", "escrow_id": "p/1", "denom": "ucity", "amount": 5},
        {"owner": OWNER, "escrow_id": "c/9", "denom": "uvoucher", "amount": 2},
        {"owner": OWNER, "escrow_id": ESCROW, "denom": "ucity", "amount": 30},
    ]  # key order: shorter owners first
    again = DictState()
    init_identity(again, harness.GENESIS, section["identity"])
    init_genesis(again, harness.GENESIS, section["bank"])
    assert again.snapshot() == view.snapshot()
    assert export_genesis(again) == section["bank"]
    assert api.get_supply(again, "ucity") == 1_350


def test_genesis_without_escrows_section_still_loads() -> None:
    view = harness.make_view()  # make_view's section has no "escrows"
    assert export_genesis(view)["escrows"] == []


def genesis_with(escrows: list[Any]) -> dict[str, Any]:
    return {"denoms": [{"denom": "ucity", "display_name": "City credit", "decimals": 6}],
            "balances": [{"address": ALICE.address, "denom": "ucity", "amount": 10}],
            "escrows": escrows}


def test_genesis_escrows_count_in_supply() -> None:
    view = DictState()
    init_identity(view, harness.GENESIS, {"accounts": [{"pubkey": ALICE.public_key.hex()}]})
    init_genesis(view, harness.GENESIS, genesis_with(
        [{"owner": OWNER, "escrow_id": ESCROW, "denom": "ucity", "amount": 5}]))
    assert api.get_supply(view, "ucity") == 15
    assert escrowed(view) == 5
    assert api.check_supply_invariant(view) == []


E = "app_state.bank.escrows"
ENTRY = {"owner": OWNER, "escrow_id": ESCROW, "denom": "ucity", "amount": 5}


@pytest.mark.parametrize("escrows, field", [
    ("x", E),
    (["x"], f"{E}[0]"),
    ([{**ENTRY, "extra": 1}], f"{E}[0].extra"),
    ([{k: v for k, v in ENTRY.items() if k != "owner"}], f"{E}[0].owner"),
    ([{**ENTRY, "owner": ""}], f"{E}[0].owner"),
    ([{**ENTRY, "escrow_id": "x" * 65}], f"{E}[0].escrow_id"),
    ([{**ENTRY, "denom": "ugold"}], f"{E}[0].denom"),
    ([{**ENTRY, "amount": 0}], f"{E}[0].amount"),
    ([ENTRY, ENTRY], f"{E}[1]"),
    ([{**ENTRY, "amount": 2**63 - 10}], f"{E}[0].amount"),  # supply past 2**63 - 1
])
def test_invalid_genesis_escrows(escrows: Any, field: str) -> None:
    view = DictState()
    init_identity(view, harness.GENESIS, {"accounts": [{"pubkey": ALICE.public_key.hex()}]})
    before = view.snapshot()
    with pytest.raises(InvalidGenesisError) as caught:
        init_genesis(view, harness.GENESIS, genesis_with(escrows))
    assert caught.value.field == field
    assert view.snapshot() == before


# ------------------------------------------------------------------ property
PEOPLE = [TREASURY, ALICE, BOB, SUSPENDED, STRANGER]
moves = st.lists(st.tuples(st.sampled_from(["deposit", "deposit", "pay"]),
                           st.sampled_from(range(len(PEOPLE))),
                           st.sampled_from([ESCROW, "c/18"]),
                           st.sampled_from(["ucity", "ucity", "uvoucher", "ugold"]),
                           st.one_of(st.integers(1, 400), st.integers(-2, 2))),
                 max_size=30)


@settings(max_examples=60, deadline=None)
@given(moves=moves)
def test_deposits_and_payments_conserve_supply(
        moves: list[tuple[str, int, str, str, int]]) -> None:
    view = harness.make_view()
    supplies = dict(state.iter_supplies(view))
    for kind, who, escrow_id, denom, amount in moves:
        before = view.snapshot()
        with contextlib.suppress(ChainError):
            if kind == "deposit":
                held = escrowed(view, denom, escrow_id)
                api.deposit_to_escrow(view, PEOPLE[who].address, OWNER, escrow_id, denom,
                                      amount)
                assert escrowed(view, denom, escrow_id) == held + amount
            else:
                api.pay_from_escrow(view, OWNER, escrow_id, PEOPLE[who].address, denom, amount)
            continue
        assert view.snapshot() == before  # a failure changes nothing
    assert dict(state.iter_supplies(view)) == supplies
    assert api.check_supply_invariant(view) == []
