"""Ante checks through the full tx path: every malformed or unauthorised tx is refused by
check_tx and again by finalize_block, with its exact error code, and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import cbor2
import pytest

from citychain.app.types import TxResult
from citychain.core import codec
from citychain.core.errors import (
    NonCanonicalError,
    PubkeyMismatchError,
    SequenceFutureError,
    SequenceStaleError,
    SignatureInvalidError,
    TxTooLargeError,
    UnknownAccountError,
    UnknownMessageError,
    WrongChainIdError,
)
from citychain.core.messages import Msg
from citychain.core.tx import MAX_TX_BYTES, TxBody
from citychain.modules.bank.messages import MsgTransfer
from citychain.modules.identity.messages import MsgCreateIdentity
from citychain.testing.chain import DENOM, Cast, ChainRunner
from citychain.testing.checks import Before, assert_error, assert_ok, assert_unchanged

PATHS = ("check_tx", "finalize_block")


@dataclass(frozen=True)
class MsgUnregistered(Msg):
    """A well-formed message whose type no module registers."""

    TYPE = "citychain.testing.v1.MsgUnregistered"

    note: str


def submit(runner: ChainRunner, raw: bytes, path: str) -> TxResult:
    """Send ``raw`` through check_tx, or through a block (finalize_block + commit)."""
    if path == "check_tx":
        return runner.check(raw)
    (result,) = runner.run(raw)
    return result


def assert_refused(runner: ChainRunner, cast: Cast, raw: bytes, path: str,
                   error: type, *, newcomer: bool = False) -> None:
    """``raw`` is refused with ``error`` on ``path`` and leaves state and app hash untouched;
    afterwards the sender's valid tx at the committed sequence still passes check_tx (the check
    state did not move): the first citizen's transfer, or the newcomer's identity creation.
    """
    before = Before.of(runner)
    result = submit(runner, raw, path)
    assert_error(result, error)
    assert_unchanged(runner, before)
    if newcomer:
        key = cast.newcomer
        follow = runner.tx(key, MsgCreateIdentity(key.public_key), sequence=0)
    else:
        key = cast.citizens[0]
        follow = runner.tx(key, MsgTransfer(cast.citizens[1].did, DENOM, 1),
                           sequence=runner.committed_sequence(key.address))
    assert_ok(runner.check(follow))


def transfer_msg(cast: Cast, amount: int = 5) -> MsgTransfer:
    return MsgTransfer(cast.citizens[1].did, DENOM, amount)


@pytest.mark.parametrize("path", PATHS)
def test_valid_transfer_passes_both_paths(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    sender = cast.citizens[0]
    raw = runner.tx(sender, transfer_msg(cast, 5))
    assert_ok(submit(runner, raw, path))
    if path == "finalize_block":
        assert runner.balance(cast.citizens[1]) == runner.balance(sender) + 10


@pytest.mark.parametrize("path", PATHS)
def test_invalid_signature(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = bytearray(runner.tx(cast.citizens[0], transfer_msg(cast), sequence=0))
    raw[-1] ^= 0x01  # the last byte belongs to the signature
    assert_refused(runner, cast, bytes(raw), path, SignatureInvalidError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_wrong_chain_id(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = runner.tx(cast.citizens[0], transfer_msg(cast), sequence=0, chain_id="another-city")
    assert_refused(runner, cast, raw, path, WrongChainIdError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_stale_sequence(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    sender = cast.citizens[0]
    assert_ok(runner.run(runner.tx(sender, transfer_msg(cast, 1), sequence=0))[0])
    replay = runner.tx(sender, transfer_msg(cast, 2), sequence=0)
    assert_refused(runner, cast, replay, path, SequenceStaleError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_replayed_tx(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = runner.tx(cast.citizens[0], transfer_msg(cast, 1), sequence=0)
    assert_ok(runner.run(raw)[0])
    assert_refused(runner, cast, raw, path, SequenceStaleError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_future_sequence(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = runner.tx(cast.citizens[0], transfer_msg(cast), sequence=5)
    assert_refused(runner, cast, raw, path, SequenceFutureError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_unknown_message_type(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = runner.tx(cast.citizens[0], MsgUnregistered("hello"), sequence=0)
    assert_refused(runner, cast, raw, path, UnknownMessageError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_oversized_tx(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = runner.tx(cast.citizens[0], transfer_msg(cast), sequence=0, memo="x" * MAX_TX_BYTES)
    assert len(raw) > MAX_TX_BYTES
    assert_refused(runner, cast, raw, path, TxTooLargeError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_non_canonical_integer(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = runner.tx(cast.citizens[0], transfer_msg(cast), sequence=0)
    field = b"\x68sequence\x00"  # text(8) "sequence", then the integer 0 in one byte
    assert raw.count(field) == 1
    widened = raw.replace(field, b"\x68sequence\x18\x00")  # 0 again, as a 2-byte integer
    assert cbor2.loads(widened) == cbor2.loads(raw)  # the same value, re-encoded
    with pytest.raises(NonCanonicalError):
        codec.decode(widened)
    assert_refused(runner, cast, widened, path, NonCanonicalError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_non_canonical_key_order(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = runner.tx(cast.citizens[0], transfer_msg(cast), sequence=0)
    # a3 | "body" <body> | "pubkey" 58 20 <32> | "signature" 58 40 <64>: move pubkey first.
    pubkey_entry = 1 + 6 + 2 + 32
    signature_entry = 1 + 9 + 2 + 64
    tail = len(raw) - pubkey_entry - signature_entry
    body, pubkey, signature = raw[1:tail], raw[tail:tail + pubkey_entry], raw[-signature_entry:]
    assert pubkey.startswith(b"\x66pubkey") and signature.startswith(b"\x69signature")
    reordered = raw[:1] + pubkey + body + signature
    assert cbor2.loads(reordered) == cbor2.loads(raw)
    assert_refused(runner, cast, reordered, path, NonCanonicalError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_pubkey_not_account_key(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    victim, intruder = cast.citizens[0], cast.newcomer
    body = TxBody(runner.chain_id, victim.address, 0, (transfer_msg(cast, 100),), "")
    raw = codec.encode({"body": body.to_value(), "pubkey": intruder.public_key,
                        "signature": intruder.sign(body.sign_bytes())})
    assert_refused(runner, cast, raw, path, PubkeyMismatchError)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_new_account_pubkey_not_sender(chain: tuple[ChainRunner, Cast],
                                                path: str) -> None:
    runner, cast = chain
    newcomer, other = cast.newcomer, cast.citizens[2]
    body = TxBody(runner.chain_id, newcomer.address, 0,
                  (MsgCreateIdentity(other.public_key),), "")
    raw = codec.encode({"body": body.to_value(), "pubkey": other.public_key,
                        "signature": other.sign(body.sign_bytes())})
    assert_refused(runner, cast, raw, path, PubkeyMismatchError, newcomer=True)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_new_account_sends_transfer(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    raw = runner.tx(cast.newcomer, transfer_msg(cast, 1), sequence=0)
    assert_refused(runner, cast, raw, path, UnknownAccountError, newcomer=True)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_new_account_creates_identity_with_transfer(chain: tuple[ChainRunner, Cast],
                                                           path: str) -> None:
    runner, cast = chain
    newcomer = cast.newcomer
    raw = runner.tx(newcomer, MsgCreateIdentity(newcomer.public_key), transfer_msg(cast, 1),
                    sequence=0)
    assert_refused(runner, cast, raw, path, UnknownAccountError, newcomer=True)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_new_account_future_sequence(chain: tuple[ChainRunner, Cast], path: str) -> None:
    runner, cast = chain
    newcomer = cast.newcomer
    raw = runner.tx(newcomer, MsgCreateIdentity(newcomer.public_key), sequence=1)
    assert_refused(runner, cast, raw, path, SequenceFutureError, newcomer=True)


def test_new_account_creates_identity_then_uses_sequence_one(
        chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    newcomer = cast.newcomer
    assert_ok(runner.check(runner.tx(newcomer, MsgCreateIdentity(newcomer.public_key),
                                     sequence=0)))
    (result,) = runner.run(runner.tx(newcomer, MsgCreateIdentity(newcomer.public_key)))
    assert_ok(result)
    account = runner.account(newcomer)
    assert account is not None and account["sequence"] == 1
    # It may now receive coins and send them back with sequence 1.
    assert_ok(runner.run(runner.tx(cast.citizens[0], MsgTransfer(newcomer.did, DENOM, 50)))[0])
    assert_ok(runner.run(runner.tx(newcomer, MsgTransfer(cast.citizens[0].did, DENOM, 20)))[0])
    assert runner.balance(newcomer) == 30


def test_check_tx_sees_earlier_txs_of_the_same_sender(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    sender = cast.citizens[0]
    first = runner.tx(sender, transfer_msg(cast, 1))
    second = runner.tx(sender, transfer_msg(cast, 2))
    assert_error(runner.check(second), SequenceFutureError)
    assert_ok(runner.check(first))
    assert_ok(runner.check(second))
    assert_error(runner.check(first), SequenceStaleError)
