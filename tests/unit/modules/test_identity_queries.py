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


def rotate(view: DictState, owner: PrivateKey, new: PrivateKey, height: int) -> None:
    """Rotate ``owner``'s account to ``new`` in a transaction at ``height``."""
    sequence = state.get_sequence(view, owner.address)
    state.set_sequence(view, owner.address, sequence + 1)  # as the ante handler does
    signature = new.sign(rotation_sign_bytes(CHAIN_ID, owner.did, new.public_key, sequence))
    handle_rotate_key(view, TxContext(BlockContext(CHAIN_ID, height, 0), owner.address),
                      MsgRotateKey(new.public_key, signature))


ROTATED = [PrivateKey.from_secret(f"identity-queries/rotated-{i}") for i in range(4)]


def test_key_at_answers_the_key_in_force_at_each_height(view: DictState) -> None:
    owner = CITIZENS[2]
    for key, height in zip(ROTATED, (9, 20, 20, 35), strict=True):
        rotate(view, owner, key, height)
    keys = [owner, *ROTATED]
    expected = {0: 0, 8: 0, 9: 1, 19: 1, 20: 3, 34: 3, 35: 4, 2**63 - 1: 4}
    for at_height, index in expected.items():
        answer = query(view, "key_at", did=owner.did, at_height=at_height)
        assert answer == {"did": owner.did, "address": owner.address, "index": index,
                          "height": (0, 9, 20, 20, 35)[index],
                          "pubkey": keys[index].public_key.hex()}, at_height
    assert query(view, "key_at", address=owner.address, at_height=10)["index"] == 1


def test_key_at_without_rotation_is_the_initial_key(view: DictState) -> None:
    assert query(view, "key_at", did=CITIZENS[3].did, at_height=5) == {
        "did": CITIZENS[3].did, "address": CITIZENS[3].address, "index": 0, "height": 0,
        "pubkey": CITIZENS[3].public_key.hex()}


def test_key_at_before_the_first_key_or_unknown_account_is_none(view: DictState) -> None:
    late = PrivateKey.from_secret("identity-queries/late")
    init_genesis(view, BlockContext(CHAIN_ID, 0, 0),
                 {"accounts": [{"pubkey": late.public_key.hex(), "created_height": 7}]})
    assert query(view, "key_at", did=late.did, at_height=6) is None
    assert query(view, "key_at", did=late.did, at_height=7)["index"] == 0
    assert query(view, "key_at", did=PrivateKey.from_secret("nobody").did, at_height=7) is None


def test_key_at_reads_logarithmically_many_entries(view: DictState) -> None:
    owner = CITIZENS[4]
    keys = [PrivateKey.from_secret(f"identity-queries/many-{i}") for i in range(40)]
    for height, key in enumerate(keys, start=10):
        rotate(view, owner, key, height)
    recorder = GetOnlyView(view)
    answer = query(recorder, "key_at", did=owner.did, at_height=30)
    assert answer["index"] == 21 and answer["pubkey"] == keys[20].public_key.hex()
    assert len(recorder.reads) <= 1 + 7  # the account, then a binary search of 41 entries


@pytest.mark.parametrize(("params", "field"), [
    ({"at_height": 5}, "did"),
    ({"did": CITIZENS[0].did}, "at_height"),
    ({"did": CITIZENS[0].did, "at_height": -1}, "at_height"),
    ({"did": CITIZENS[0].did, "at_height": 2**63}, "at_height"),
    ({"did": CITIZENS[0].did, "at_height": "5"}, "at_height"),
    ({"did": CITIZENS[0].did, "at_height": True}, "at_height"),
    ({"did": CITIZENS[0].did, "address": CITIZENS[0].address, "at_height": 5}, "did"),
    ({"address": "zz", "at_height": 5}, "address"),
    ({"did": CITIZENS[0].did, "at_height": 5, "height": 5}, "height"),
])
def test_invalid_key_at_params(view: DictState, params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        MODULE.queries["key_at"](view, params)
    assert caught.value.field == field


def test_params(view: DictState) -> None:
    assert query(view, "params") == {"self_registration_enabled": True}
    with pytest.raises(InvalidQueryError) as caught:
        query(view, "params", verbose=True)
    assert caught.value.field == "verbose"


def test_provable_queries_read_by_get_only(view: DictState) -> None:
    assert MODULE.provable_queries == {"account", "key_at", "key_history", "params"}
    recorder = GetOnlyView(view)
    assert query(recorder, "account", did=CITIZENS[0].did) is not None
    assert query(recorder, "key_history", did=CITIZENS[0].did) is not None
    assert query(recorder, "key_at", did=CITIZENS[0].did, at_height=3) is not None
    assert query(recorder, "account", did=PrivateKey.from_secret("nobody").did) is None
    assert query(recorder, "params") is not None
    assert recorder.reads
