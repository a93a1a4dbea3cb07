"""Identity api: the account keeper the ante handler uses, role and status checks, and the ante
handler itself run over identity state (new-account creation, REQUIRED_ROLE, suspension)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from citychain.app.ante import check_ante
from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import (
    AccountSuspendedError,
    ChainError,
    RoleRequiredError,
    UnknownAccountError,
)
from citychain.core.messages import MessageRegistry, Msg
from citychain.core.module import AccountInfo, AccountKeeper
from citychain.core.tx import build_tx, decode_tx
from citychain.modules.bank.messages import MESSAGES as BANK_MESSAGES
from citychain.modules.bank.messages import MsgMint, MsgTransfer
from citychain.modules.identity import api, state
from citychain.modules.identity.errors import (
    IdentityAlreadyExistsError,
    IdentityNotFoundError,
    IdentitySuspendedError,
    KeyAlreadyBoundError,
    RoleUnknownError,
)
from citychain.modules.identity.handlers import handle_create_identity
from citychain.modules.identity.messages import MESSAGES as IDENTITY_MESSAGES
from citychain.modules.identity.messages import MsgCreateIdentity, MsgSuspendIdentity
from citychain.modules.identity.types import Suspension
from citychain.testing.state import DictState

CHAIN_ID = "citychain-test"
BLOCK = BlockContext(CHAIN_ID, 3, 0)
CITIZEN = PrivateKey.from_secret("identity-api/citizen")
REGISTRAR = PrivateKey.from_secret("identity-api/registrar")
NEWCOMER = PrivateKey.from_secret("identity-api/newcomer")


@pytest.fixture
def view() -> DictState:
    view = DictState()
    api.create_account(view, BLOCK, CITIZEN.public_key, ["citizen"])
    api.create_account(view, BLOCK, REGISTRAR.public_key, ["registrar"])
    return view


def registry() -> MessageRegistry:
    registry = MessageRegistry()
    for cls in (*IDENTITY_MESSAGES, *BANK_MESSAGES):
        registry.register(cls)
    return registry


def ante(view: DictState, key: PrivateKey, sequence: int, *messages: Msg) -> AccountInfo | None:
    tx = decode_tx(build_tx(key, CHAIN_ID, sequence, *messages), registry())
    return check_ante(view, tx, CHAIN_ID, api.ACCOUNT_KEEPER)


def test_account_keeper_satisfies_the_protocol(view: DictState) -> None:
    keeper: AccountKeeper = api.ACCOUNT_KEEPER
    assert keeper.get_account(view, CITIZEN.address) == AccountInfo(
        address=CITIZEN.address, pubkey=CITIZEN.public_key, sequence=0, suspended=False,
        roles=("citizen",))
    keeper.set_sequence(view, CITIZEN.address, 7)
    info = keeper.get_account(view, CITIZEN.address)
    assert info is not None and info.sequence == 7
    assert keeper.get_account(view, NEWCOMER.address) is None


def test_set_sequence_refuses_negative(view: DictState) -> None:
    with pytest.raises(ValueError):
        api.set_sequence(view, CITIZEN.address, -1)


def test_status_and_role_checks(view: DictState) -> None:
    assert api.exists(view, CITIZEN.address)
    assert not api.exists(view, NEWCOMER.address)
    assert api.is_active(view, CITIZEN.address)
    assert not api.is_active(view, NEWCOMER.address)
    assert api.has_role(view, CITIZEN.address, "citizen")
    assert not api.has_role(view, CITIZEN.address, "registrar")
    assert not api.has_role(view, NEWCOMER.address, "citizen")
    api.check_role(view, REGISTRAR.address, "registrar")
    with pytest.raises(RoleRequiredError) as caught:
        api.check_role(view, CITIZEN.address, "treasury", "sender")
    assert caught.value.field == "sender" and caught.value.details == {"required": "treasury"}
    api.check_active(view, CITIZEN.address, "to")
    with pytest.raises(IdentityNotFoundError):
        api.check_active(view, NEWCOMER.address, "to")


def test_suspended_identity_exists_but_exercises_no_role(view: DictState) -> None:
    account = state.get_account(view, CITIZEN.address)
    assert account is not None
    state.set_account(view, replace(account, suspension=Suspension("case", 3, REGISTRAR.address)))
    assert api.exists(view, CITIZEN.address)
    assert not api.is_active(view, CITIZEN.address)
    assert not api.has_role(view, CITIZEN.address, "citizen")
    with pytest.raises(IdentitySuspendedError) as caught:
        api.check_active(view, CITIZEN.address, "to")
    assert caught.value.field == "to"


def test_create_account_errors(view: DictState) -> None:
    with pytest.raises(IdentityAlreadyExistsError):
        api.create_account(view, BLOCK, CITIZEN.public_key)
    with pytest.raises(RoleUnknownError) as caught:
        api.create_account(view, BLOCK, NEWCOMER.public_key, ["mayor"])
    assert caught.value.field == "roles"
    assert not api.exists(view, NEWCOMER.address)


def test_create_account_refuses_a_key_bound_elsewhere(view: DictState) -> None:
    # Bind NEWCOMER's key to the citizen's account as if it had been rotated in.
    state.set_key_binding(view, NEWCOMER.public_key, CITIZEN.address)
    with pytest.raises(KeyAlreadyBoundError):
        api.create_account(view, BLOCK, NEWCOMER.public_key)


def test_did_helpers() -> None:
    assert api.did_of(CITIZEN.address) == CITIZEN.did
    assert api.address_of(CITIZEN.did) == CITIZEN.address
    assert api.address_of(CITIZEN.address) == CITIZEN.address
    assert api.address_of("did:web:example.org") is None


# ------------------------------------------------------------------ through the ante handler
def test_new_key_may_only_create_its_identity(view: DictState) -> None:
    assert ante(view, NEWCOMER, 0, MsgCreateIdentity(NEWCOMER.public_key)) is None
    with pytest.raises(UnknownAccountError):
        ante(view, NEWCOMER, 0, MsgTransfer(CITIZEN.did, "ucity", 1))


def test_new_account_flow_as_the_application_runs_it(view: DictState) -> None:
    msg = MsgCreateIdentity(NEWCOMER.public_key)
    assert ante(view, NEWCOMER, 0, msg) is None
    handle_create_identity(view, TxContext(BLOCK, NEWCOMER.address), msg)
    api.ACCOUNT_KEEPER.set_sequence(view, NEWCOMER.address, 1)  # the application's next step
    info = ante(view, NEWCOMER, 1, MsgTransfer(CITIZEN.did, "ucity", 1))
    assert info is not None and info.sequence == 1 and info.roles == ()


def test_citizen_cannot_mint(view: DictState) -> None:
    with pytest.raises(ChainError) as caught:
        ante(view, CITIZEN, 0, MsgMint(CITIZEN.did, "ucity", 5))
    assert type(caught.value) is RoleRequiredError
    assert caught.value.details == {"required": "treasury"}
    assert caught.value.field == "body.messages[0]"


def test_only_registrars_pass_the_suspend_role_check(view: DictState) -> None:
    msg = MsgSuspendIdentity(CITIZEN.did, "case")
    assert ante(view, REGISTRAR, 0, msg) is not None
    with pytest.raises(RoleRequiredError):
        ante(view, CITIZEN, 0, MsgSuspendIdentity(REGISTRAR.did, "case"))


def test_suspended_sender_is_refused(view: DictState) -> None:
    account = state.get_account(view, REGISTRAR.address)
    assert account is not None
    state.set_account(view, replace(account, suspension=Suspension("x", 3, CITIZEN.address)))
    with pytest.raises(AccountSuspendedError):
        ante(view, REGISTRAR, 0, MsgSuspendIdentity(CITIZEN.did, "case"))
