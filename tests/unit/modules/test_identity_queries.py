"""Identity queries: answers, parameter errors naming the field, pagination, provability."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidQueryError
from citychain.modules.identity import state
from citychain.modules.identity.genesis import init_genesis
from citychain.modules.identity.handlers import handle_rotate_key, handle_suspend_identity
from citychain.modules.identity.messages import (
    MsgRotateKey,
    MsgSuspendIdentity,
    rotation_sign_bytes,
)
from citychain.modules.identity.module import MODULE
from citychain.testing.state import DictState

CHAIN_ID = "citychain-test"
BLOCK = BlockContext(CHAIN_ID, 9, 0)
CITIZENS = [PrivateKey.from_secret(f"identity-queries/citizen-{i}") for i in range(7)]
REGISTRAR = PrivateKey.from_secret("identity-queries/registrar")


class GetOnlyView:
    """A read view that refuses range reads, as a client re-running a proven query does."""

    def __init__(self, inner: DictState) -> None:
        self.inner = inner
        self.reads: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        self.reads.append(key)
        return self.inner.get(key)

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError("a provable query must not read ranges")


@pytest.fixture
def view() -> DictState:
    view = DictState()
    accounts: list[dict[str, Any]] = [{"pubkey": k.public_key.hex(), "roles": ["citizen"]}
                                      for k in CITIZENS]
    accounts.append({"pubkey": REGISTRAR.public_key.hex(), "roles": ["registrar", "citizen"],
                     "sequence": 4})
    init_genesis(view, BlockContext(CHAIN_ID, 0, 0), {"accounts": accounts})
    return view


def query(view: Any, name: str, **params: Any) -> Any:
    return MODULE.queries[name](view, params)


def test_account_by_did_and_address(view: DictState) -> None:
    expected = {
        "did": REGISTRAR.did, "address": REGISTRAR.address,
        "pubkey": REGISTRAR.public_key.hex(), "sequence": 4,
        "roles": ["citizen", "registrar"], "status": "active", "created_height": 0,
        "key_count": 1, "suspension": None,
    }
    assert query(view, "account", did=REGISTRAR.did) == expected
    assert query(view, "account", address=REGISTRAR.address) == expected


def test_account_shows_suspension(view: DictState) -> None:
    handle_suspend_identity(view, TxContext(BLOCK, REGISTRAR.address),
                            MsgSuspendIdentity(CITIZENS[0].did, "case-1"))
    answer = query(view, "account", did=CITIZENS[0].did)
    assert answer["status"] == "suspended"
    assert answer["suspension"] == {"reason": "case-1", "height": 9, "by": REGISTRAR.did}


def test_account_unknown_is_none(view: DictState) -> None:
    assert query(view, "account", did=PrivateKey.from_secret("nobody").did) is None


@pytest.mark.parametrize(("params", "field"), [
    ({}, "did"),
    ({"did": CITIZENS[0].did, "address": CITIZENS[0].address}, "did"),
    ({"did": CITIZENS[0].address}, "did"),
    ({"address": CITIZENS[0].did}, "address"),
    ({"address": 5}, "address"),
    ({"did": CITIZENS[0].did, "extra": 1}, "extra"),
])
def test_invalid_account_params(view: DictState, params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        MODULE.queries["account"](view, params)
    assert caught.value.field == field


def test_role_holders_paginates(view: DictState) -> None:
    everyone = sorted([k.address for k in CITIZENS] + [REGISTRAR.address])
    first = query(view, "role_holders", role="citizen", limit=3)
    assert first["holders"] == ["did:city:" + a for a in everyone[:3]]
    assert first["next_start_after"] == everyone[2]
    seen = list(first["holders"])
    cursor = first["next_start_after"]
    while cursor is not None:
        page = query(view, "role_holders", role="citizen", limit=3, start_after=cursor)
        seen.extend(page["holders"])
        cursor = page["next_start_after"]
    assert seen == ["did:city:" + a for a in everyone]
    assert query(view, "role_holders", role="registrar") == {
        "role": "registrar", "holders": [REGISTRAR.did], "next_start_after": None}
    assert query(view, "role_holders", role="auditor")["holders"] == []


def test_role_holders_exact_page_has_no_next(view: DictState) -> None:
    assert query(view, "role_holders", role="citizen", limit=8)["next_start_after"] is None


@pytest.mark.parametrize(("params", "field"), [
    ({}, "role"),
    ({"role": "mayor"}, "role"),
    ({"role": "citizen", "limit": 0}, "limit"),
    ({"role": "citizen", "limit": 501}, "limit"),
    ({"role": "citizen", "limit": True}, "limit"),
    ({"role": "citizen", "start_after": "zz"}, "start_after"),
    ({"role": "citizen", "page": 2}, "page"),
])
def test_invalid_role_holders_params(view: DictState, params: dict[str, Any],
                                     field: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        MODULE.queries["role_holders"](view, params)
    assert caught.value.field == field


def test_key_history(view: DictState) -> None:
    owner, new = CITIZENS[1], PrivateKey.from_secret("identity-queries/new")
    state.set_sequence(view, owner.address, 1)
    signature = new.sign(rotation_sign_bytes(CHAIN_ID, owner.did, new.public_key, 0))
    handle_rotate_key(view, TxContext(BLOCK, owner.address),
                      MsgRotateKey(new.public_key, signature))
    assert query(view, "key_history", did=owner.did) == {
        "did": owner.did, "address": owner.address, "next_start": None,
        "keys": [{"index": 0, "height": 0, "pubkey": owner.public_key.hex()},
                 {"index": 1, "height": 9, "pubkey": new.public_key.hex()}]}
    page = query(view, "key_history", did=owner.did, limit=1)
    assert [k["index"] for k in page["keys"]] == [0] and page["next_start"] == 1
    page = query(view, "key_history", did=owner.did, start=1)
    assert [k["index"] for k in page["keys"]] == [1] and page["next_start"] is None
    assert query(view, "key_history", address=PrivateKey.from_secret("x").address) is None


def test_params(view: DictState) -> None:
    assert query(view, "params") == {"self_registration_enabled": True}
    with pytest.raises(InvalidQueryError) as caught:
        query(view, "params", verbose=True)
    assert caught.value.field == "verbose"


def test_provable_queries_read_by_get_only(view: DictState) -> None:
    assert MODULE.provable_queries == {"account", "key_history", "params"}
    recorder = GetOnlyView(view)
    assert query(recorder, "account", did=CITIZENS[0].did) is not None
    assert query(recorder, "key_history", did=CITIZENS[0].did) is not None
    assert query(recorder, "account", did=PrivateKey.from_secret("nobody").did) is None
    assert query(recorder, "params") is not None
    assert recorder.reads
