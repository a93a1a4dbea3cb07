"""Identity handlers: each message's valid case (post-state and events) and its failures."""

from __future__ import annotations

from typing import Any

import pytest

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import ChainError, RoleRequiredError
from citychain.core.events import Event
from citychain.core.messages import Msg
from citychain.modules.identity import api, keys, state
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
    SelfRegistrationDisabledError,
    SenderKeyMismatchError,
    SenderSuspendedError,
    SuspensionNotAllowedError,
)
from citychain.modules.identity.genesis import init_genesis
from citychain.modules.identity.messages import (
    MsgCreateIdentity,
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgRevokeRole,
    MsgRotateKey,
    MsgSuspendIdentity,
    rotation_sign_bytes,
)
from citychain.modules.identity.module import MODULE
from citychain.modules.identity.types import GRANTERS, ROLES, KeyRecord, Suspension
from citychain.testing.state import DictState

CHAIN_ID = "citychain-test"
HEIGHT = 12
BLOCK = BlockContext(CHAIN_ID, HEIGHT, 1_700_000_000 * 10**9)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_secret(f"identity-handlers/{name}")


# name -> (roles, suspended)
PEOPLE: dict[str, tuple[list[str], bool]] = {
    "org1": (["validator-org"], False),
    "org2": (["validator-org"], False),
    "reg": (["registrar"], False),
    "reg2": (["registrar"], False),
    "op": (["operator"], False),
    "tre": (["treasury"], False),
    "aud": (["auditor"], False),
    "cit": (["citizen"], False),
    "dev": (["device"], False),
    "plain": ([], False),
    "susp": (["citizen"], True),
    "sreg": (["registrar"], True),
}


@pytest.fixture
def view() -> DictState:
    accounts: list[dict[str, Any]] = []
    for name, (roles, suspended) in PEOPLE.items():
        entry: dict[str, Any] = {"pubkey": key(name).public_key.hex(), "roles": roles}
        if suspended:
            entry["suspension"] = {"reason": "case-17", "height": 3, "by": key("reg").address}
        accounts.append(entry)
    view = DictState()
    init_genesis(view, BlockContext(CHAIN_ID, 0, 0), {"accounts": accounts})
    return view


def run(view: DictState, sender: str, msg: Msg) -> list[Event]:
    ctx = TxContext(BLOCK, sender)
    MODULE.handlers[type(msg)](view, ctx, msg)
    return ctx.events


def assert_fails(view: DictState, sender: str, msg: Msg, error: type[ChainError],
                 field: str | None) -> ChainError:
    """Run ``msg`` and check the exact error, its code and field, and that nothing changed."""
    before = view.snapshot()
    ctx = TxContext(BLOCK, sender)
    with pytest.raises(ChainError) as caught:
        MODULE.handlers[type(msg)](view, ctx, msg)
    assert type(caught.value) is error
    assert caught.value.code == error.code
    assert caught.value.codespace == error.codespace
    assert caught.value.field == field
    assert view.snapshot() == before
    assert ctx.events == []
    return caught.value


def did(name: str) -> str:
    return key(name).did


def address(name: str) -> str:
    return key(name).address


# ------------------------------------------------------------------ MsgCreateIdentity
def test_create_identity(view: DictState) -> None:
    new = key("newcomer")
    events = run(view, new.address, MsgCreateIdentity(new.public_key))
    account = state.get_account(view, new.address)
    assert account is not None
    assert account.pubkey == new.public_key
    assert account.roles == ()
    assert account.status == "active"
    assert account.created_height == HEIGHT
    assert account.key_count == 1
    assert state.get_sequence(view, new.address) == 0
    assert state.get_key_record(view, new.address, 0) == KeyRecord(HEIGHT, new.public_key)
    assert state.get_key_binding(view, new.public_key) == new.address
    assert events == [Event.of("identity_created", did=new.did, pubkey=new.public_key.hex())]


def test_invalid_create_identity_pubkey_not_sender(view: DictState) -> None:
    new, other = key("newcomer"), key("other")
    error = assert_fails(view, other.address, MsgCreateIdentity(new.public_key),
                         SenderKeyMismatchError, "pubkey")
    assert error.details == {"expected": other.address, "found": new.address}


def test_invalid_create_identity_already_exists(view: DictState) -> None:
    cit = key("cit")
    assert_fails(view, cit.address, MsgCreateIdentity(cit.public_key),
                 IdentityAlreadyExistsError, "pubkey")


