"""Ante checks: what every transaction must pass before its messages run.

Signature verification depends only on the transaction bytes, so its result is cached by tx hash
(check_tx pays for it, execution reuses it). Everything that depends on state — chain id, the
account, its key, suspension, sequence, roles — is checked again at execution.
"""

from __future__ import annotations

from collections import OrderedDict

from citychain.core.crypto import address_from_pubkey, verify_signature
from citychain.core.errors import (
    AccountSuspendedError,
    PubkeyMismatchError,
    RoleRequiredError,
    SequenceFutureError,
    SequenceStaleError,
    SignatureInvalidError,
    UnknownAccountError,
    WrongChainIdError,
)
from citychain.core.messages import MessageRegistry
from citychain.core.module import AccountInfo, AccountKeeper
from citychain.core.state import ReadView
from citychain.core.tx import MAX_TX_BYTES, Tx, decode_tx


class VerifiedTxCache:
    """Decoded transactions whose signature verified, keyed by tx hash (bounded, LRU)."""

    def __init__(self, registry: MessageRegistry, capacity: int = 100_000,
                 max_tx_bytes: int = MAX_TX_BYTES) -> None:
        self._registry = registry
        self._capacity = capacity
        self._max_tx_bytes = max_tx_bytes
        self._items: OrderedDict[bytes, Tx] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def decode_and_verify(self, raw: bytes, tx_hash: bytes | None = None) -> Tx:
        """Return the decoded transaction after checking its signature (cached).

        Raises:
            TxTooLargeError, DecodeError, NonCanonicalError, InvalidTxError,
            UnknownMessageError, InvalidMessageError, SignatureInvalidError.
        """
        if tx_hash is not None:
            cached = self._items.get(tx_hash)
            if cached is not None and cached.raw == raw:
                self.hits += 1
                self._items.move_to_end(tx_hash)
                return cached
        self.misses += 1
        tx = decode_tx(raw, self._registry, self._max_tx_bytes)
        if not verify_signature(tx.pubkey, tx.sign_bytes, tx.signature):
            raise SignatureInvalidError("signature does not verify against the transaction's "
                                        "pubkey and sign bytes", field="signature")
        self._items[tx.hash] = tx
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return tx

    def forget(self, tx_hash: bytes) -> None:
        self._items.pop(tx_hash, None)


def check_ante(view: ReadView, tx: Tx, chain_id: str, keeper: AccountKeeper) -> AccountInfo | None:
    """Check a verified transaction against state; return the sender's account (None: new account).

    Raises:
        WrongChainIdError, UnknownAccountError, PubkeyMismatchError, AccountSuspendedError,
        SequenceStaleError, SequenceFutureError, RoleRequiredError.
    """
    body = tx.body
    if body.chain_id != chain_id:
        raise WrongChainIdError(f"transaction is for chain {body.chain_id!r}, this is {chain_id!r}",
                                field="body.chain_id", expected=chain_id, found=body.chain_id)
    account = keeper.get_account(view, body.sender)
    if account is None:
        _check_new_account(tx)
        return None
    if account.pubkey != tx.pubkey:
        raise PubkeyMismatchError(f"pubkey is not the current key of account {body.sender}",
                                  field="pubkey")
    if account.suspended:
        raise AccountSuspendedError(f"account {body.sender} is suspended", field="body.sender")
    if body.sequence < account.sequence:
        raise SequenceStaleError(
            f"sequence {body.sequence} was already used; the account expects {account.sequence}",
            field="body.sequence", expected=account.sequence, found=body.sequence)
    if body.sequence > account.sequence:
        raise SequenceFutureError(
            f"sequence {body.sequence} is ahead; the account expects {account.sequence}",
            field="body.sequence", expected=account.sequence, found=body.sequence)
    for index, msg in enumerate(tx.messages):
        role = msg.REQUIRED_ROLE
        if role is not None and role not in account.roles:
            raise RoleRequiredError(f"{msg.TYPE} requires the {role} role, which {body.sender} "
                                    "does not hold", field=f"body.messages[{index}]",
                                    required=role)
    return account


def _check_new_account(tx: Tx) -> None:
    body = tx.body
    if address_from_pubkey(tx.pubkey) != body.sender:
        raise PubkeyMismatchError("pubkey does not derive the sender address", field="pubkey")
    for index, msg in enumerate(tx.messages):
        if not getattr(type(msg), "ALLOWED_FOR_NEW_ACCOUNT", False):
            raise UnknownAccountError(
                f"account {body.sender} does not exist; a new key may only send messages that "
                f"create an identity, not {msg.TYPE}", field=f"body.messages[{index}]")
    if body.sequence != 0:
        raise SequenceFutureError(f"the first transaction of a new account has sequence 0, "
                                  f"got {body.sequence}", field="body.sequence", expected=0,
                                  found=body.sequence)
