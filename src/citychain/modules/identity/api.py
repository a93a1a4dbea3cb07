"""The identity module's facade: the only surface other modules and the application use.

Functions take addresses (40 hex characters); messages and events use DIDs
(``did:city:<address>``). ``ACCOUNT_KEEPER`` is the application's ante-handler keeper.
"""

from __future__ import annotations

from collections.abc import Iterable

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import address_from_did, did_from_address, is_address
from citychain.core.errors import RoleRequiredError
from citychain.core.messages import Msg
from citychain.core.module import AccountInfo
from citychain.core.state import ReadView, StateView
from citychain.modules.identity import state
from citychain.modules.identity.errors import IdentityNotFoundError, IdentitySuspendedError
from citychain.modules.identity.handlers import open_account
from citychain.modules.identity.messages import (
    rotation_sign_bytes,
    validate_did_field,
    validate_role_field,
)
from citychain.modules.identity.types import (
    GRANTERS,
    ROLE_AUDITOR,
    ROLE_CITIZEN,
    ROLE_DEVICE,
    ROLE_OPERATOR,
    ROLE_REGISTRAR,
    ROLE_TREASURY,
    ROLE_VALIDATOR_ORG,
    ROLES,
)

__all__ = [
    "ACCOUNT_KEEPER",
    "GRANTERS",
    "ROLES",
    "ROLE_AUDITOR",
    "ROLE_CITIZEN",
    "ROLE_DEVICE",
    "ROLE_OPERATOR",
    "ROLE_REGISTRAR",
    "ROLE_TREASURY",
    "ROLE_VALIDATOR_ORG",
    "IdentityAccountKeeper",
    "address_of",
    "allowed_for_new_account",
    "check_active",
    "check_role",
    "create_account",
    "did_of",
    "exists",
    "get_account",
    "has_role",
    "is_active",
    "rotation_sign_bytes",
    "set_sequence",
    "validate_did_field",
    "validate_role_field",
]


def get_account(view: ReadView, address: str) -> AccountInfo | None:
    """Return what the ante handler needs about ``address``, or None if it has no identity."""
    account = state.get_account(view, address)
    if account is None:
        return None
    return AccountInfo(address=address, pubkey=account.pubkey,
                       sequence=state.get_sequence(view, address),
                       suspended=account.suspended, roles=account.roles)


def set_sequence(view: StateView, address: str, sequence: int) -> None:
    """Store the next expected transaction sequence of ``address``.

    Raises:
        ValueError: ``sequence`` is negative.
    """
    state.set_sequence(view, address, sequence)


def exists(view: ReadView, address: str) -> bool:
    """Return whether ``address`` has an identity (active or suspended)."""
    return state.has_account(view, address)


def is_active(view: ReadView, address: str) -> bool:
    """Return whether ``address`` has an identity that is not suspended."""
    account = state.get_account(view, address)
    return account is not None and not account.suspended


def has_role(view: ReadView, address: str, role: str) -> bool:
    """Return whether ``address`` holds ``role`` and can exercise it (is not suspended).

    A suspended identity keeps its roles on record but exercises none of them.
    """
    account = state.get_account(view, address)
    return account is not None and not account.suspended and role in account.roles


def check_active(view: ReadView, address: str, field: str) -> None:
    """Raise unless ``address`` has an active identity.

    Raises:
        IdentityNotFoundError: no identity at ``address``.
        IdentitySuspendedError: the identity is suspended.
    """
    account = state.get_account(view, address)
    if account is None:
        raise IdentityNotFoundError(f"{did_from_address(address)} has no identity", field=field)
    if account.suspended:
        raise IdentitySuspendedError(f"{did_from_address(address)} is suspended", field=field)


def check_role(view: ReadView, address: str, role: str, field: str = "sender") -> None:
    """Raise unless ``address`` is active and holds ``role``.

    Raises:
        RoleRequiredError: naming ``field``, with ``required=role``.
    """
    if not has_role(view, address, role):
        raise RoleRequiredError(f"{did_from_address(address)} does not hold the {role} role "
                                "(or is suspended)", field=field, required=role)


def create_account(view: StateView, ctx: BlockContext | TxContext, pubkey: bytes,
                   roles: Iterable[str] = ()) -> str:
    """Create an identity for ``pubkey`` holding ``roles`` (genesis tooling, tests); return its
    address. No event is emitted.

    Raises:
        RoleUnknownError, IdentityAlreadyExistsError, KeyAlreadyBoundError.
    """
    return open_account(view, ctx.height, pubkey, roles).address


def did_of(address: str) -> str:
    """Return the DID of ``address``."""
    return did_from_address(address)


def address_of(reference: str) -> str | None:
    """Return the address named by ``reference`` (an address or a did:city DID), or None."""
    if is_address(reference):
        return reference
    return address_from_did(reference)


def allowed_for_new_account(msg_type: type[Msg]) -> bool:
    """Return whether a key with no identity may send ``msg_type`` (read as the ante does)."""
    return bool(getattr(msg_type, "ALLOWED_FOR_NEW_ACCOUNT", False))


class IdentityAccountKeeper:
    """The core.module.AccountKeeper the application's ante handler uses."""

    def get_account(self, view: ReadView, address: str) -> AccountInfo | None:
        """Return the sender's account, or None if ``address`` has no identity."""
        return get_account(view, address)

    def set_sequence(self, view: StateView, address: str, sequence: int) -> None:
        """Store the next expected sequence. Raises ValueError if negative."""
        set_sequence(view, address, sequence)


ACCOUNT_KEEPER = IdentityAccountKeeper()
