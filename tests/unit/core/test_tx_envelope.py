"""Transaction envelope: build, sign, decode, and every malformed envelope refused exactly."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core import codec
from citychain.core.crypto import PrivateKey, domain_bytes, verify_signature
from citychain.core.errors import (
    ChainError,
    DecodeError,
    InvalidMessageError,
    InvalidTxError,
    NonCanonicalError,
    TxTooLargeError,
    UnknownMessageError,
)
from citychain.core.messages import (
    MessageRegistry,
    Msg,
    validate_address_field,
    validate_positive_amount,
)
from citychain.core.tx import (
    MAX_MEMO,
    MAX_MESSAGES,
    MAX_TX_BYTES,
    TX_DOMAIN,
    TxBody,
    build_tx,
    check_sender_key,
    decode_tx,
    sign_tx,
    tx_hash,
)


@dataclass(frozen=True)
class MsgSend(Msg):
    TYPE = "citychain.test.v1.MsgSend"

    to: str
    amount: int

    def validate_basic(self) -> None:
        validate_address_field(self.to, "to")
        validate_positive_amount(self.amount, "amount")


@dataclass(frozen=True)
class MsgTag(Msg):
    TYPE = "citychain.test.v1.MsgTag"

    labels: tuple[str, ...]
    blob: bytes
    public: bool


REGISTRY = MessageRegistry()
REGISTRY.register(MsgSend)
REGISTRY.register(MsgTag)

KEY = PrivateKey.from_secret("tx-tests")
TO = PrivateKey.from_secret("tx-tests-recipient").address
CHAIN = "city-test-1"
SEND = MsgSend(TO, 1500)


def envelope(**body_changes: Any) -> dict[str, Any]:
    """A valid transaction as plain data, with ``body`` fields replaced by ``body_changes``."""
    body = TxBody(CHAIN, KEY.address, 7, (SEND,), "lunch").to_value()
    body.update(body_changes)
    return {"body": body, "pubkey": KEY.public_key, "signature": bytes(64)}


def refused(value: Any, max_bytes: int = MAX_TX_BYTES) -> ChainError:
    with pytest.raises(ChainError) as info:
        decode_tx(codec.encode(value), REGISTRY, max_bytes)
    return info.value


# ------------------------------------------------------------------------------------ valid

def test_build_and_decode_round_trip() -> None:
    raw = build_tx(KEY, CHAIN, 7, SEND, MsgTag(("a", "b"), b"\x01", True), memo="lunch")
    tx = decode_tx(raw, REGISTRY)
    assert tx.body == TxBody(CHAIN, KEY.address, 7, (SEND, MsgTag(("a", "b"), b"\x01", True)),
                             "lunch")
    assert tx.sender == KEY.address
    assert tx.messages == tx.body.messages
    assert tx.pubkey == KEY.public_key
    assert tx.raw == raw
    assert tx.hash == tx_hash(raw) == hashlib.sha256(raw).digest()
    assert tx.sign_bytes == tx.body.sign_bytes()
    assert verify_signature(tx.pubkey, tx.sign_bytes, tx.signature)
    assert check_sender_key(tx)


def test_wire_form() -> None:
    body = TxBody(CHAIN, KEY.address, 0, (SEND,))
    raw = sign_tx(KEY, body)
    assert codec.decode(raw) == {
        "body": {"chain_id": CHAIN, "sender": KEY.address, "sequence": 0, "memo": "",
                 "messages": [{"type": "citychain.test.v1.MsgSend",
                               "value": {"to": TO, "amount": 1500}}]},
        "pubkey": KEY.public_key,
        "signature": KEY.sign(body.sign_bytes()),
    }
    assert body.sign_bytes() == domain_bytes(TX_DOMAIN, CHAIN, codec.encode(body.to_value()))
    assert body.sign_bytes().startswith(b"citychain/tx/v1\x00\x0bcity-test-1\xa5")


def test_signature_binds_chain_and_body() -> None:
    tx = decode_tx(build_tx(KEY, CHAIN, 7, SEND), REGISTRY)
    other_chain = TxBody("city-test-2", KEY.address, 7, (SEND,))
    other_sequence = TxBody(CHAIN, KEY.address, 8, (SEND,))
    for body in (other_chain, other_sequence):
        assert not verify_signature(tx.pubkey, body.sign_bytes(), tx.signature)


def test_sign_for_a_rotated_account_with_another_key() -> None:
    # After a rotation the account's address no longer derives from its key; signing must work
    # and the envelope must say so (the ante handler then checks the account's current key).
    other = PrivateKey.from_secret("someone-else")
    tx = decode_tx(sign_tx(other, TxBody(CHAIN, KEY.address, 0, (SEND,))), REGISTRY)
    assert tx.sender == KEY.address and tx.pubkey == other.public_key
    assert verify_signature(other.public_key, tx.sign_bytes, tx.signature)
    assert not check_sender_key(tx)


def test_check_sender_key_detects_a_foreign_pubkey() -> None:
    value = envelope()
    value["pubkey"] = PrivateKey.from_secret("someone-else").public_key
    assert not check_sender_key(decode_tx(codec.encode(value), REGISTRY))


def test_limits_at_their_edge_are_accepted() -> None:
    value = envelope(memo="m" * MAX_MEMO, sequence=2**63 - 1, chain_id="c" * 64,
                     messages=[{"type": MsgSend.TYPE, "value": SEND.to_value()}] * MAX_MESSAGES)
    tx = decode_tx(codec.encode(value), REGISTRY)
    assert len(tx.messages) == MAX_MESSAGES
    raw = codec.encode(envelope())
    assert decode_tx(raw, REGISTRY, max_bytes=len(raw)).raw == raw


# ------------------------------------------------------------------------------------ properties

ADDRESSES = st.binary(min_size=20, max_size=20).map(bytes.hex)
MESSAGES = st.one_of(
    st.builds(MsgSend, to=ADDRESSES, amount=st.integers(min_value=1, max_value=2**63 - 1)),
    st.builds(MsgTag, labels=st.lists(st.text(max_size=8), max_size=4).map(tuple),
              blob=st.binary(max_size=300), public=st.booleans()),
)
CHAIN_IDS = st.text(min_size=1, max_size=64).filter(lambda text: len(text.encode()) <= 64)


@settings(max_examples=150, deadline=None)
@given(CHAIN_IDS, st.integers(min_value=0, max_value=2**63 - 1),
       st.lists(MESSAGES, min_size=1, max_size=5), st.text(max_size=MAX_MEMO))
def test_sign_bytes_slice_equals_reencoded_body(chain_id: str, sequence: int,
                                                messages: list[Msg], memo: str) -> None:
    # decode_tx takes the body's bytes as a slice of the wire bytes instead of encoding the
    # body again; for every canonical tx that slice must be exactly the body's encoding.
    body = TxBody(chain_id, KEY.address, sequence, tuple(messages), memo)
    tx = decode_tx(sign_tx(KEY, body), REGISTRY)
    assert tx.body == body
    assert tx.sign_bytes == domain_bytes(TX_DOMAIN, chain_id, codec.encode(body.to_value()))
    assert tx.sign_bytes == body.sign_bytes()
    assert verify_signature(tx.pubkey, tx.sign_bytes, tx.signature)


# ------------------------------------------------------------------------------------ envelope

def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: item for name, item in mapping.items() if name != key}


ENVELOPE_CASES = [
    # (id, value, field, message fragment)
    ("not-a-map", [1, 2], "tx", "transaction must be a map with exactly body, pubkey, signature"),
    ("missing-signature", without(envelope(), "signature"), "tx", "exactly body, pubkey"),
    ("missing-body", without(envelope(), "body"), "tx", "exactly body, pubkey"),
    ("extra-key", {**envelope(), "fee": 1}, "tx", "exactly body, pubkey, signature"),
    ("pubkey-not-bytes", {**envelope(), "pubkey": KEY.public_key.hex()}, "pubkey",
     "pubkey must be 32 bytes"),
    ("pubkey-short", {**envelope(), "pubkey": KEY.public_key[:31]}, "pubkey", "must be 32 bytes"),
    ("pubkey-long", {**envelope(), "pubkey": KEY.public_key + b"\x00"}, "pubkey", "32 bytes"),
    ("signature-short", {**envelope(), "signature": bytes(63)}, "signature",
     "signature must be 64 bytes"),
    ("signature-not-bytes", {**envelope(), "signature": None}, "signature", "64 bytes"),
    ("body-not-a-map", {**envelope(), "body": []}, "body",
     "body must be a map with exactly chain_id, memo, messages, sender, sequence"),
    ("body-missing-memo", {**envelope(), "body": without(envelope()["body"], "memo")}, "body",
     "exactly chain_id, memo"),
    ("body-extra-key", envelope(fee=10), "body", "exactly chain_id, memo"),
    ("chain-id-empty", envelope(chain_id=""), "body.chain_id", "chain_id must be a string of 1"),
    ("chain-id-not-text", envelope(chain_id=b"city"), "body.chain_id", "chain_id must be"),
    ("chain-id-too-long", envelope(chain_id="c" * 65), "body.chain_id", "1 to 64 bytes"),
    # 64 characters but 256 bytes: would not fit the signed bytes' one-byte length prefix
    ("chain-id-too-many-bytes", envelope(chain_id="\U0001f3d9" * 64), "body.chain_id",
     "1 to 64 bytes"),
    ("sender-upper", envelope(sender=KEY.address.upper()), "body.sender",
     "sender must be an address"),
    ("sender-newline", envelope(sender=KEY.address + "\n"), "body.sender", "must be an address"),
    ("sender-short", envelope(sender=KEY.address[:-2]), "body.sender", "must be an address"),
    ("sender-did", envelope(sender=KEY.did), "body.sender", "must be an address"),
    ("sender-bytes", envelope(sender=bytes.fromhex(KEY.address)), "body.sender", "an address"),
    ("sequence-negative", envelope(sequence=-1), "body.sequence",
     "sequence must be a non-negative integer"),
    ("sequence-too-big", envelope(sequence=2**63), "body.sequence", "non-negative integer"),
    ("sequence-bool", envelope(sequence=True), "body.sequence", "non-negative integer"),
    ("sequence-text", envelope(sequence="7"), "body.sequence", "non-negative integer"),
    ("memo-too-long", envelope(memo="m" * (MAX_MEMO + 1)), "body.memo",
     f"memo must be a string of at most {MAX_MEMO} characters"),
    ("memo-not-text", envelope(memo=None), "body.memo", "memo must be a string"),
    ("messages-empty", envelope(messages=[]), "body.messages",
     f"messages must be a list of 1 to {MAX_MESSAGES} messages"),
    ("messages-too-many",
     envelope(messages=[{"type": MsgSend.TYPE, "value": SEND.to_value()}] * (MAX_MESSAGES + 1)),
     "body.messages", "1 to 64 messages"),
    ("messages-not-a-list", envelope(messages={"type": MsgSend.TYPE}), "body.messages",
     "must be a list"),
    ("message-not-a-map", envelope(messages=[[MsgSend.TYPE, SEND.to_value()]]),
     "body.messages[0]", "each message must be a map with exactly type and value"),
    ("message-extra-key",
     envelope(messages=[{"type": MsgSend.TYPE, "value": SEND.to_value(), "gas": 1}]),
     "body.messages[0]", "exactly type and value"),
    ("message-missing-value", envelope(messages=[{"type": MsgSend.TYPE}]), "body.messages[0]",
     "exactly type and value"),
    ("second-message-not-a-map",
     envelope(messages=[{"type": MsgSend.TYPE, "value": SEND.to_value()}, None]),
     "body.messages[1]", "exactly type and value"),
]


@pytest.mark.parametrize(("value", "field", "fragment"), [case[1:] for case in ENVELOPE_CASES],
                         ids=[case[0] for case in ENVELOPE_CASES])
def test_invalid_envelope(value: Any, field: str, fragment: str) -> None:
    error = refused(value)
    assert type(error) is InvalidTxError
    assert (error.codespace, error.code) == ("core", 5)
    assert error.field == field
    assert fragment in error.message


@pytest.mark.parametrize(("type_name", "shown"), [
    ("citychain.test.v1.MsgNope", "'citychain.test.v1.MsgNope'"),
    ("citychain.test.v2.MsgSend", "'citychain.test.v2.MsgSend'"),
    ("", "''"),
    (7, "7"),
    (None, "None"),
])
def test_invalid_unknown_message_type(type_name: Any, shown: str) -> None:
    error = refused(envelope(messages=[{"type": type_name, "value": {}}]))
    assert type(error) is UnknownMessageError
    assert (error.codespace, error.code) == ("core", 6)
    assert error.field == "body.messages[0].type"
    assert error.message == f"unknown message type {shown}"


def test_invalid_unknown_message_type_is_cut_short_in_the_message() -> None:
    error = refused(envelope(messages=[{"type": "x" * 5000, "value": {}}]))
    assert type(error) is UnknownMessageError
    assert error.message == "unknown message type '" + "x" * 99 + "..."


def test_invalid_unknown_message_type_in_second_position() -> None:
    error = refused(envelope(messages=[{"type": MsgSend.TYPE, "value": SEND.to_value()},
                                       {"type": "citychain.test.v1.MsgNope", "value": {}}]))
    assert type(error) is UnknownMessageError
    assert error.field == "body.messages[1].type"


MESSAGE_CASES = [
    # (id, message value, field, message fragment)
    ("value-not-a-map", [TO, 1], "body.messages[0].value", "message value must be a map"),
    ("missing-field", {"to": TO}, "body.messages[0].value.amount", "missing field 'amount'"),
    ("unknown-field", {"to": TO, "amount": 1, "fee": 1}, "body.messages[0].value.fee",
     "unknown field 'fee'"),
    ("wrong-type", {"to": TO, "amount": "1"}, "body.messages[0].value.amount",
     "field 'amount' must be int, got str"),
    ("validate-basic-amount", {"to": TO, "amount": 0}, "body.messages[0].value.amount",
     "amount must be a positive integer"),
    ("validate-basic-address", {"to": TO.upper(), "amount": 1}, "body.messages[0].value.to",
     "to must be an address"),
]


@pytest.mark.parametrize(("value", "field", "fragment"), [case[1:] for case in MESSAGE_CASES],
                         ids=[case[0] for case in MESSAGE_CASES])
def test_invalid_message_fields(value: Any, field: str, fragment: str) -> None:
    error = refused(envelope(messages=[{"type": MsgSend.TYPE, "value": value}]))
    assert type(error) is InvalidMessageError
    assert (error.codespace, error.code) == ("core", 7)
    assert error.field == field
    assert fragment in error.message


def test_invalid_message_field_in_second_message() -> None:
    error = refused(envelope(messages=[
        {"type": MsgSend.TYPE, "value": SEND.to_value()},
        {"type": MsgTag.TYPE, "value": {"labels": ["a", 1], "blob": b"", "public": False}},
    ]))
    assert type(error) is InvalidMessageError
    assert error.field == "body.messages[1].value.labels"


def test_invalid_too_large() -> None:
    raw = codec.encode(envelope())
    with pytest.raises(TxTooLargeError) as info:
        decode_tx(raw, REGISTRY, max_bytes=len(raw) - 1)
    error = info.value
    assert (error.codespace, error.code, error.field) == ("core", 4, "tx")
    assert error.message == f"transaction is {len(raw)} bytes, the limit is {len(raw) - 1}"
    assert error.details == {"limit": len(raw) - 1, "size": len(raw)}


def test_invalid_too_large_checked_before_decoding() -> None:
    # size is refused first, even for bytes that would not decode at all
    with pytest.raises(TxTooLargeError):
        decode_tx(b"\xff" * (MAX_TX_BYTES + 1), REGISTRY)


def test_invalid_default_limit() -> None:
    big = codec.encode(envelope(messages=[{"type": MsgTag.TYPE, "value": {
        "labels": [], "blob": bytes(MAX_TX_BYTES), "public": False}}]))
    with pytest.raises(TxTooLargeError, match=f"the limit is {MAX_TX_BYTES}"):
        decode_tx(big, REGISTRY)


def test_invalid_not_canonical() -> None:
    raw = codec.encode(envelope())
    assert raw[0] == 0xA3
    with pytest.raises(NonCanonicalError, match="indefinite-length map at byte 0"):
        decode_tx(b"\xbf" + raw[1:] + b"\xff", REGISTRY)


def test_invalid_trailing_bytes() -> None:
    with pytest.raises(DecodeError, match="1 trailing byte"):
        decode_tx(codec.encode(envelope()) + b"\x00", REGISTRY)


def test_invalid_float_in_message() -> None:
    raw = codec.encode(envelope(messages=[{"type": MsgSend.TYPE, "value": {"to": TO,
                                                                             "amount": 1}}]))
    at = raw.index(b"\x66amount") + 7
    assert raw[at] == 0x01
    with pytest.raises(DecodeError, match=f"half-precision float at byte {at}"):
        decode_tx(raw[:at] + b"\xf9\x3c\x00" + raw[at + 1:], REGISTRY)
