"""Bank message handlers and the coin movements they share with api.py.

Every check runs before the first write. ``transfer_coins``, ``mint_coins`` and ``burn_coins``
take addresses and return the event describing what they did; handlers emit it.
``deposit_to_escrow`` and ``pay_from_escrow`` move coins between an address and an escrow held
for another module; the supply does not change.
"""

from __future__ import annotations

from citychain.core.context import TxContext
from citychain.core.crypto import address_from_did, did_from_address
from citychain.core.errors import InvalidMessageError
from citychain.core.events import Event
from citychain.core.state import ReadView, StateView
from citychain.modules.bank import events, state
from citychain.modules.bank.errors import (
    AmountInvalidError,
    DenomAlreadyExistsError,
    DenomNotFoundError,
    EscrowInsufficientError,
    InsufficientFundsError,
    RecipientNotFoundError,
    RecipientSuspendedError,
    SupplyOverflowError,
    TransfersDisabledError,
)
from citychain.modules.bank.messages import MsgBurn, MsgCreateDenom, MsgMint, MsgTransfer
from citychain.modules.bank.types import MAX_AMOUNT, Denom, is_denom, validate_escrow_name
from citychain.modules.identity import api as identity


def handle_create_denom(view: StateView, ctx: TxContext, msg: MsgCreateDenom) -> None:
    """Create a denomination with zero supply.

    Raises:
        RoleRequiredError: the sender is not an active treasury.
        DenomAlreadyExistsError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_TREASURY)
    if state.has_denom(view, msg.denom):
        raise DenomAlreadyExistsError(f"denomination {msg.denom} already exists", field="denom")
    state.set_denom(view, Denom(msg.denom, msg.display_name, msg.decimals, ctx.sender,
                                ctx.height))
    ctx.emit(events.denom_created(msg.denom, msg.display_name, msg.decimals,
                                  did_from_address(ctx.sender)))


def handle_mint(view: StateView, ctx: TxContext, msg: MsgMint) -> None:
    """Mint new coins to an active identity.

    Raises:
        RoleRequiredError, DenomNotFoundError, RecipientNotFoundError, RecipientSuspendedError,
        SupplyOverflowError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_TREASURY)
    ctx.emit(mint_coins(view, _did_address(msg.to, "to"), msg.denom, msg.amount))