def test_invalid_create_identity_key_already_bound(view: DictState) -> None:
    new = key("rotated-in")
    rotate(view, "plain", new)
    assert_fails(view, new.address, MsgCreateIdentity(new.public_key), KeyAlreadyBoundError,
                 "pubkey")


def test_invalid_create_identity_self_registration_disabled() -> None:
    view = DictState()
    init_genesis(view, BLOCK, {"params": {"self_registration_enabled": False}})
    new = key("newcomer")
    assert_fails(view, new.address, MsgCreateIdentity(new.public_key),
                 SelfRegistrationDisabledError, "pubkey")


# ------------------------------------------------------------------ MsgRotateKey
def rotation(view: DictState, name: str, new: PrivateKey, *, sequence: int | None = None,
             chain_id: str = CHAIN_ID, signer: PrivateKey | None = None) -> MsgRotateKey:
    """Build a rotation as a client would, after the ante handler advanced the sequence."""
    tx_sequence = state.get_sequence(view, address(name))
    state.set_sequence(view, address(name), tx_sequence + 1)  # what the ante handler does
    payload = rotation_sign_bytes(chain_id, did(name), new.public_key,
                                  tx_sequence if sequence is None else sequence)
    return MsgRotateKey(new.public_key, (signer or new).sign(payload))


def rotate(view: DictState, name: str, new: PrivateKey) -> list[Event]:
    return run(view, address(name), rotation(view, name, new))


def test_rotate_key(view: DictState) -> None:
    old, new = key("cit"), key("cit-new")
    state.set_sequence(view, old.address, 4)
    events = rotate(view, "cit", new)
    account = state.get_account(view, old.address)
    assert account is not None
    assert account.pubkey == new.public_key
    assert account.key_count == 2
    assert account.roles == ("citizen",)
    assert state.get_key_record(view, old.address, 1) == KeyRecord(HEIGHT, new.public_key)
    assert state.get_key_record(view, old.address, 0) == KeyRecord(0, old.public_key)
    assert state.get_key_binding(view, new.public_key) == old.address
    assert state.get_key_binding(view, old.public_key) == old.address
    info = api.get_account(view, old.address)
    assert info is not None and info.pubkey == new.public_key
    assert events == [Event.of("key_rotated", did=old.did, old_pubkey=old.public_key.hex(),
                               new_pubkey=new.public_key.hex(), key_index=1)]


def test_rotate_key_twice_keeps_history(view: DictState) -> None:
    first, second = key("cit-1"), key("cit-2")
    rotate(view, "cit", first)
    rotate(view, "cit", second)
    history = list(state.iter_key_records(view, address("cit")))
    assert [r.pubkey for r in history] == [key("cit").public_key, first.public_key,
                                          second.public_key]


def test_invalid_rotate_key_signature_over_wrong_sequence(view: DictState) -> None:
    msg = rotation(view, "cit", key("cit-new"), sequence=5)
    error = assert_fails(view, address("cit"), msg, KeyPossessionInvalidError,
                         "new_key_signature")
    assert error.details == {"sequence": 0}


def test_invalid_rotate_key_signature_for_other_chain(view: DictState) -> None:
    msg = rotation(view, "cit", key("cit-new"), chain_id="other-chain")
    assert_fails(view, address("cit"), msg, KeyPossessionInvalidError, "new_key_signature")


def test_invalid_rotate_key_signed_by_old_key(view: DictState) -> None:
    msg = rotation(view, "cit", key("cit-new"), signer=key("cit"))
    assert_fails(view, address("cit"), msg, KeyPossessionInvalidError, "new_key_signature")


def test_invalid_rotate_key_to_current_key(view: DictState) -> None:
    msg = rotation(view, "cit", key("cit"))
    assert_fails(view, address("cit"), msg, KeyAlreadyBoundError, "new_pubkey")


def test_invalid_rotate_key_to_another_accounts_key(view: DictState) -> None:
    msg = rotation(view, "cit", key("dev"))
    error = assert_fails(view, address("cit"), msg, KeyAlreadyBoundError, "new_pubkey")
    assert error.details == {"bound_to": did("dev")}


def test_invalid_rotate_key_back_to_an_old_key(view: DictState) -> None:
    rotate(view, "cit", key("cit-new"))
    msg = rotation(view, "cit", key("cit"))
    assert_fails(view, address("cit"), msg, KeyAlreadyBoundError, "new_pubkey")


