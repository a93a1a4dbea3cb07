"""The bank module's facade: the only surface other modules call.

Functions take addresses (40 hex characters), not DIDs. Mutators return the event that
describes what they did; the calling handler decides to emit it (``ctx.emit(bank.transfer(...))``).
Role checks are the caller's business: a module moving coins on a user's behalf has already
decided that the user may.

An escrow is a balance held by the bank for another module, named by the owning module's name
(``"contracts"``) and an id of its choosing (``"c/17"``); escrowed coins leave the holder's
balance but stay in the supply. A malformed owner or escrow id (empty, over 64 bytes, not
printable ASCII) is a caller's programming error and raises ValueError.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from citychain.core.events import Event
from citychain.core.state import ReadView, StateView
from citychain.modules.bank import handlers, state
from citychain.modules.bank.types import MAX_AMOUNT, is_denom, validate_escrow_name

__all__ = [
    "MAX_AMOUNT",
    "burn",
    "check_supply_invariant",
    "denom_exists",
    "deposit_to_escrow",
    "get_balance",
    "get_escrow_balance",
    "get_supply",
    "iter_escrow_balances",
    "mint",
    "pay_from_escrow",
    "transfer",
]


def get_balance(view: ReadView, address: str, denom: str) -> int:
    """Return the balance of ``address`` in ``denom`` (0 if none or unknown denom)."""
    return state.get_balance(view, address, denom) if is_denom(denom) else 0


def get_supply(view: ReadView, denom: str) -> int:
    """Return the total supply of ``denom`` (0 if none or unknown denom)."""
    return state.get_supply(view, denom) if is_denom(denom) else 0


def denom_exists(view: ReadView, denom: str) -> bool:
    """Return whether ``denom`` is a created denomination."""
    return is_denom(denom) and state.has_denom(view, denom)


def get_escrow_balance(view: ReadView, owner: str, escrow_id: str, denom: str) -> int:
    """Return what escrow (owner, escrow_id) holds in ``denom`` (0 if none or unknown denom).

    Raises:
        ValueError: ``owner`` or ``escrow_id`` is malformed.
    """
    validate_escrow_name(owner, "owner")
    validate_escrow_name(escrow_id, "escrow_id")
    return state.get_escrow_balance(view, owner, escrow_id, denom) if is_denom(denom) else 0


def iter_escrow_balances(view: ReadView, owner: str, escrow_id: str) -> Iterator[tuple[str, int]]:
    """Yield (denom, amount) for every non-zero balance of escrow (owner, escrow_id), in key
    order (shorter denom ids first, then alphabetical).

    Raises:
        ValueError: ``owner`` or ``escrow_id`` is malformed (raised by this call, before
            iteration).
    """
    validate_escrow_name(owner, "owner")
    validate_escrow_name(escrow_id, "escrow_id")
    return state.iter_escrow_balances(view, owner, escrow_id)


def deposit_to_escrow(view: StateView, holder: str, owner: str, escrow_id: str, denom: str,
                      amount: int) -> Event:
    """Move coins from address ``holder`` into escrow (owner, escrow_id) under the sender-side
    rules of a transfer; return ``coins_escrowed``.

    Raises:
        ValueError: ``owner`` or ``escrow_id`` is malformed.
        AmountInvalidError, TransfersDisabledError, DenomNotFoundError, InsufficientFundsError.
    """
    return handlers.deposit_to_escrow(view, holder, owner, escrow_id, denom, amount)


def pay_from_escrow(view: StateView, owner: str, escrow_id: str, recipient: str, denom: str,
                    amount: int) -> Event:
    """Move coins from escrow (owner, escrow_id) to address ``recipient`` under the
    recipient-side rules of a transfer; return ``escrow_paid``.

    Raises:
        ValueError: ``owner`` or ``escrow_id`` is malformed.
        AmountInvalidError, DenomNotFoundError, RecipientNotFoundError, RecipientSuspendedError,
        EscrowInsufficientError.
    """
    return handlers.pay_from_escrow(view, owner, escrow_id, recipient, denom, amount)


def transfer(view: StateView, sender: str, recipient: str, denom: str, amount: int) -> Event:
    """Move coins between addresses under MsgTransfer's rules; return ``coins_transferred``.

    Raises:
        AmountInvalidError, TransfersDisabledError, DenomNotFoundError, RecipientNotFoundError,
        RecipientSuspendedError, InsufficientFundsError.
    """
    return handlers.transfer_coins(view, sender, recipient, denom, amount)


def mint(view: StateView, recipient: str, denom: str, amount: int) -> Event:
    """Create coins in ``recipient``'s balance; return ``coins_minted``.

    Raises:
        AmountInvalidError, DenomNotFoundError, RecipientNotFoundError, RecipientSuspendedError,
        SupplyOverflowError.
    """
    return handlers.mint_coins(view, recipient, denom, amount)


def burn(view: StateView, holder: str, denom: str, amount: int) -> Event:
    """Destroy coins from ``holder``'s balance; return ``coins_burned``.

    Raises:
        AmountInvalidError, DenomNotFoundError, InsufficientFundsError.
    """
    return handlers.burn_coins(view, holder, denom, amount)


def check_supply_invariant(view: ReadView) -> list[str]:
    """Return the problems found (empty when sound): for every denom the balances and escrow
    balances sum to the supply, no amount is zero, negative or too large, and every amount's
    denom exists.

    Scans all balances and escrows: for audits and tests, never for transactions.
    """
    problems: list[str] = []
    totals: dict[str, int] = defaultdict(int)
    for address, denom, amount in state.iter_all_balances(view):
        if not 0 < amount <= MAX_AMOUNT:
            problems.append(f"balance of {address} in {denom} is {amount}, outside 1..2**63-1")
        if not state.has_denom(view, denom):
            problems.append(f"balance of {address} is in unknown denom {denom}")
        totals[denom] += amount
    for owner, escrow_id, denom, amount in state.iter_all_escrow_balances(view):
        if not 0 < amount <= MAX_AMOUNT:
            problems.append(f"escrow {owner}/{escrow_id} in {denom} is {amount}, "
                            "outside 1..2**63-1")
        if not state.has_denom(view, denom):
            problems.append(f"escrow {owner}/{escrow_id} is in unknown denom {denom}")
        totals[denom] += amount
    supplies = dict(state.iter_supplies(view))
    for denom in sorted(set(totals) | set(supplies)):
        supply = supplies.get(denom, 0)
        if not 0 <= supply <= MAX_AMOUNT:
            problems.append(f"supply of {denom} is {supply}, outside 0..2**63-1")
        if denom in supplies and supply == 0:
            problems.append(f"supply of {denom} is stored as zero")
        if denom in supplies and not state.has_denom(view, denom):
            problems.append(f"supply recorded for unknown denom {denom}")
        if totals.get(denom, 0) != supply:  # balances plus escrows
            problems.append(f"balances of {denom} sum to {totals.get(denom, 0)}, "
                            f"supply is {supply}")
    return problems
