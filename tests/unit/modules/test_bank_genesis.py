"""Bank genesis: loading, errors naming the field path, export -> init round trip (with the
identity section), and determinism (the same writes whatever the order of the input)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core.context import BlockContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import ChainError, InvalidGenesisError
from citychain.modules.bank import api, state
from citychain.modules.bank.genesis import export_genesis, init_genesis
from citychain.modules.bank.types import MAX_AMOUNT, Denom
from citychain.modules.identity.genesis import export_genesis as export_identity
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.testing.state import DictState

GENESIS = BlockContext("citychain-test", 0, 0)
KEYS = [PrivateKey.from_secret(f"bank-genesis/{i}") for i in range(5)]
A, B = KEYS[0], KEYS[1]
STRANGER = PrivateKey.from_secret("bank-genesis/stranger")
UCITY = {"denom": "ucity", "display_name": "City credit", "decimals": 6}


class RecordingState(DictState):
    """A DictState that remembers the order of its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def set(self, key: bytes, value: bytes) -> None:
        self.writes.append(key)
        super().set(key, value)


def with_identities(view: DictState | None = None) -> DictState:
    view = view if view is not None else DictState()
    init_identity(view, GENESIS, {"accounts": [{"pubkey": k.public_key.hex(),
                                                "roles": ["treasury"]} for k in KEYS]})
    return view


def test_section_loads_and_computes_supply() -> None:
    view = with_identities()
    init_genesis(view, GENESIS, {
        "params": {"transfers_enabled": False},
        "denoms": [UCITY, {"denom": "uvoucher", "display_name": "Voucher", "decimals": 0,
                           "creator": A.address, "created_height": 0}],
        "balances": [{"address": A.address, "denom": "ucity", "amount": 7},
                     {"address": B.address, "denom": "ucity", "amount": 5},
                     {"address": B.address, "denom": "uvoucher", "amount": 1}],
    })
    assert api.get_supply(view, "ucity") == 12
    assert api.get_supply(view, "uvoucher") == 1
    assert api.get_balance(view, B.address, "ucity") == 5
    assert state.get_denom(view, "uvoucher") == Denom("uvoucher", "Voucher", 0, A.address, 0)
    assert state.get_params(view).transfers_enabled is False
    assert api.check_supply_invariant(view) == []


def test_empty_section() -> None:
    view = DictState()
    init_genesis(view, GENESIS, {})
    assert export_genesis(view) == {"params": {"transfers_enabled": True}, "denoms": [],
                                    "balances": [], "escrows": []}


P = "app_state.bank"
INVALID: list[tuple[Any, str]] = [
    ("x", P),
    ({"supply": []}, f"{P}.supply"),
    ({"params": {"transfers_enabled": "yes"}}, f"{P}.params.transfers_enabled"),
    ({"params": {"send": True}}, f"{P}.params.send"),
    ({"denoms": {}}, f"{P}.denoms"),
    ({"denoms": [{"denom": "ucity", "display_name": "x"}]}, f"{P}.denoms[0].decimals"),
    ({"denoms": [{**UCITY, "denom": "UC"}]}, f"{P}.denoms[0].denom"),
    ({"denoms": [{**UCITY, "display_name": ""}]}, f"{P}.denoms[0].display_name"),
    ({"denoms": [{**UCITY, "decimals": 19}]}, f"{P}.denoms[0].decimals"),
    ({"denoms": [{**UCITY, "creator": "me"}]}, f"{P}.denoms[0].creator"),
    ({"denoms": [{**UCITY, "symbol": "C"}]}, f"{P}.denoms[0].symbol"),
    ({"denoms": [UCITY, UCITY]}, f"{P}.denoms[1].denom"),
    ({"denoms": [UCITY], "balances": [{"address": A.address, "denom": "ucity"}]},
     f"{P}.balances[0].amount"),
    ({"denoms": [UCITY], "balances": [{"address": A.address, "denom": "ucity", "amount": 0}]},
     f"{P}.balances[0].amount"),
    ({"denoms": [UCITY], "balances": [{"address": A.address, "denom": "ucity",
                                       "amount": MAX_AMOUNT + 1}]}, f"{P}.balances[0].amount"),
    ({"denoms": [UCITY], "balances": [{"address": A.address, "denom": "ugold", "amount": 1}]},
     f"{P}.balances[0].denom"),
    ({"denoms": [UCITY], "balances": [{"address": "A", "denom": "ucity", "amount": 1}]},
     f"{P}.balances[0].address"),
    ({"denoms": [UCITY], "balances": [{"address": STRANGER.address, "denom": "ucity",
                                       "amount": 1}]}, f"{P}.balances[0].address"),
    ({"denoms": [UCITY], "balances": [{"address": A.address, "denom": "ucity", "amount": 1},
                                      {"address": A.address, "denom": "ucity", "amount": 2}]},
     f"{P}.balances[1]"),
    ({"denoms": [UCITY], "balances": [
        {"address": A.address, "denom": "ucity", "amount": MAX_AMOUNT},
        {"address": B.address, "denom": "ucity", "amount": 1}]}, f"{P}.balances[1].amount"),
]