def test_invalid_rotate_key_sender_suspended(view: DictState) -> None:
    msg = rotation(view, "susp", key("susp-new"))
    assert_fails(view, address("susp"), msg, SenderSuspendedError, "sender")


def test_invalid_rotate_key_sender_unknown(view: DictState) -> None:
    msg = rotation(view, "nobody", key("nobody-new"))
    assert_fails(view, address("nobody"), msg, IdentityNotFoundError, "sender")


# ------------------------------------------------------------------ MsgGrantRole
def test_grant_role(view: DictState) -> None:
    events = run(view, address("reg"), MsgGrantRole(did("plain"), "citizen"))
    account = state.get_account(view, address("plain"))
    assert account is not None and account.roles == ("citizen",)
    assert view.get(keys.role_holder_key("citizen", address("plain"))) == b""
    assert api.has_role(view, address("plain"), "citizen")
    assert events == [Event.of("role_granted", did=did("plain"), role="citizen",
                               granted_by=did("reg"))]


def test_grant_role_keeps_roles_sorted(view: DictState) -> None:
    run(view, address("op"), MsgGrantRole(did("cit"), "device"))
    run(view, address("reg"), MsgGrantRole(did("cit"), "auditor"))
    account = state.get_account(view, address("cit"))
    assert account is not None and account.roles == ("auditor", "citizen", "device")


