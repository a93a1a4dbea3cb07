"""The transaction envelope: chain id, sender, sequence, typed messages, public key, signature.

Wire form (canonical encoding, see core/codec.py)::

    {"body": {"chain_id": str, "sender": address, "sequence": int, "memo": str,
              "messages": [{"type": str, "value": {...}}, ...]},
     "pubkey": bytes(32), "signature": bytes(64)}

The signature covers ``domain_bytes("citychain/tx/v1", chain_id, encode(body))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core import codec
from citychain.core.crypto import (
    PUBKEY_SIZE,
    SIGNATURE_SIZE,
    PrivateKey,
    address_from_pubkey,
    domain_bytes,
    is_address,
)
from citychain.core.errors import (
    ChainError,
    InvalidTxError,
    TxTooLargeError,
    UnknownMessageError,
)
from citychain.core.hashing import sha256
from citychain.core.messages import MessageRegistry, Msg

TX_DOMAIN = "citychain/tx/v1"
MAX_TX_BYTES = 64 * 1024
MAX_MESSAGES = 64
MAX_MEMO = 256


@dataclass(frozen=True, slots=True)
class TxBody:
    chain_id: str
    sender: str
    sequence: int
    messages: tuple[Msg, ...]
    memo: str = ""

    def to_value(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "sender": self.sender,
            "sequence": self.sequence,
            "memo": self.memo,
            "messages": [{"type": m.TYPE, "value": m.to_value()} for m in self.messages],
        }

    def sign_bytes(self) -> bytes:
        """Return the exact bytes the sender signs."""
        return domain_bytes(TX_DOMAIN, self.chain_id, codec.encode(self.to_value()))


@dataclass(frozen=True, slots=True)
class Tx:
    """A decoded, not yet verified transaction. ``raw`` is the exact wire bytes."""

    body: TxBody
    pubkey: bytes
    signature: bytes
    raw: bytes
    hash: bytes
    sign_bytes: bytes

    @property
    def sender(self) -> str:
        return self.body.sender

    @property
    def messages(self) -> tuple[Msg, ...]:
        return self.body.messages


def tx_hash(raw: bytes) -> bytes:
    """Return the transaction hash: SHA-256 of its wire bytes (as CometBFT computes it)."""
    return sha256(raw)


def sign_tx(key: PrivateKey, body: TxBody) -> bytes:
    """Sign ``body`` with ``key`` and return the wire bytes.

    The sender need not be ``key``'s own address: after a key rotation an account signs with a
    key it was not derived from (the ante handler checks the account's current key).
    """
    value = {
        "body": body.to_value(),
        "pubkey": key.public_key,
        "signature": key.sign(body.sign_bytes()),
    }
    return codec.encode(value)


def build_tx(key: PrivateKey, chain_id: str, sequence: int, *messages: Msg,
             memo: str = "", sender: str | None = None) -> bytes:
    """Convenience: build, sign and encode a transaction (sender: the key's address unless
    given, e.g. for an account whose key was rotated)."""
    body = TxBody(chain_id, sender or key.address, sequence, tuple(messages), memo)
    return sign_tx(key, body)


def decode_tx(raw: bytes, registry: MessageRegistry, max_bytes: int = MAX_TX_BYTES) -> Tx:
    """Decode and statelessly validate a transaction (no signature or state checks).

    Raises:
        TxTooLargeError, DecodeError, NonCanonicalError, InvalidTxError,
        UnknownMessageError, InvalidMessageError.
    """
    size = len(raw)
    if size > max_bytes:
        raise TxTooLargeError(f"transaction is {size} bytes, the limit is {max_bytes}",
                              field="tx", limit=max_bytes, size=size)
    value = codec.decode(raw)
    if type(value) is not dict or value.keys() != _TX_KEYS:
        raise InvalidTxError("transaction must be a map with exactly body, pubkey, signature",
                             field="tx")
    pubkey = value["pubkey"]
    if type(pubkey) is not bytes or len(pubkey) != PUBKEY_SIZE:
        raise InvalidTxError(f"pubkey must be {PUBKEY_SIZE} bytes", field="pubkey")
    signature = value["signature"]
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        raise InvalidTxError(f"signature must be {SIGNATURE_SIZE} bytes", field="signature")
    body = _decode_body(value["body"], registry)
    # The canonical map puts "body" first and the two fixed-size fields last, so the body's
    # canonical encoding is the slice between them; no need to encode it again.
    body_bytes = raw[_BODY_START:size - _TAIL_SIZE]
    return Tx(body, pubkey, signature, raw, tx_hash(raw),
              domain_bytes(TX_DOMAIN, body.chain_id, body_bytes))


# a3 | 64 "body" ... | 66 "pubkey" 58 20 <32 bytes> | 69 "signature" 58 40 <64 bytes>
_BODY_START = 1 + 1 + 4
_TAIL_SIZE = (1 + 6 + 2 + PUBKEY_SIZE) + (1 + 9 + 2 + SIGNATURE_SIZE)
_TX_KEYS = frozenset(["body", "pubkey", "signature"])
_BODY_KEYS = frozenset(["chain_id", "memo", "messages", "sender", "sequence"])
_MESSAGE_KEYS = frozenset(["type", "value"])
_MAX_CHAIN_ID_BYTES = 64


def _decode_body(value: Any, registry: MessageRegistry) -> TxBody:
    if type(value) is not dict or value.keys() != _BODY_KEYS:
        raise InvalidTxError(f"body must be a map with exactly {', '.join(sorted(_BODY_KEYS))}",
                             field="body")
    chain_id = value["chain_id"]
    # Bounded in bytes, not characters: the chain id is length-prefixed by one byte in the
    # signed bytes (see crypto.domain_bytes), so it must never exceed 255 bytes.
    if type(chain_id) is not str or not 1 <= len(chain_id.encode()) <= _MAX_CHAIN_ID_BYTES:
        raise InvalidTxError(f"chain_id must be a string of 1 to {_MAX_CHAIN_ID_BYTES} bytes "
                             "(UTF-8)", field="body.chain_id")
    sender = value["sender"]
    if type(sender) is not str or not is_address(sender):
        raise InvalidTxError("sender must be an address (40 lowercase hex characters)",
                             field="body.sender")
    sequence = value["sequence"]
    if type(sequence) is not int or not 0 <= sequence < 2**63:
        raise InvalidTxError("sequence must be a non-negative integer", field="body.sequence")
    memo = value["memo"]
    if type(memo) is not str or len(memo) > MAX_MEMO:
        raise InvalidTxError(f"memo must be a string of at most {MAX_MEMO} characters",
                             field="body.memo")
    raw_messages = value["messages"]
    if type(raw_messages) is not list or not 1 <= len(raw_messages) <= MAX_MESSAGES:
        raise InvalidTxError(f"messages must be a list of 1 to {MAX_MESSAGES} messages",
                             field="body.messages")
    messages = []
    for index, item in enumerate(raw_messages):
        if type(item) is not dict or item.keys() != _MESSAGE_KEYS:
            raise InvalidTxError("each message must be a map with exactly type and value",
                                 field=f"body.messages[{index}]")
        type_name = item["type"]
        cls = registry.get(type_name) if type(type_name) is str else None
        if cls is None:
            shown = repr(type_name)
            if len(shown) > 100:  # an attacker's type name could be 64 KiB
                shown = shown[:100] + "..."
            raise UnknownMessageError(f"unknown message type {shown}",
                                      field=f"body.messages[{index}].type")
        try:
            msg = cls.from_value(item["value"])
            msg.validate_basic()
        except ChainError as exc:
            where = f"body.messages[{index}].value"
            exc.field = f"{where}.{exc.field}" if exc.field else where
            raise
        messages.append(msg)
    return TxBody(chain_id, sender, sequence, tuple(messages), memo)


def check_sender_key(tx: Tx) -> bool:
    """Return whether the envelope's pubkey derives the sender address (first-use accounts)."""
    return address_from_pubkey(tx.pubkey) == tx.sender
