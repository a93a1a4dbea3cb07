"""Bank handlers and api: each message's valid case (post-state and events) and its failures."""

from __future__ import annotations

from typing import Any

import pytest

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import ChainError, RoleRequiredError
from citychain.core.events import Event
from citychain.core.messages import Msg
from citychain.modules.bank import api, keys, state
from citychain.modules.bank.errors import (
    AmountInvalidError,
    DenomAlreadyExistsError,
    DenomNotFoundError,
    InsufficientFundsError,
    RecipientNotFoundError,
    RecipientSuspendedError,
    SupplyOverflowError,
    TransfersDisabledError,
)
from citychain.modules.bank.genesis import init_genesis as init_bank
from citychain.modules.bank.messages import MsgBurn, MsgCreateDenom, MsgMint, MsgTransfer
from citychain.modules.bank.module import MODULE
from citychain.modules.bank.types import MAX_AMOUNT, Denom
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.testing.state import DictState

CHAIN_ID = "citychain-test"
HEIGHT = 21
BLOCK = BlockContext(CHAIN_ID, HEIGHT, 0)
GENESIS = BlockContext(CHAIN_ID, 0, 0)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_secret(f"bank-handlers/{name}")


TREASURY, ALICE, BOB = key("treasury"), key("alice"), key("bob")
SUSPENDED, SUSPENDED_TREASURY, STRANGER = key("suspended"), key("sus-treasury"), key("stranger")


def make_view(*, transfers_enabled: bool = True) -> DictState:
    view = DictState()
    suspension = {"reason": "case", "height": 0, "by": TREASURY.address}
    accounts: list[dict[str, Any]] = [
        {"pubkey": TREASURY.public_key.hex(), "roles": ["treasury"]},
        {"pubkey": ALICE.public_key.hex(), "roles": ["citizen"]},
        {"pubkey": BOB.public_key.hex(), "roles": ["citizen"]},
        {"pubkey": SUSPENDED.public_key.hex(), "roles": ["citizen"], "suspension": suspension},
        {"pubkey": SUSPENDED_TREASURY.public_key.hex(), "roles": ["treasury"],
         "suspension": suspension},
    ]
    init_identity(view, GENESIS, {"accounts": accounts})
    init_bank(view, GENESIS, {
        "params": {"transfers_enabled": transfers_enabled},
        "denoms": [{"denom": "ucity", "display_name": "City credit", "decimals": 6},
                   {"denom": "uvoucher", "display_name": "Voucher", "decimals": 0}],
        "balances": [{"address": TREASURY.address, "denom": "ucity", "amount": 1_000},
                     {"address": ALICE.address, "denom": "ucity", "amount": 300},
                     {"address": SUSPENDED.address, "denom": "ucity", "amount": 50}],
    })
    return view


@pytest.fixture
def view() -> DictState:
    return make_view()


def run(view: DictState, sender: PrivateKey, msg: Msg) -> list[Event]:
    ctx = TxContext(BLOCK, sender.address)
    MODULE.handlers[type(msg)](view, ctx, msg)
    assert api.check_supply_invariant(view) == []
    return ctx.events


def assert_fails(view: DictState, sender: PrivateKey, msg: Msg, error: type[ChainError],
                 field: str | None) -> ChainError:
    """Run ``msg`` and check the exact error, its code and field, and that nothing changed."""
    before = view.snapshot()
    ctx = TxContext(BLOCK, sender.address)
    with pytest.raises(ChainError) as caught:
        MODULE.handlers[type(msg)](view, ctx, msg)
    assert type(caught.value) is error
    assert caught.value.code == error.code
    assert caught.value.codespace == error.codespace
    assert caught.value.field == field
    assert view.snapshot() == before
    assert ctx.events == []
    return caught.value


def balance(view: DictState, who: PrivateKey, denom: str = "ucity") -> int:
    return api.get_balance(view, who.address, denom)


# ------------------------------------------------------------------ MsgCreateDenom
def test_create_denom(view: DictState) -> None:
    events = run(view, TREASURY, MsgCreateDenom("ubike", "Bike minutes", 0))
    assert state.get_denom(view, "ubike") == Denom("ubike", "Bike minutes", 0, TREASURY.address,
                                                   HEIGHT)
    assert api.denom_exists(view, "ubike")
    assert api.get_supply(view, "ubike") == 0
    assert view.get(keys.supply_key("ubike")) is None  # zero is never stored
    assert events == [Event.of("denom_created", denom="ubike", display_name="Bike minutes",
                               decimals=0, created_by=TREASURY.did)]


def test_invalid_create_denom_exists(view: DictState) -> None:
    assert_fails(view, TREASURY, MsgCreateDenom("ucity", "Again", 2), DenomAlreadyExistsError,
                 "denom")


