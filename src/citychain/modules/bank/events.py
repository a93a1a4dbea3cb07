"""Bank events: one constructor per past-tense event type; accounts appear as DIDs."""

from __future__ import annotations

from citychain.core.events import Event

DENOM_CREATED = "denom_created"
COINS_MINTED = "coins_minted"
COINS_BURNED = "coins_burned"
COINS_TRANSFERRED = "coins_transferred"


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
