"""Proofs served by the stores: sound at every height, encodable, and refused when tampered."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import ALPHABET, both_stores, close_all, commit_writes, keys, values

from citychain.core import codec
from citychain.core.merkle import EMPTY_ROOT, Proof, compute_root_from_items, verify_proof
from citychain.store import MemoryStore

histories = st.lists(st.dictionaries(keys, st.one_of(st.none(), values), max_size=16),
                     min_size=1, max_size=5)


@settings(max_examples=80, deadline=None)
@given(histories, st.lists(keys, max_size=6), values)
def test_proofs_at_every_height_are_sound(history: list[dict[bytes, bytes | None]],
                                          probes: list[bytes], wrong: bytes) -> None:
    stores = both_stores()
    states: list[dict[bytes, bytes]] = []
    state: dict[bytes, bytes] = {}
    try:
        for height, writes in enumerate(history, start=1):
            for key, value in writes.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            states.append(dict(state))
            for store in stores:
                commit_writes(store, height, writes)
        for height, expected in enumerate(states, start=1):
            root = compute_root_from_items(expected)
            proofs = []
            for key in sorted(set(expected) | set(probes) | set(ALPHABET[:4])):
                results = [store.prove(key, height) for store in stores]
                assert results[0] == results[1]  # both stores serve the same proof
                value, proof = results[0]
                proofs.append((key, value, proof))
                assert value == expected.get(key)
                assert verify_proof(root, key, value, proof)
                assert Proof.from_value(codec.decode(codec.encode(proof.to_value()))) == proof
                if wrong != value:
                    assert not verify_proof(root, key, wrong, proof)
                if value is not None:
                    assert not verify_proof(root, key, None, proof)
                other_root = store_root_after_change(expected, key)
                assert not verify_proof(other_root, key, value, proof)
            for key, _value, proof in proofs:
                for other_key, other_value, _ in proofs:
                    if other_key != key and other_value is not None:
                        assert not verify_proof(root, other_key, other_value, proof)
    finally:
        close_all(stores)


def store_root_after_change(state: dict[bytes, bytes], key: bytes) -> bytes:
    changed = dict(state)
    changed[key] = changed.get(key, b"") + b"*"
    return compute_root_from_items(changed)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, values, min_size=2, max_size=30), st.data())
def test_mutated_sibling_fails(state: dict[bytes, bytes], data: st.DataObject) -> None:
    store = MemoryStore()
    working = store.begin()
    for key, value in state.items():
        working.set(key, value)
    root = store.commit(working, 1)
    key = data.draw(st.sampled_from(sorted(state)))
    value, proof = store.prove(key)
    assert verify_proof(root, key, value, proof)
    index = data.draw(st.integers(0, len(proof.siblings) - 1))
    bit = data.draw(st.integers(0, 255))
    sibling = bytearray(proof.siblings[index])
    sibling[bit // 8] ^= 1 << (bit % 8)
    siblings = list(proof.siblings)
    siblings[index] = bytes(sibling)
    assert not verify_proof(root, key, value, Proof(tuple(siblings)))
    assert not verify_proof(root, key, value, Proof(proof.siblings[1:]))
    assert not verify_proof(root, key, value, Proof((*proof.siblings, EMPTY_ROOT)))


def test_proof_depth_is_logarithmic() -> None:
    store = MemoryStore()
    working = store.begin()
    for index in range(4096):
        working.set(index.to_bytes(4, "big"), b"v")
    store.commit(working, 1)
    depths = [len(store.prove(index.to_bytes(4, "big"))[1].siblings) for index in range(256)]
    assert 10 <= sum(depths) / len(depths) <= 16  # log2(4096) = 12, plus ~1.3 on average
    assert max(depths) <= 30


def test_absent_key_proof_kinds() -> None:
    store = MemoryStore()
    empty_value, empty_proof = store.prove(b"a")
    assert (empty_value, empty_proof) == (None, Proof(()))
    assert verify_proof(EMPTY_ROOT, b"a", None, empty_proof)
    working = store.begin()
    for index in range(64):
        working.set(bytes([index]), b"v")
    root = store.commit(working, 1)
    kinds = set()
    for index in range(64, 256):
        value, proof = store.prove(bytes([index]))
        assert value is None and verify_proof(root, bytes([index]), None, proof)
        kinds.add(proof.other_leaf is None)
    assert kinds == {True, False}  # both an empty end and another key's leaf occur