def test_invalid_create_denom_not_treasury(view: DictState) -> None:
    error = assert_fails(view, ALICE, MsgCreateDenom("ubike", "Bike", 0), RoleRequiredError,
                         "sender")
    assert error.details == {"required": "treasury"}


def test_invalid_create_denom_suspended_treasury(view: DictState) -> None:
    assert_fails(view, SUSPENDED_TREASURY, MsgCreateDenom("ubike", "Bike", 0),
                 RoleRequiredError, "sender")


# ------------------------------------------------------------------ MsgMint
def test_mint(view: DictState) -> None:
    events = run(view, TREASURY, MsgMint(BOB.did, "ucity", 250))
    assert balance(view, BOB) == 250
    assert api.get_supply(view, "ucity") == 1_600
    assert events == [Event.of("coins_minted", denom="ucity", amount=250, recipient=BOB.did)]


def test_mint_up_to_the_supply_limit(view: DictState) -> None:
    run(view, TREASURY, MsgMint(BOB.did, "uvoucher", MAX_AMOUNT))
    assert api.get_supply(view, "uvoucher") == MAX_AMOUNT


def test_invalid_mint_citizen(view: DictState) -> None:
    assert_fails(view, ALICE, MsgMint(ALICE.did, "ucity", 5), RoleRequiredError, "sender")


def test_invalid_mint_unknown_denom(view: DictState) -> None:
    assert_fails(view, TREASURY, MsgMint(BOB.did, "ugold", 5), DenomNotFoundError, "denom")


def test_invalid_mint_recipient_without_identity(view: DictState) -> None:
    assert_fails(view, TREASURY, MsgMint(STRANGER.did, "ucity", 5), RecipientNotFoundError,
                 "to")


def test_invalid_mint_recipient_suspended(view: DictState) -> None:
    assert_fails(view, TREASURY, MsgMint(SUSPENDED.did, "ucity", 5), RecipientSuspendedError,
                 "to")


def test_invalid_mint_supply_overflow(view: DictState) -> None:
    error = assert_fails(view, TREASURY, MsgMint(BOB.did, "ucity", MAX_AMOUNT - 999),
                         SupplyOverflowError, "amount")
    assert error.details == {"supply": 1_350, "limit": MAX_AMOUNT}


# ------------------------------------------------------------------ MsgBurn
def test_burn(view: DictState) -> None:
    events = run(view, TREASURY, MsgBurn("ucity", 400))
    assert balance(view, TREASURY) == 600
    assert api.get_supply(view, "ucity") == 950
    assert events == [Event.of("coins_burned", denom="ucity", amount=400, holder=TREASURY.did)]


def test_burn_whole_balance_deletes_the_key(view: DictState) -> None:
    run(view, TREASURY, MsgBurn("ucity", 1_000))
    assert view.get(keys.balance_key(TREASURY.address, "ucity")) is None


def test_burn_whole_supply_deletes_the_supply_key(view: DictState) -> None:
    run(view, TREASURY, MsgMint(TREASURY.did, "uvoucher", 5))
    run(view, TREASURY, MsgBurn("uvoucher", 5))
    assert view.get(keys.supply_key("uvoucher")) is None


def test_invalid_burn_insufficient_funds(view: DictState) -> None:
    error = assert_fails(view, TREASURY, MsgBurn("ucity", 1_001), InsufficientFundsError,
                         "amount")
    assert error.details == {"required": 1_001, "available": 1_000, "denom": "ucity"}


def test_invalid_burn_citizen(view: DictState) -> None:
    assert_fails(view, ALICE, MsgBurn("ucity", 1), RoleRequiredError, "sender")


def test_invalid_burn_unknown_denom(view: DictState) -> None:
    assert_fails(view, TREASURY, MsgBurn("ugold", 1), DenomNotFoundError, "denom")


# ------------------------------------------------------------------ MsgTransfer
def test_transfer(view: DictState) -> None:
    events = run(view, ALICE, MsgTransfer(BOB.did, "ucity", 120))
    assert (balance(view, ALICE), balance(view, BOB)) == (180, 120)
    assert api.get_supply(view, "ucity") == 1_350
    assert events == [Event.of("coins_transferred", denom="ucity", amount=120,
                               sender=ALICE.did, recipient=BOB.did)]


def test_transfer_whole_balance(view: DictState) -> None:
    run(view, ALICE, MsgTransfer(BOB.did, "ucity", 300))
    assert view.get(keys.balance_key(ALICE.address, "ucity")) is None
    assert balance(view, BOB) == 300


