"""Permissions end to end, through check_tx and blocks: roles gate messages, suspension stops
an account from sending anything until a registrar reinstates it."""

from __future__ import annotations

import pytest

from citychain.core.errors import AccountSuspendedError, RoleRequiredError
from citychain.modules.bank.errors import RecipientSuspendedError
from citychain.modules.bank.messages import MsgCreateDenom, MsgMint, MsgTransfer
from citychain.modules.identity.errors import RoleGrantNotAllowedError
from citychain.modules.identity.keys import sequence_key
from citychain.modules.identity.messages import (
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgSuspendIdentity,
)
from citychain.testing.chain import DENOM, Cast, ChainRunner
from citychain.testing.checks import Before, assert_error, assert_ok, assert_unchanged, changed_keys


def test_treasury_mints(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    supply = runner.supply()
    (result,) = runner.run(runner.tx(cast.treasury, MsgMint(cast.citizens[0].did, DENOM, 500)))
    assert_ok(result)
    assert [e.type for e in result.events] == ["coins_minted"]
    assert runner.supply() == supply + 500


def test_invalid_citizen_mints(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    citizen = cast.citizens[0]
    raw = runner.tx(citizen, MsgMint(citizen.did, DENOM, 10**6), sequence=0)
    assert_error(runner.check(raw), RoleRequiredError)
    before = Before.of(runner)
    (result,) = runner.run(raw)
    assert_error(result, RoleRequiredError)
    assert result.info == "body.messages[0]"
    assert_unchanged(runner, before)  # refused by the ante: not even the sequence moves


def test_invalid_citizen_creates_denom(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    raw = runner.tx(cast.citizens[0], MsgCreateDenom("fakecoin", "Fake", 0), sequence=0)
    before = Before.of(runner)
    assert_error(runner.check(raw), RoleRequiredError)
    assert_error(runner.run(raw)[0], RoleRequiredError)
    assert_unchanged(runner, before)


def test_registrar_grants_citizen_role(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    device = cast.devices[0]
    assert_ok(runner.run(runner.tx(cast.registrar, MsgGrantRole(device.did, "citizen")))[0])
    account = runner.account(device)
    assert account is not None and "citizen" in account["roles"]


def test_invalid_device_grants_role(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    device = cast.devices[0]
    raw = runner.tx(device, MsgGrantRole(cast.citizens[0].did, "operator"))
    # Who may grant which role depends on the message's content, so only execution refuses it
    # (check_tx runs the ante checks only).
    assert_ok(runner.check(raw))
    before = Before.of(runner)
    (result,) = runner.run(raw)
    assert_error(result, RoleGrantNotAllowedError)
    # Executed in a block, a failing message still uses the sender's sequence, nothing else.
    assert changed_keys(before.state, runner.snapshot()) == [sequence_key(device.address)]
    account = runner.account(cast.citizens[0])
    assert account is not None and account["roles"] == ["citizen"]


def test_invalid_device_grants_itself_registrar(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    device = cast.devices[0]
    before = Before.of(runner)
    (result,) = runner.run(runner.tx(device, MsgGrantRole(device.did, "registrar")))
    assert_error(result, RoleGrantNotAllowedError)
    assert changed_keys(before.state, runner.snapshot()) == [sequence_key(device.address)]


def suspend(runner: ChainRunner, cast: Cast, index: int = 0) -> None:
    target = cast.citizens[index]
    (result,) = runner.run(runner.tx(cast.registrar, MsgSuspendIdentity(target.did, "case-17")))
    assert_ok(result)
    account = runner.account(target)
    assert account is not None and account["suspension"] is not None


@pytest.mark.parametrize("path", ["check_tx", "finalize_block"])
def test_invalid_suspended_account_sends(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    suspend(runner, cast)
    citizen = cast.citizens[0]
    raw = runner.tx(citizen, MsgTransfer(cast.citizens[1].did, DENOM, 5), sequence=0)
    before = Before.of(runner)
    result = runner.check(raw) if path == "check_tx" else runner.run(raw)[0]
    assert_error(result, AccountSuspendedError)
    assert_unchanged(runner, before)


def test_invalid_transfer_to_suspended_account(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    suspend(runner, cast)
    sender = cast.citizens[1]
    before = Before.of(runner)
    (result,) = runner.run(runner.tx(sender, MsgTransfer(cast.citizens[0].did, DENOM, 5)))
    assert_error(result, RecipientSuspendedError)
    assert changed_keys(before.state, runner.snapshot()) == [sequence_key(sender.address)]


def test_suspended_account_sends_again_after_reinstatement(
        chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    suspend(runner, cast)
    citizen, friend = cast.citizens[0], cast.citizens[1]
    refused = runner.tx(citizen, MsgTransfer(friend.did, DENOM, 5), sequence=0)
    assert_error(runner.run(refused)[0], AccountSuspendedError)
    assert_ok(runner.run(runner.tx(cast.registrar, MsgReinstateIdentity(citizen.did)))[0])
    account = runner.account(citizen)
    assert account is not None and account["suspension"] is None
    balance = runner.balance(friend)
    # The refused tx used no sequence, so the same bytes now go through.
    assert_ok(runner.check(refused))
    assert_ok(runner.run(refused)[0])
    assert runner.balance(friend) == balance + 5


def test_invalid_registrar_mints_without_treasury(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    before = Before.of(runner)
    raw = runner.tx(cast.registrar, MsgMint(cast.registrar.did, DENOM, 1), sequence=0)
    assert_error(runner.run(raw)[0], RoleRequiredError)
    assert_unchanged(runner, before)