@pytest.mark.parametrize(("section", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_genesis(section: Any, field: str) -> None:
    view = with_identities()
    before = view.snapshot()
    with pytest.raises(InvalidGenesisError) as caught:
        init_genesis(view, GENESIS, section)
    assert type(caught.value) is InvalidGenesisError
    assert caught.value.field == field
    assert view.snapshot() == before


# ------------------------------------------------------------------ round trip
transfers = st.lists(st.tuples(st.integers(0, len(KEYS) - 1), st.integers(0, len(KEYS) - 1),
                               st.sampled_from(["ucity", "uvoucher"]), st.integers(1, 400)),
                     max_size=25)


@settings(max_examples=60, deadline=None)
@given(minted=st.lists(st.integers(0, 1_000), min_size=len(KEYS), max_size=len(KEYS)),
       moves=transfers, burns=st.lists(st.integers(0, 300), max_size=3))
def test_export_then_init_reproduces_state(minted: list[int],
                                           moves: list[tuple[int, int, str, int]],
                                           burns: list[int]) -> None:
    view = with_identities()
    init_genesis(view, GENESIS, {"denoms": [UCITY, {"denom": "uvoucher",
                                                    "display_name": "Voucher",
                                                    "decimals": 0}]})
    for key, amount in zip(KEYS, minted, strict=True):
        if amount:
            api.mint(view, key.address, "ucity", amount)
    for sender, recipient, denom, amount in moves:
        with contextlib.suppress(ChainError):
            api.transfer(view, KEYS[sender].address, KEYS[recipient].address, denom, amount)
    for amount in burns:
        with contextlib.suppress(ChainError):
            api.burn(view, A.address, "ucity", amount)
    section = json.loads(json.dumps({"identity": export_identity(view),
                                     "bank": export_genesis(view)}))
    again = DictState()
    init_identity(again, GENESIS, section["identity"])
    init_genesis(again, GENESIS, section["bank"])
    assert again.snapshot() == view.snapshot()
    assert export_genesis(again) == section["bank"]


# ------------------------------------------------------------------ determinism
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_same_writes_whatever_the_input_order(data: st.DataObject) -> None:
    denoms = [UCITY, {"denom": "uvoucher", "display_name": "V", "decimals": 0},
              {"denom": "ubike", "display_name": "B", "decimals": 2}]
    balances = [{"address": k.address, "denom": d["denom"], "amount": 1 + i}
                for i, (k, d) in enumerate((k, d) for k in KEYS for d in denoms)]
    shuffled = {"denoms": data.draw(st.permutations(denoms)),
                "balances": data.draw(st.permutations(balances))}
    first, second = RecordingState(), RecordingState()
    with_identities(first)
    with_identities(second)
    first.writes.clear()
    second.writes.clear()
    init_genesis(first, GENESIS, {"denoms": denoms, "balances": balances})
    init_genesis(second, GENESIS, shuffled)
    assert first.writes == second.writes
    assert first.snapshot() == second.snapshot()
