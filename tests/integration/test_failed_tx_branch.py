"""Per-tx branches: a tx that fails in a block consumes its sequence and writes nothing else,
even when an earlier message of the same tx succeeded; neighbours in the block are unaffected."""

from __future__ import annotations

from citychain.core.errors import RoleRequiredError
from citychain.modules.bank.errors import InsufficientFundsError, RecipientNotFoundError
from citychain.modules.bank.keys import balance_key
from citychain.modules.bank.messages import MsgMint, MsgTransfer
from citychain.modules.identity.keys import sequence_key
from citychain.testing.chain import CITIZEN_BALANCE, DENOM, Cast, ChainRunner
from citychain.testing.checks import Before, assert_error, assert_ok, changed_keys


def test_invalid_overdraft_consumes_sequence_only(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    sender, recipient = cast.citizens[0], cast.citizens[1]
    before = Before.of(runner)
    (result,) = runner.run(runner.tx(sender, MsgTransfer(recipient.did, DENOM,
                                                         CITIZEN_BALANCE + 1)))
    assert_error(result, InsufficientFundsError)
    assert result.events == ()
    assert changed_keys(before.state, runner.snapshot()) == [sequence_key(sender.address)]
    assert runner.account(sender)["sequence"] == 1  # type: ignore[index]
    assert runner.app_hash != before.app_hash


def test_invalid_second_message_rolls_back_the_first(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    sender, recipient = cast.citizens[0], cast.citizens[1]
    before = Before.of(runner)
    raw = runner.tx(sender, MsgTransfer(recipient.did, DENOM, 100),
                    MsgTransfer(cast.newcomer.did, DENOM, 1))
    (result,) = runner.run(raw)
    assert_error(result, RecipientNotFoundError)
    assert result.info == "to"
    assert changed_keys(before.state, runner.snapshot()) == [sequence_key(sender.address)]
    assert runner.balance(recipient) == CITIZEN_BALANCE


def test_failed_tx_between_good_ones(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    alice, bob, carol = cast.citizens[:3]
    before = Before.of(runner)
    results = runner.run(
        runner.tx(alice, MsgTransfer(bob.did, DENOM, 10)),
        runner.tx(bob, MsgTransfer(carol.did, DENOM, 10 * CITIZEN_BALANCE)),  # fails
        runner.tx(alice, MsgTransfer(carol.did, DENOM, 7)),  # alice's next sequence
        runner.tx(bob, MsgTransfer(carol.did, DENOM, 3)),  # bob's seq 1 still valid
    )
    assert [r.ok for r in results] == [True, False, True, True]
    assert_error(results[1], InsufficientFundsError)
    assert runner.balance(alice) == CITIZEN_BALANCE - 17
    assert runner.balance(bob) == CITIZEN_BALANCE + 10 - 3
    assert runner.balance(carol) == CITIZEN_BALANCE + 10
    assert changed_keys(before.state, runner.snapshot()) == sorted([
        sequence_key(alice.address), sequence_key(bob.address),
        balance_key(alice.address, DENOM), balance_key(bob.address, DENOM),
        balance_key(carol.address, DENOM)])
    account = runner.account(bob)
    assert account is not None and account["sequence"] == 2


def test_failed_check_tx_does_not_consume_sequence(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    sender = cast.citizens[0]
    failing = runner.tx(sender, MsgMint(cast.citizens[1].did, DENOM, 1), sequence=0)
    assert_error(runner.check(failing), RoleRequiredError)
    assert_ok(runner.check(runner.tx(sender, MsgTransfer(cast.citizens[1].did, DENOM, 1),
                                     sequence=0)))


def test_check_tx_runs_ante_only_so_an_overdraft_fails_in_the_block(
        chain: tuple[ChainRunner, Cast]) -> None:
    # check_tx is a filter (signature, sequence, role); messages run once, at execution.
    runner, cast = chain
    sender = cast.citizens[0]
    overdraft = runner.tx(sender, MsgTransfer(cast.citizens[1].did, DENOM, 10 * CITIZEN_BALANCE),
                          sequence=0)
    assert_ok(runner.check(overdraft))
    (result,) = runner.run(overdraft)
    assert_error(result, InsufficientFundsError)