def test_transfer_to_self_changes_nothing(view: DictState) -> None:
    before = view.snapshot()
    events = run(view, ALICE, MsgTransfer(ALICE.did, "ucity", 300))
    assert view.snapshot() == before
    assert events == [Event.of("coins_transferred", denom="ucity", amount=300,
                               sender=ALICE.did, recipient=ALICE.did)]


def test_suspended_holder_may_still_be_debited_by_a_module(view: DictState) -> None:
    # Transactions from a suspended account are refused by the ante handler; the api does not
    # second-guess a module that moves such coins (for example to settle a debt).
    api.transfer(view, SUSPENDED.address, TREASURY.address, "ucity", 50)
    assert balance(view, SUSPENDED) == 0


def test_invalid_transfer_insufficient_funds(view: DictState) -> None:
    error = assert_fails(view, ALICE, MsgTransfer(BOB.did, "ucity", 301),
                         InsufficientFundsError, "amount")
    assert error.details == {"required": 301, "available": 300, "denom": "ucity"}


def test_invalid_transfer_no_balance_in_denom(view: DictState) -> None:
    error = assert_fails(view, ALICE, MsgTransfer(BOB.did, "uvoucher", 1),
                         InsufficientFundsError, "amount")
    assert error.details["available"] == 0


def test_invalid_transfer_to_self_insufficient_funds(view: DictState) -> None:
    assert_fails(view, ALICE, MsgTransfer(ALICE.did, "ucity", 301), InsufficientFundsError,
                 "amount")


def test_invalid_transfer_unknown_denom(view: DictState) -> None:
    assert_fails(view, ALICE, MsgTransfer(BOB.did, "ugold", 1), DenomNotFoundError, "denom")


def test_invalid_transfer_recipient_without_identity(view: DictState) -> None:
    assert_fails(view, ALICE, MsgTransfer(STRANGER.did, "ucity", 1), RecipientNotFoundError,
                 "to")


def test_invalid_transfer_recipient_suspended(view: DictState) -> None:
    assert_fails(view, ALICE, MsgTransfer(SUSPENDED.did, "ucity", 1), RecipientSuspendedError,
                 "to")


def test_invalid_transfer_while_transfers_disabled() -> None:
    view = make_view(transfers_enabled=False)
    assert_fails(view, ALICE, MsgTransfer(BOB.did, "ucity", 1), TransfersDisabledError, None)
    run(view, TREASURY, MsgMint(BOB.did, "ucity", 1))  # the treasury still mints


# ------------------------------------------------------------------ api facade
def test_api_returns_events_without_emitting(view: DictState) -> None:
    assert api.transfer(view, ALICE.address, BOB.address, "ucity", 1) == Event.of(
        "coins_transferred", denom="ucity", amount=1, sender=ALICE.did, recipient=BOB.did)
    assert api.mint(view, BOB.address, "uvoucher", 3) == Event.of(
        "coins_minted", denom="uvoucher", amount=3, recipient=BOB.did)
    assert api.burn(view, BOB.address, "uvoucher", 2) == Event.of(
        "coins_burned", denom="uvoucher", amount=2, holder=BOB.did)
    assert api.get_balance(view, BOB.address, "uvoucher") == 1
    assert api.check_supply_invariant(view) == []


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT + 1])
def test_invalid_api_amount(view: DictState, amount: int) -> None:
    before = view.snapshot()
    for call in (lambda: api.transfer(view, ALICE.address, BOB.address, "ucity", amount),
                 lambda: api.mint(view, BOB.address, "ucity", amount),
                 lambda: api.burn(view, ALICE.address, "ucity", amount)):
        with pytest.raises(AmountInvalidError) as caught:
            call()
        assert caught.value.field == "amount"
    assert view.snapshot() == before


def test_api_reads_of_malformed_denoms(view: DictState) -> None:
    assert api.get_balance(view, ALICE.address, "x" * 300) == 0
    assert api.get_supply(view, "NOPE") == 0
    assert not api.denom_exists(view, "NOPE")
    with pytest.raises(DenomNotFoundError):
        api.transfer(view, ALICE.address, BOB.address, "x" * 300, 1)


def test_supply_invariant_reports_problems(view: DictState) -> None:
    state.set_balance(view, BOB.address, "ucity", 7)
    view.set(keys.balance_key(BOB.address, "ugold"), b"\x01")
    view.set(keys.supply_key("uvoucher"), b"\x00")
    assert api.check_supply_invariant(view) == [
        f"balance of {BOB.address} is in unknown denom ugold",
        "balances of ucity sum to 1357, supply is 1350",
        "balances of ugold sum to 1, supply is 0",
        "supply of uvoucher is stored as zero",
    ]
