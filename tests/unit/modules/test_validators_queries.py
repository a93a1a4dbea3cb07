"""Validators queries: answers as plain data, absent records, pagination, bad parameters."""

from __future__ import annotations

from typing import Any

import pytest

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidQueryError
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.modules.validators import queries
from citychain.modules.validators.genesis import init_genesis as init_validators
from citychain.modules.validators.messages import MsgProposeValidatorChange
from citychain.modules.validators.module import MODULE
from citychain.testing.state import DictState

GENESIS = BlockContext("citychain-test", 0, 0)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_secret(f"validators-queries/{name}")


A, B = key("a"), key("b")
VA, VB = key("va"), key("vb")
NEW = tuple(key(f"new-{i}") for i in range(4))


@pytest.fixture
def view() -> DictState:
    view = DictState()
    init_identity(view, GENESIS, {"accounts": [
        {"pubkey": A.public_key.hex(), "roles": ["validator-org"]},
        {"pubkey": B.public_key.hex(), "roles": ["validator-org"]}]})
    init_validators(view, GENESIS, {"validators": [
        {"pubkey": VA.public_key.hex(), "power": 500, "organisation": A.did, "name": "a"},
        {"pubkey": VB.public_key.hex(), "power": 500, "organisation": B.did, "name": "b"}]})
    for val in NEW:
        MODULE.handlers[MsgProposeValidatorChange](
            view, TxContext(BlockContext("c", 3, 0), A.address),
            MsgProposeValidatorChange("add", val.public_key, 10, B.did, "n"))
    return view


def test_validators(view: DictState) -> None:
    answer = queries.query_validators(view, {})
    ordered = sorted((VA, VB), key=lambda k: k.public_key)
    assert [v["pubkey"] for v in answer["validators"]] == [k.public_key.hex() for k in ordered]
    assert answer["total_power"] == 1000
    assert answer["validators"][0].keys() == {"pubkey", "power", "organisation", "name"}


def test_validator(view: DictState) -> None:
    assert queries.query_validator(view, {"pubkey": VA.public_key.hex()}) == {
        "pubkey": VA.public_key.hex(), "power": 500, "organisation": A.did, "name": "a"}
    assert queries.query_validator(view, {"pubkey": NEW[0].public_key.hex()}) is None


def test_proposal(view: DictState) -> None:
    answer = queries.query_proposal(view, {"id": 2})
    assert answer is not None
    assert answer["id"] == 2
    assert answer["status"] == "open"
    assert answer["approvals"] == [A.did]
    assert answer["pubkey"] == NEW[1].public_key.hex()
    assert queries.query_proposal(view, {"id": 99}) is None


def test_proposals_paginate_in_id_order(view: DictState) -> None:
    first = queries.query_proposals(view, {"limit": 3})
    assert [p["id"] for p in first["proposals"]] == [1, 2, 3]
    assert first["next_start_after"] == 3
    rest = queries.query_proposals(view, {"start_after": 3})
    assert [p["id"] for p in rest["proposals"]] == [4]
    assert rest["next_start_after"] is None


def test_params(view: DictState) -> None:
    assert queries.query_params(view, {}) == {"voting_period_blocks": 100}


@pytest.mark.parametrize(("query", "params", "field"), [
    (queries.query_validators, {"x": 1}, "x"),
    (queries.query_validator, {}, "pubkey"),
    (queries.query_validator, {"pubkey": "ab"}, "pubkey"),
    (queries.query_validator, {"pubkey": "AB" * 32}, "pubkey"),
    (queries.query_validator, {"pubkey": "zz" * 32}, "pubkey"),
    (queries.query_validator, {"pubkey": 5}, "pubkey"),
    (queries.query_proposal, {"id": 0}, "id"),
    (queries.query_proposal, {"id": "1"}, "id"),
    (queries.query_proposals, {"limit": 0}, "limit"),
    (queries.query_proposals, {"start_after": -1}, "start_after"),
    (queries.query_params, {"x": 1}, "x"),
])
def test_invalid_query_params(view: DictState, query: Any, params: dict[str, Any],
                              field: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        query(view, params)
    assert caught.value.field == field


def test_provable_queries_read_by_get_only() -> None:
    assert frozenset({"validator", "proposal", "params"}) == MODULE.provable_queries
