"""Identity message handlers: every check runs before the first write; events go through ctx."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from itertools import islice

from citychain.core.context import TxContext
from citychain.core.crypto import (
    address_from_did,
    address_from_pubkey,
    did_from_address,
    verify_signature,
)
from citychain.core.errors import InvalidMessageError, RoleRequiredError
from citychain.core.state import ReadView, StateView
from citychain.modules.identity import events, state
from citychain.modules.identity.errors import (
    IdentityAlreadyExistsError,
    IdentityNotFoundError,
    IdentityNotSuspendedError,
    IdentitySuspendedError,
    KeyAlreadyBoundError,
    KeyPossessionInvalidError,
    LastRoleHolderError,
    RoleAlreadyHeldError,
    RoleGrantNotAllowedError,
    RoleNotHeldError,
    RoleUnknownError,
    SelfRegistrationDisabledError,
    SenderKeyMismatchError,
    SenderSuspendedError,
    SuspensionNotAllowedError,
)
from citychain.modules.identity.messages import (
    MsgCreateIdentity,
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgRevokeRole,
    MsgRotateKey,
    MsgSuspendIdentity,
    rotation_sign_bytes,
)
from citychain.modules.identity.types import (
    GRANTERS,
    PROTECTED_ROLES,
    ROLE_REGISTRAR,
    ROLES,
    UNSUSPENDABLE_ROLES,
    Account,
    KeyRecord,
    Suspension,
)


def handle_create_identity(view: StateView, ctx: TxContext, msg: MsgCreateIdentity) -> None:
    """Create the sender's identity with no roles.

    Raises:
        SelfRegistrationDisabledError, SenderKeyMismatchError, IdentityAlreadyExistsError,
        KeyAlreadyBoundError.
    """
    if not state.get_params(view).self_registration_enabled:
        raise SelfRegistrationDisabledError(
            "identities cannot register themselves on this chain (params."
            "self_registration_enabled is false); ask a registrar", field="pubkey")
    address = address_from_pubkey(msg.pubkey)
    if address != ctx.sender:
        raise SenderKeyMismatchError(
            f"pubkey derives address {address}, but the transaction sender is {ctx.sender}",
            field="pubkey", expected=ctx.sender, found=address)
    account = open_account(view, ctx.height, msg.pubkey, ())
    ctx.emit(events.identity_created(account.did, msg.pubkey))


def handle_rotate_key(view: StateView, ctx: TxContext, msg: MsgRotateKey) -> None:
    """Replace the sender's key after checking the new key's proof of possession.

    The proof signs the sequence of the carrying transaction, which is the stored sequence
    minus one: the ante handler advances the sequence before any message runs.

    Raises:
        IdentityNotFoundError, SenderSuspendedError, KeyAlreadyBoundError,
        KeyPossessionInvalidError.
    """
    account = _sender_account(view, ctx)
    _check_key_unbound(view, msg.new_pubkey, "new_pubkey")
    sequence = state.get_sequence(view, account.address) - 1
    sign_bytes = rotation_sign_bytes(ctx.chain_id, account.did, msg.new_pubkey, sequence)
    if not verify_signature(msg.new_pubkey, sign_bytes, msg.new_key_signature):
        raise KeyPossessionInvalidError(
            "new_key_signature is not the new key's signature over the rotation payload "
            f"(did {account.did}, sequence {sequence}, chain {ctx.chain_id})",
            field="new_key_signature", sequence=sequence)
    index = account.key_count
    state.set_key_record(view, account.address, index, KeyRecord(ctx.height, msg.new_pubkey))
    state.set_key_binding(view, msg.new_pubkey, account.address)
    state.set_account(view, replace(account, pubkey=msg.new_pubkey, key_count=index + 1))
    ctx.emit(events.key_rotated(account.did, account.pubkey, msg.new_pubkey, index))


def handle_grant_role(view: StateView, ctx: TxContext, msg: MsgGrantRole) -> None:
    """Give a role to an active identity, if one of the sender's roles may grant it.

    Raises:
        IdentityNotFoundError, SenderSuspendedError, RoleGrantNotAllowedError,
        IdentitySuspendedError, RoleAlreadyHeldError.
    """
    sender = _sender_account(view, ctx)
    _check_may_grant(sender, msg.role, "grant")
    target = _target_account(view, msg.did)
    if target.suspended:
        raise IdentitySuspendedError(f"{msg.did} is suspended; reinstate it before granting "
                                     "roles", field="did")
    if msg.role in target.roles:
        raise RoleAlreadyHeldError(f"{msg.did} already holds the {msg.role} role", field="role",
                                   role=msg.role)
    state.set_account(view, replace(target, roles=tuple(sorted((*target.roles, msg.role)))))
    state.add_role_holder(view, msg.role, target.address)
    ctx.emit(events.role_granted(msg.did, msg.role, sender.did))


def handle_revoke_role(view: StateView, ctx: TxContext, msg: MsgRevokeRole) -> None:
    """Take a role from an identity (suspended or not), if the sender may grant that role.

    Raises:
        IdentityNotFoundError, SenderSuspendedError, RoleGrantNotAllowedError,
        RoleNotHeldError, LastRoleHolderError.
    """
    sender = _sender_account(view, ctx)
    _check_may_grant(sender, msg.role, "revoke")
    target = _target_account(view, msg.did)
    if msg.role not in target.roles:
        raise RoleNotHeldError(f"{msg.did} does not hold the {msg.role} role", field="role",
                               role=msg.role, held=list(target.roles))
    if msg.role in PROTECTED_ROLES:
        holders = list(islice(state.iter_role_holders(view, msg.role), 2))
        if len(holders) < 2:
            raise LastRoleHolderError(
                f"{msg.did} is the last holder of {msg.role}; grant it to another identity "
                "first", field="role", role=msg.role)
    state.set_account(view, replace(target, roles=tuple(r for r in target.roles
                                                         if r != msg.role)))
    state.delete_role_holder(view, msg.role, target.address)
    ctx.emit(events.role_revoked(msg.did, msg.role, sender.did))


def handle_suspend_identity(view: StateView, ctx: TxContext, msg: MsgSuspendIdentity) -> None:
    """Suspend an identity (registrar only; not itself, not a validator organisation).

    Raises:
        IdentityNotFoundError, SenderSuspendedError, RoleRequiredError, IdentitySuspendedError,
        SuspensionNotAllowedError.
    """
    sender = _sender_account(view, ctx)
    _check_sender_role(sender, ROLE_REGISTRAR)
    target = _target_account(view, msg.did)
    if target.suspended:
        raise IdentitySuspendedError(f"{msg.did} is already suspended", field="did")
    if target.address == sender.address:
        raise SuspensionNotAllowedError("a registrar cannot suspend itself", field="did")
    protected = [role for role in target.roles if role in UNSUSPENDABLE_ROLES]
    if protected:
        raise SuspensionNotAllowedError(
            f"{msg.did} holds {protected[0]}; a registrar cannot suspend it (its validator "
            "organisation peers may revoke the role first)", field="did", role=protected[0])
    suspension = Suspension(msg.reason, ctx.height, sender.address)
    state.set_account(view, replace(target, suspension=suspension))
    ctx.emit(events.identity_suspended(msg.did, msg.reason, sender.did))


def handle_reinstate_identity(view: StateView, ctx: TxContext,
                              msg: MsgReinstateIdentity) -> None:
    """Lift an identity's suspension (registrar only).

    Raises:
        IdentityNotFoundError, SenderSuspendedError, RoleRequiredError,
        IdentityNotSuspendedError.
    """
    sender = _sender_account(view, ctx)
    _check_sender_role(sender, ROLE_REGISTRAR)
    target = _target_account(view, msg.did)
    if not target.suspended:
        raise IdentityNotSuspendedError(f"{msg.did} is not suspended", field="did")
    state.set_account(view, replace(target, suspension=None))
    ctx.emit(events.identity_reinstated(msg.did, sender.did))


def open_account(view: StateView, height: int, pubkey: bytes, roles: Iterable[str]) -> Account:
    """Create an account for ``pubkey`` holding ``roles`` and return it.

    Raises:
        RoleUnknownError, IdentityAlreadyExistsError, KeyAlreadyBoundError.
    """
    wanted = tuple(sorted(set(roles)))
    for role in wanted:
        if role not in ROLES:
            raise RoleUnknownError(f"unknown role {role!r}; roles are {', '.join(ROLES)}",
                                   field="roles", role=role)
    address = address_from_pubkey(pubkey)
    if state.has_account(view, address):
        raise IdentityAlreadyExistsError(f"{did_from_address(address)} already exists",
                                         field="pubkey")
    _check_key_unbound(view, pubkey, "pubkey")
    account = Account(address=address, pubkey=pubkey, roles=wanted, created_height=height)
    state.set_account(view, account)
    state.set_key_record(view, address, 0, KeyRecord(height, pubkey))
    state.set_key_binding(view, pubkey, address)
    for role in wanted:
        state.add_role_holder(view, role, address)
    return account


def _sender_account(view: ReadView, ctx: TxContext) -> Account:
    account = state.get_account(view, ctx.sender)
    if account is None:
        raise IdentityNotFoundError(f"the sender {ctx.sender} has no identity", field="sender")
    if account.suspended:
        raise SenderSuspendedError(f"the sender {account.did} is suspended", field="sender")
    return account


def _target_account(view: ReadView, did: str) -> Account:
    address = address_from_did(did)
    if address is None:
        raise InvalidMessageError(f"did must be a did:city DID, got {did!r}", field="did")
    account = state.get_account(view, address)
    if account is None:
        raise IdentityNotFoundError(f"no identity {did}", field="did")
    return account


def _check_may_grant(sender: Account, role: str, verb: str) -> None:
    granters = GRANTERS.get(role)
    if granters is None:
        raise RoleUnknownError(f"unknown role {role!r}", field="role", role=role)
    if not any(held in granters for held in sender.roles):
        raise RoleGrantNotAllowedError(
            f"only holders of {' or '.join(granters)} may {verb} the {role} role; "
            f"{sender.did} holds {', '.join(sender.roles) or 'no role'}",
            field="role", role=role, allowed=list(granters), held=list(sender.roles))


def _check_sender_role(sender: Account, role: str) -> None:
    if role not in sender.roles:
        raise RoleRequiredError(f"this message requires the {role} role, which {sender.did} "
                                "does not hold", field="sender", required=role)


def _check_key_unbound(view: ReadView, pubkey: bytes, field: str) -> None:
    bound = state.get_key_binding(view, pubkey)
    if bound is not None:
        raise KeyAlreadyBoundError(
            f"this key is or was the key of {did_from_address(bound)}; a key serves one "
            "identity, once", field=field, bound_to=did_from_address(bound))
