"""Bank invariants under random operations: supply equals the sum of balances, balances never go
negative, a failing operation changes nothing, and each success moves exactly what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core.context import BlockContext, TxContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import ChainError
from citychain.core.messages import Msg
from citychain.modules.bank import api, state
from citychain.modules.bank.genesis import init_genesis as init_bank
from citychain.modules.bank.messages import MsgBurn, MsgCreateDenom, MsgMint, MsgTransfer
from citychain.modules.bank.module import MODULE
from citychain.modules.bank.types import MAX_AMOUNT
from citychain.modules.identity.genesis import init_genesis as init_identity
from citychain.testing.state import DictState

GENESIS = BlockContext("citychain-test", 0, 0)
BLOCK = BlockContext("citychain-test", 1, 0)
NAMES = ["treasury", "alice", "bob", "suspended", "sus-treasury", "stranger"]
KEYS = [PrivateKey.from_secret(f"bank-invariants/{name}") for name in NAMES]
DENOMS = ["ucity", "uvoucher", "ubike", "ugold"]  # ubike/ugold exist only once created


def fresh_view() -> DictState:
    view = DictState()
    suspension = {"reason": "case", "height": 0, "by": KEYS[0].address}
    init_identity(view, GENESIS, {"accounts": [
        {"pubkey": KEYS[0].public_key.hex(), "roles": ["treasury"]},
        {"pubkey": KEYS[1].public_key.hex(), "roles": ["citizen"]},
        {"pubkey": KEYS[2].public_key.hex(), "roles": ["treasury", "citizen"]},
        {"pubkey": KEYS[3].public_key.hex(), "suspension": suspension},
        {"pubkey": KEYS[4].public_key.hex(), "roles": ["treasury"], "suspension": suspension},
    ]})
    init_bank(view, GENESIS, {
        "denoms": [{"denom": "ucity", "display_name": "City credit", "decimals": 6},
                   {"denom": "uvoucher", "display_name": "Voucher", "decimals": 0}],
        "balances": [{"address": KEYS[0].address, "denom": "ucity", "amount": 10_000},
                     {"address": KEYS[1].address, "denom": "ucity", "amount": 500},
                     {"address": KEYS[3].address, "denom": "uvoucher", "amount": 9}],
    })
    return view


# Weighted towards operations that succeed, with enough failing ones to exercise every error.
amounts = st.one_of(st.integers(1, 2_000), st.integers(1, 200), st.integers(1, 200),
                    st.integers(1, 20), st.integers(1, 20), st.integers(1, 20),
                    st.integers(-3, 3),
                    st.sampled_from([MAX_AMOUNT, MAX_AMOUNT - 1, MAX_AMOUNT + 1, 2**64]),
                    st.integers(-(2**64), 2**64))
people = st.sampled_from([0, 0, 1, 1, 2, 2, 3, 4, 5])  # indexes into KEYS
operations = st.tuples(st.sampled_from(["mint", "mint", "burn", "transfer", "transfer",
                                        "transfer", "create"]),
                       people, people,
                       st.sampled_from(["ucity", "ucity", "uvoucher", "uvoucher", "ubike",
                                        "ugold"]),
                       amounts)


def message(kind: str, target: PrivateKey, denom: str, amount: int) -> Msg:
    # Built without validate_basic, so out-of-range amounts reach the handlers too.
    if kind == "mint":
        return MsgMint(target.did, denom, amount)
    if kind == "burn":
        return MsgBurn(denom, amount)
    if kind == "transfer":
        return MsgTransfer(target.did, denom, amount)
    return MsgCreateDenom(denom, denom.upper(), 0)


def balances(view: DictState) -> dict[tuple[str, str], int]:
    return {(address, denom): amount for address, denom, amount in state.iter_all_balances(view)}


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(operations, min_size=5, max_size=50))
def test_supply_is_conserved(ops: list[tuple[str, int, int, str, int]]) -> None:
    view = fresh_view()
    for kind, sender_index, target_index, denom, amount in ops:
        sender, target = KEYS[sender_index], KEYS[target_index]
        msg = message(kind, target, denom, amount)
        before, before_balances = view.snapshot(), balances(view)
        before_supply = api.get_supply(view, denom)
        try:
            MODULE.handlers[type(msg)](view, TxContext(BLOCK, sender.address), msg)
        except ChainError:
            assert view.snapshot() == before
            continue
        after = balances(view)
        assert all(value > 0 for value in after.values())
        assert api.check_supply_invariant(view) == []
        supply = api.get_supply(view, denom)
        if kind == "mint":
            assert 0 < amount <= MAX_AMOUNT
            assert supply == before_supply + amount
            assert api.get_balance(view, target.address, denom) == (
                before_balances.get((target.address, denom), 0) + amount)
        elif kind == "burn":
            assert supply == before_supply - amount
            assert api.get_balance(view, sender.address, denom) == (
                before_balances.get((sender.address, denom), 0) - amount)
        elif kind == "transfer":
            assert supply == before_supply
            if sender != target:
                assert api.get_balance(view, target.address, denom) == (
                    before_balances.get((target.address, denom), 0) + amount)
                assert api.get_balance(view, sender.address, denom) == (
                    before_balances.get((sender.address, denom), 0) - amount)
            else:
                assert after == before_balances
        else:
            assert after == before_balances
            assert api.denom_exists(view, denom)


SCENARIO = """
import hashlib, sys
sys.path.insert(0, {path!r})
import test_bank_invariants as t
from citychain.core.context import TxContext
from citychain.modules.bank.module import MODULE
view = t.fresh_view()
for kind, s, d, denom, amount in [("create", 0, 0, "ubike", 0), ("mint", 2, 1, "ubike", 40),
                                  ("transfer", 1, 0, "ubike", 15), ("burn", 0, 0, "ucity", 3),
                                  ("transfer", 0, 2, "ucity", 99)]:
    msg = t.message(kind, t.KEYS[d], denom, amount)
    MODULE.handlers[type(msg)](view, TxContext(t.BLOCK, t.KEYS[s].address), msg)
digest = hashlib.sha256()
for key, value in sorted(view.snapshot().items()):
    digest.update(len(key).to_bytes(2, "big") + key + len(value).to_bytes(4, "big") + value)
print(digest.hexdigest())
"""


def test_same_state_under_different_hash_seeds() -> None:
    """No set or dict order leaks into state: one scenario, three hash seeds, one state."""
    code = SCENARIO.format(path=str(Path(__file__).parent))
    digests = set()
    for seed in ("0", "1", "12345"):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        digests.add(result.stdout.strip())
    assert len(digests) == 1