GRANTER_NAMES = {"validator-org": "org1", "registrar": "reg", "operator": "op",
                 "treasury": "tre", "auditor": "aud", "citizen": "cit", "device": "dev"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("granter_role", sorted(GRANTER_NAMES))
def test_grant_table(view: DictState, granter_role: str, role: str) -> None:
    """Every (granter role, role) pair is allowed exactly when the GRANTERS table says so."""
    msg = MsgGrantRole(did("plain"), role)
    sender = address(GRANTER_NAMES[granter_role])
    if granter_role in GRANTERS[role]:
        run(view, sender, msg)
        assert api.has_role(view, address("plain"), role)
    else:
        error = assert_fails(view, sender, msg, RoleGrantNotAllowedError, "role")
        assert error.details["allowed"] == list(GRANTERS[role])


def test_invalid_grant_role_device_cannot_grant(view: DictState) -> None:
    assert_fails(view, address("dev"), MsgGrantRole(did("plain"), "device"),
                 RoleGrantNotAllowedError, "role")


def test_invalid_grant_role_suspended_registrar(view: DictState) -> None:
    assert_fails(view, address("sreg"), MsgGrantRole(did("plain"), "citizen"),
                 SenderSuspendedError, "sender")


def test_invalid_grant_role_target_unknown(view: DictState) -> None:
    assert_fails(view, address("reg"), MsgGrantRole(did("nobody"), "citizen"),
                 IdentityNotFoundError, "did")


def test_invalid_grant_role_target_suspended(view: DictState) -> None:
    assert_fails(view, address("reg"), MsgGrantRole(did("susp"), "auditor"),
                 IdentitySuspendedError, "did")


def test_invalid_grant_role_already_held(view: DictState) -> None:
    assert_fails(view, address("reg"), MsgGrantRole(did("cit"), "citizen"),
                 RoleAlreadyHeldError, "role")


# ------------------------------------------------------------------ MsgRevokeRole
def test_revoke_role(view: DictState) -> None:
    events = run(view, address("reg"), MsgRevokeRole(did("cit"), "citizen"))
    account = state.get_account(view, address("cit"))
    assert account is not None and account.roles == ()
    assert view.get(keys.role_holder_key("citizen", address("cit"))) is None
    assert events == [Event.of("role_revoked", did=did("cit"), role="citizen",
                               revoked_by=did("reg"))]


def test_revoke_role_from_suspended_identity(view: DictState) -> None:
    run(view, address("reg"), MsgRevokeRole(did("susp"), "citizen"))
    account = state.get_account(view, address("susp"))
    assert account is not None and account.roles == () and account.suspended


def test_revoke_validator_org_while_another_holds_it(view: DictState) -> None:
    run(view, address("org1"), MsgRevokeRole(did("org2"), "validator-org"))
    assert not api.has_role(view, address("org2"), "validator-org")


def test_invalid_revoke_role_not_held(view: DictState) -> None:
    error = assert_fails(view, address("reg"), MsgRevokeRole(did("plain"), "citizen"),
                         RoleNotHeldError, "role")
    assert error.details == {"role": "citizen", "held": []}


def test_invalid_revoke_role_not_allowed(view: DictState) -> None:
    assert_fails(view, address("cit"), MsgRevokeRole(did("dev"), "device"),
                 RoleGrantNotAllowedError, "role")


def test_invalid_revoke_last_validator_org(view: DictState) -> None:
    run(view, address("org1"), MsgRevokeRole(did("org2"), "validator-org"))
    assert_fails(view, address("org1"), MsgRevokeRole(did("org1"), "validator-org"),
                 LastRoleHolderError, "role")


def test_invalid_revoke_role_suspended_sender(view: DictState) -> None:
    assert_fails(view, address("sreg"), MsgRevokeRole(did("cit"), "citizen"),
                 SenderSuspendedError, "sender")


# ------------------------------------------------------------------ MsgSuspendIdentity
def test_suspend_identity(view: DictState) -> None:
    events = run(view, address("reg"), MsgSuspendIdentity(did("cit"), "case-42"))
    account = state.get_account(view, address("cit"))
    assert account is not None
    assert account.suspension == Suspension("case-42", HEIGHT, address("reg"))
    assert account.status == "suspended"
    assert account.roles == ("citizen",)  # kept on record, not exercised
    assert not api.has_role(view, address("cit"), "citizen")
    assert not api.is_active(view, address("cit"))
    info = api.get_account(view, address("cit"))
    assert info is not None and info.suspended
    assert events == [Event.of("identity_suspended", did=did("cit"), reason="case-42",
                               suspended_by=did("reg"))]


def test_registrar_may_suspend_another_registrar(view: DictState) -> None:
    run(view, address("reg"), MsgSuspendIdentity(did("reg2"), "case-9"))
    assert not api.is_active(view, address("reg2"))


def test_invalid_suspend_identity_not_registrar(view: DictState) -> None:
    error = assert_fails(view, address("org1"), MsgSuspendIdentity(did("cit"), "x"),
                         RoleRequiredError, "sender")
    assert error.details == {"required": "registrar"}


def test_invalid_suspend_identity_suspended_registrar(view: DictState) -> None:
    assert_fails(view, address("sreg"), MsgSuspendIdentity(did("cit"), "x"),
                 SenderSuspendedError, "sender")


def test_invalid_suspend_identity_self(view: DictState) -> None:
    assert_fails(view, address("reg"), MsgSuspendIdentity(did("reg"), "x"),
                 SuspensionNotAllowedError, "did")


def test_invalid_suspend_identity_validator_org(view: DictState) -> None:
    error = assert_fails(view, address("reg"), MsgSuspendIdentity(did("org1"), "x"),
                         SuspensionNotAllowedError, "did")
    assert error.details == {"role": "validator-org"}


def test_invalid_suspend_identity_already_suspended(view: DictState) -> None:
    assert_fails(view, address("reg"), MsgSuspendIdentity(did("susp"), "x"),
                 IdentitySuspendedError, "did")


def test_invalid_suspend_identity_unknown(view: DictState) -> None:
    assert_fails(view, address("reg"), MsgSuspendIdentity(did("nobody"), "x"),
                 IdentityNotFoundError, "did")


# ------------------------------------------------------------------ MsgReinstateIdentity
def test_reinstate_identity(view: DictState) -> None:
    events = run(view, address("reg2"), MsgReinstateIdentity(did("susp")))
    account = state.get_account(view, address("susp"))
    assert account is not None and account.suspension is None and account.status == "active"
    assert api.has_role(view, address("susp"), "citizen")
    assert events == [Event.of("identity_reinstated", did=did("susp"),
                               reinstated_by=did("reg2"))]


def test_invalid_reinstate_identity_not_suspended(view: DictState) -> None:
    assert_fails(view, address("reg"), MsgReinstateIdentity(did("cit")),
                 IdentityNotSuspendedError, "did")


def test_invalid_reinstate_identity_not_registrar(view: DictState) -> None:
    assert_fails(view, address("op"), MsgReinstateIdentity(did("susp")), RoleRequiredError,
                 "sender")


def test_invalid_reinstate_identity_unknown(view: DictState) -> None:
    assert_fails(view, address("reg"), MsgReinstateIdentity(did("nobody")),
                 IdentityNotFoundError, "did")
