"""Bank queries: answers, parameter errors naming the field, pagination, provability."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from citychain.core.context import BlockContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidQueryError
from citychain.modules.bank.genesis import init_genesis as init_bank
from citychain.modules.bank.module import MODULE
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.testing.state import DictState

GENESIS = BlockContext("citychain-test", 0, 0)
ALICE = PrivateKey.from_secret("bank-queries/alice")
BOB = PrivateKey.from_secret("bank-queries/bob")
DENOMS = ["ucity", "uvoucher", "ubike", "upark", "uzzx"]


class GetOnlyView:
    """A read view that refuses range reads, as a client re-running a proven query does."""

    def __init__(self, inner: DictState) -> None:
        self.inner = inner

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError("a provable query must not read ranges")


@pytest.fixture
def view() -> DictState:
    view = DictState()
    init_identity(view, GENESIS, {"accounts": [{"pubkey": k.public_key.hex()}
                                               for k in (ALICE, BOB)]})
    init_bank(view, GENESIS, {
        "denoms": [{"denom": d, "display_name": d.upper(), "decimals": 2} for d in DENOMS],
        "balances": [{"address": ALICE.address, "denom": "uvoucher", "amount": 5},
                     {"address": ALICE.address, "denom": "ucity", "amount": 70},
                     {"address": BOB.address, "denom": "ucity", "amount": 30}],
    })
    return view


def query(view: Any, name: str, **params: Any) -> Any:
    return MODULE.queries[name](view, params)


def test_balance(view: DictState) -> None:
    assert query(view, "balance", address=ALICE.address, denom="ucity") == {
        "address": ALICE.address, "did": ALICE.did, "denom": "ucity", "amount": 70}
    assert query(view, "balance", did=BOB.did, denom="uvoucher")["amount"] == 0
    assert query(view, "balance", did=BOB.did, denom="unknown")["amount"] == 0


def test_balances(view: DictState) -> None:
    assert query(view, "balances", did=ALICE.did) == {
        "address": ALICE.address, "did": ALICE.did,
        "balances": [{"denom": "ucity", "amount": 70}, {"denom": "uvoucher", "amount": 5}]}
    stranger = PrivateKey.from_secret("nobody")
    assert query(view, "balances", address=stranger.address)["balances"] == []


def test_supply(view: DictState) -> None:
    assert query(view, "supply", denom="ucity") == {"denom": "ucity", "amount": 100}
    assert query(view, "supply", denom="ubike") == {"denom": "ubike", "amount": 0}
    assert query(view, "supply", denom="ugold") is None


def test_denoms_paginate_in_key_order(view: DictState) -> None:
    # Key order: shorter ids first (length-prefixed), then alphabetical.
    expected = sorted(DENOMS, key=lambda d: (len(d), d))
    page = query(view, "denoms", limit=2)
    assert [d["denom"] for d in page["denoms"]] == expected[:2]
    seen = [d["denom"] for d in page["denoms"]]
    while page["next_start_after"] is not None:
        page = query(view, "denoms", limit=2, start_after=page["next_start_after"])
        seen.extend(d["denom"] for d in page["denoms"])
    assert seen == expected
    first = query(view, "denoms")["denoms"][0]
    assert first == {"denom": "uzzx", "display_name": "UZZX", "decimals": 2, "creator": "",
                     "created_height": 0}


def test_params(view: DictState) -> None:
    assert query(view, "params") == {"transfers_enabled": True}


@pytest.mark.parametrize(("name", "params", "field"), [
    ("balance", {"address": ALICE.address}, "denom"),
    ("balance", {"denom": "ucity"}, "address"),
    ("balance", {"denom": "ucity", "address": ALICE.address, "did": ALICE.did}, "address"),
    ("balance", {"denom": "UCITY", "address": ALICE.address}, "denom"),
    ("balance", {"denom": "ucity", "address": "alice"}, "address"),
    ("balance", {"denom": "ucity", "did": ALICE.address}, "did"),
    ("balances", {"address": ALICE.address, "denom": "ucity"}, "denom"),
    ("supply", {}, "denom"),
    ("supply", {"denom": 7}, "denom"),
    ("denoms", {"limit": 0}, "limit"),
    ("denoms", {"limit": "10"}, "limit"),
    ("denoms", {"start_after": "X"}, "start_after"),
    ("params", {"x": 1}, "x"),
])
def test_invalid_query_params(view: DictState, name: str, params: dict[str, Any],
                              field: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        MODULE.queries[name](view, params)
    assert type(caught.value) is InvalidQueryError
    assert caught.value.field == field


def test_provable_queries_read_by_get_only(view: DictState) -> None:
    assert MODULE.provable_queries == {"balance", "supply", "params"}
    reads = GetOnlyView(view)
    assert query(reads, "balance", did=ALICE.did, denom="ucity")["amount"] == 70
    assert query(reads, "supply", denom="ucity")["amount"] == 100
    assert query(reads, "supply", denom="ugold") is None
    assert query(reads, "params") == {"transfers_enabled": True}
