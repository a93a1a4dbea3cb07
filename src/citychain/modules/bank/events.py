"""Bank events: one constructor per past-tense event type; accounts appear as DIDs."""

from __future__ import annotations

from citychain.core.events import Event

DENOM_CREATED = "denom_created"
COINS_MINTED = "coins_minted"
COINS_BURNED = "coins_burned"
COINS_TRANSFERRED = "coins_transferred"
COINS_ESCROWED = "coins_escrowed"
ESCROW_PAID = "escrow_paid"
EVENT_TYPES: frozenset[str] = frozenset({DENOM_CREATED, COINS_MINTED, COINS_BURNED,
                                         COINS_TRANSFERRED, COINS_ESCROWED, ESCROW_PAID})


def denom_created(denom: str, display_name: str, decimals: int, created_by: str) -> Event:
    return Event.of(DENOM_CREATED, denom=denom, display_name=display_name, decimals=decimals,
                    created_by=created_by)


def coins_minted(denom: str, amount: int, recipient: str) -> Event:
    return Event.of(COINS_MINTED, denom=denom, amount=amount, recipient=recipient)


def coins_burned(denom: str, amount: int, holder: str) -> Event:
    return Event.of(COINS_BURNED, denom=denom, amount=amount, holder=holder)


def coins_transferred(denom: str, amount: int, sender: str, recipient: str) -> Event:
    return Event.of(COINS_TRANSFERRED, denom=denom, amount=amount, sender=sender,
                    recipient=recipient)


def coins_escrowed(holder: str, owner: str, escrow_id: str, denom: str, amount: int) -> Event:
    return Event.of(COINS_ESCROWED, holder=holder, owner=owner, escrow_id=escrow_id, denom=denom,
                    amount=amount)


def escrow_paid(owner: str, escrow_id: str, recipient: str, denom: str, amount: int) -> Event:
    return Event.of(ESCROW_PAID, owner=owner, escrow_id=escrow_id, recipient=recipient,
                    denom=denom, amount=amount)