def handle_burn(view: StateView, ctx: TxContext, msg: MsgBurn) -> None:
    """Burn coins from the sender's own balance.

    Raises:
        RoleRequiredError, DenomNotFoundError, InsufficientFundsError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_TREASURY)
    ctx.emit(burn_coins(view, ctx.sender, msg.denom, msg.amount))


def handle_transfer(view: StateView, ctx: TxContext, msg: MsgTransfer) -> None:
    """Move coins from the sender to an active identity.

    Raises:
        TransfersDisabledError, DenomNotFoundError, RecipientNotFoundError,
        RecipientSuspendedError, InsufficientFundsError.
    """
    ctx.emit(transfer_coins(view, ctx.sender, _did_address(msg.to, "to"), msg.denom,
                            msg.amount))


def transfer_coins(view: StateView, sender: str, recipient: str, denom: str,
                   amount: int) -> Event:
    """Move ``amount`` of ``denom`` from ``sender`` to ``recipient``; return the event.

    A transfer to oneself checks the balance and changes nothing.

    Raises:
        AmountInvalidError, TransfersDisabledError, DenomNotFoundError, RecipientNotFoundError,
        RecipientSuspendedError, InsufficientFundsError.
    """
    _check_amount(amount)
    if not state.get_params(view).transfers_enabled:
        raise TransfersDisabledError("transfers are paused on this chain (params."
                                     "transfers_enabled is false)")
    _check_denom(view, denom)
    _check_recipient(view, recipient)
    available = state.get_balance(view, sender, denom)
    if available < amount:
        raise InsufficientFundsError(
            f"{did_from_address(sender)} has {available} {denom}, {amount} required",
            field="amount", required=amount, available=available, denom=denom)
    if recipient != sender:
        state.set_balance(view, sender, denom, available - amount)
        state.set_balance(view, recipient, denom,
                          state.get_balance(view, recipient, denom) + amount)
    return events.coins_transferred(denom, amount, did_from_address(sender),
                                    did_from_address(recipient))


def mint_coins(view: StateView, recipient: str, denom: str, amount: int) -> Event:
    """Create ``amount`` of ``denom`` in ``recipient``'s balance; return the event.

    Raises:
        AmountInvalidError, DenomNotFoundError, RecipientNotFoundError, RecipientSuspendedError,
        SupplyOverflowError.
    """
    _check_amount(amount)
    _check_denom(view, denom)
    _check_recipient(view, recipient)
    supply = state.get_supply(view, denom)
    if supply > MAX_AMOUNT - amount:
        raise SupplyOverflowError(
            f"minting {amount} {denom} would take the supply ({supply}) past {MAX_AMOUNT}",
            field="amount", supply=supply, limit=MAX_AMOUNT)
    state.set_supply(view, denom, supply + amount)
    state.set_balance(view, recipient, denom, state.get_balance(view, recipient, denom) + amount)
    return events.coins_minted(denom, amount, did_from_address(recipient))


def burn_coins(view: StateView, holder: str, denom: str, amount: int) -> Event:
    """Destroy ``amount`` of ``denom`` from ``holder``'s balance; return the event.

    Raises:
        AmountInvalidError, DenomNotFoundError, InsufficientFundsError.
    """
    _check_amount(amount)
    _check_denom(view, denom)
    available = state.get_balance(view, holder, denom)
    if available < amount:
        raise InsufficientFundsError(
            f"{did_from_address(holder)} has {available} {denom}, {amount} required to burn",
            field="amount", required=amount, available=available, denom=denom)
    state.set_balance(view, holder, denom, available - amount)
    state.set_supply(view, denom, state.get_supply(view, denom) - amount)
    return events.coins_burned(denom, amount, did_from_address(holder))


def deposit_to_escrow(view: StateView, holder: str, owner: str, escrow_id: str, denom: str,
                      amount: int) -> Event:
    """Move ``amount`` of ``denom`` from ``holder``'s balance into escrow (owner, escrow_id);
    return ``coins_escrowed``.

    Raises:
        ValueError: ``owner`` or ``escrow_id`` is malformed (a caller's programming error).
        AmountInvalidError, TransfersDisabledError, DenomNotFoundError, InsufficientFundsError.
    """
    validate_escrow_name(owner, "owner")
    validate_escrow_name(escrow_id, "escrow_id")
    _check_amount(amount)
    if not state.get_params(view).transfers_enabled:
        raise TransfersDisabledError("transfers are paused on this chain (params."
                                     "transfers_enabled is false)")
    _check_denom(view, denom)
    available = state.get_balance(view, holder, denom)
    if available < amount:
        raise InsufficientFundsError(
            f"{did_from_address(holder)} has {available} {denom}, {amount} required for "
            f"escrow {owner}/{escrow_id}",
            field="amount", required=amount, available=available, denom=denom)
    held = state.get_escrow_balance(view, owner, escrow_id, denom)
    state.set_balance(view, holder, denom, available - amount)
    state.set_escrow_balance(view, owner, escrow_id, denom, held + amount)
    return events.coins_escrowed(did_from_address(holder), owner, escrow_id, denom, amount)


def pay_from_escrow(view: StateView, owner: str, escrow_id: str, recipient: str, denom: str,
                    amount: int) -> Event:
    """Move ``amount`` of ``denom`` from escrow (owner, escrow_id) to ``recipient``'s balance;
    return ``escrow_paid``.

    Raises:
        ValueError: ``owner`` or ``escrow_id`` is malformed (a caller's programming error).
        AmountInvalidError, DenomNotFoundError, RecipientNotFoundError, RecipientSuspendedError,
        EscrowInsufficientError.
    """
    validate_escrow_name(owner, "owner")
    validate_escrow_name(escrow_id, "escrow_id")
    _check_amount(amount)
    _check_denom(view, denom)
    _check_recipient(view, recipient)
    held = state.get_escrow_balance(view, owner, escrow_id, denom)
    if held < amount:
        raise EscrowInsufficientError(
            f"escrow {owner}/{escrow_id} holds {held} {denom}, {amount} required",
            field="amount", required=amount, available=held, denom=denom)
    state.set_escrow_balance(view, owner, escrow_id, denom, held - amount)
    state.set_balance(view, recipient, denom, state.get_balance(view, recipient, denom) + amount)
    return events.escrow_paid(owner, escrow_id, did_from_address(recipient), denom, amount)


def _check_amount(amount: int) -> None:
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        raise AmountInvalidError(f"amount must be a positive integer below 2**63, got {amount}",
                                 field="amount")


def _check_denom(view: ReadView, denom: str) -> None:
    if not is_denom(denom) or not state.has_denom(view, denom):
        raise DenomNotFoundError(f"denomination {denom!r} does not exist", field="denom")


def _check_recipient(view: ReadView, recipient: str) -> None:
    if identity.is_active(view, recipient):
        return
    did = did_from_address(recipient)
    if not identity.exists(view, recipient):
        raise RecipientNotFoundError(f"{did} has no identity; coins go only to identities",
                                     field="to")
    raise RecipientSuspendedError(f"{did} is suspended and cannot receive coins", field="to")


def _did_address(did: str, field: str) -> str:
    address = address_from_did(did)
    if address is None:
        raise InvalidMessageError(f"{field} must be a did:city DID, got {did!r}", field=field)
    return address
