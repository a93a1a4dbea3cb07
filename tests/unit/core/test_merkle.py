"""The state tree scheme and its verifier: vectors, proof soundness, and plain-data round trips."""

from __future__ import annotations

from bisect import bisect_left
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core import codec
from citychain.core.merkle import (
    EMPTY_ROOT,
    Proof,
    ProofError,
    compute_root_from_items,
    internal_hash,
    leaf_hash,
    verify_proof,
)


def h(data: bytes) -> bytes:
    return sha256(data).digest()


def reference_proof(items: dict[bytes, bytes], key: bytes) -> Proof:
    """An independent, slow prover: walk the key's path over the sorted leaf set."""
    leaves = sorted((int.from_bytes(h(k), "big"), h(k), h(v)) for k, v in items.items())
    paths = [leaf[0] for leaf in leaves]
    target = int.from_bytes(h(key), "big")
    siblings: list[bytes] = []
    low, high, depth = 0, len(leaves), 0
    while high - low > 1:
        shift = 255 - depth
        split = bisect_left(paths, ((paths[low] >> shift) | 1) << shift, low, high)
        if (target >> shift) & 1:
            siblings.append(_root(leaves, low, split, depth + 1))
            low = split
        else:
            siblings.append(_root(leaves, split, high, depth + 1))
            high = split
        depth += 1
    siblings.reverse()
    if high - low == 1 and leaves[low][0] != target:
        return Proof(tuple(siblings), (leaves[low][1], leaves[low][2]))
    return Proof(tuple(siblings))


def _root(leaves: list[tuple[int, bytes, bytes]], low: int, high: int, depth: int) -> bytes:
    if low == high:
        return EMPTY_ROOT
    if high - low == 1:
        return leaf_hash(leaves[low][1], leaves[low][2])
    paths = [leaf[0] for leaf in leaves]
    shift = 255 - depth
    split = bisect_left(paths, ((paths[low] >> shift) | 1) << shift, low, high)
    return internal_hash(_root(leaves, low, split, depth + 1), _root(leaves, split, high,
                                                                      depth + 1))


keys = st.binary(min_size=0, max_size=4)
values = st.binary(min_size=0, max_size=6)
states = st.dictionaries(keys, values, max_size=24)


# ---------------------------------------------------------------- fixed vectors
def test_empty_tree_root_is_zero_bytes() -> None:
    assert compute_root_from_items([]) == bytes(32)


def test_single_key_root_is_its_leaf() -> None:
    assert compute_root_from_items({b"a": b"1"}) == h(b"\x00" + h(b"a") + h(b"1"))


def test_two_keys_vector() -> None:
    # sha256(b"a") starts with bit 1, sha256(b"b") with bit 0 (0xca.., 0x3e..): they split at
    # the root, "b" on the left.
    assert h(b"a")[0] >> 7 == 1 and h(b"b")[0] >> 7 == 0
    leaf_a = leaf_hash(h(b"a"), h(b"1"))
    leaf_b = leaf_hash(h(b"b"), h(b"2"))
    assert compute_root_from_items({b"a": b"1", b"b": b"2"}) == internal_hash(leaf_b, leaf_a)


@pytest.mark.parametrize(("items", "root"), [
    ({b"a": b"1"}, "565388d4bc00257133f799d9366ac97f6e949c18acc53d17457f8859ba0f08d3"),
    ({b"a": b"1", b"b": b"2"},
     "70a50295110313dd28320faccbee14d04dc2894e877a2e407115a2f337ed4efa"),
    ({bytes([i]): bytes([i]) * 3 for i in range(100)},
     "b7757c81ddcb3274470aa2b2c0dec1ac92ef8a99c5a22041e509e85be8a0d131"),
])
def test_root_vectors(items: dict[bytes, bytes], root: str) -> None:
    """Golden roots: changing them changes every app hash, so it needs a chain upgrade."""
    assert compute_root_from_items(items).hex() == root


def test_one_sided_subtree_keeps_an_empty_sibling() -> None:
    # Two keys whose paths share their first bit: the root has an empty child on the other side.
    items = {}
    first_bits: dict[int, list[bytes]] = {0: [], 1: []}
    for index in range(64):
        key = index.to_bytes(2, "big")
        first_bits[h(key)[0] >> 7].append(key)
    pair = first_bits[1][:2]
    for key in pair:
        items[key] = b"v"
    inner = compute_root_from_items(items)  # computed with the full 256-bit paths
    proof = reference_proof(items, pair[0])
    assert proof.siblings[-1] == EMPTY_ROOT
    assert verify_proof(inner, pair[0], b"v", proof)


def test_empty_value_differs_from_absent() -> None:
    assert compute_root_from_items({b"k": b""}) != EMPTY_ROOT


def test_invalid_duplicate_key_in_items() -> None:
    with pytest.raises(ValueError, match="twice"):
        compute_root_from_items([(b"k", b"1"), (b"k", b"2")])


def test_root_ignores_item_order() -> None:
    items = [(bytes([i]), bytes([i, i])) for i in range(50)]
    assert compute_root_from_items(items) == compute_root_from_items(list(reversed(items)))


# ---------------------------------------------------------------- proof soundness
@settings(max_examples=200, deadline=None)
@given(states, keys)
def test_reference_proofs_verify(items: dict[bytes, bytes], key: bytes) -> None:
    root = compute_root_from_items(items)
    proof = reference_proof(items, key)
    assert verify_proof(root, key, items.get(key), proof)


@settings(max_examples=200, deadline=None)
@given(states, keys, values)
def test_wrong_value_fails(items: dict[bytes, bytes], key: bytes, other: bytes) -> None:
    root = compute_root_from_items(items)
    proof = reference_proof(items, key)
    actual = items.get(key)
    if other != actual:
        assert not verify_proof(root, key, other, proof)
    if actual is not None:
        assert not verify_proof(root, key, None, proof)


@settings(max_examples=200, deadline=None)
@given(states, keys, keys)
def test_proof_for_another_key_fails(items: dict[bytes, bytes], key: bytes,
                                     other_key: bytes) -> None:
    root = compute_root_from_items(items)
    proof = reference_proof(items, key)
    if other_key == key:
        return
    claim = items.get(key)
    # The same proof cannot be used for another key with the first key's value...
    if claim is not None:
        assert not verify_proof(root, other_key, claim, proof)
    # ...and a non-membership proof only shows absence of keys on its path that it does not end at.
    if claim is None and verify_proof(root, other_key, None, proof):
        assert other_key not in items


@settings(max_examples=150, deadline=None)
@given(states, keys, values)
def test_proof_against_another_root_fails(items: dict[bytes, bytes], key: bytes,
                                          changed: bytes) -> None:
    proof = reference_proof(items, key)
    modified = dict(items)
    modified[key] = changed + b"!"
    other_root = compute_root_from_items(modified)
    assert not verify_proof(other_root, key, items.get(key), proof)


@settings(max_examples=200, deadline=None)
@given(states.filter(lambda items: len(items) >= 2), keys, st.data())
def test_mutated_proof_fails(items: dict[bytes, bytes], key: bytes, data: st.DataObject) -> None:
    root = compute_root_from_items(items)
    proof = reference_proof(items, key)
    value = items.get(key)
    siblings = list(proof.siblings)
    variants: list[Proof] = [
        Proof(tuple([*siblings, bytes(32)]), proof.other_leaf),  # extended
        Proof(tuple([*siblings, h(b"x")]), proof.other_leaf),
        Proof(tuple([h(b"x"), *siblings]), proof.other_leaf),
    ]
    if siblings:
        variants.append(Proof(tuple(siblings[1:]), proof.other_leaf))  # truncated
        variants.append(Proof(tuple(siblings[:-1]), proof.other_leaf))
        index = data.draw(st.integers(0, len(siblings) - 1))
        bit = data.draw(st.integers(0, 255))
        flipped = bytearray(siblings[index])
        flipped[bit // 8] ^= 1 << (bit % 8)
        variants.append(Proof(tuple([*siblings[:index], bytes(flipped), *siblings[index + 1:]]),
                              proof.other_leaf))
    if proof.other_leaf is not None:
        keyhash, valuehash = proof.other_leaf
        variants.append(Proof(proof.siblings, (keyhash, h(valuehash))))
        variants.append(Proof(proof.siblings, None))  # claim the path ends empty instead
    for variant in variants:
        assert not verify_proof(root, key, value, variant), variant


@settings(max_examples=100, deadline=None)
@given(states.filter(bool), st.data())
def test_non_membership_proof_cannot_deny_a_present_key(items: dict[bytes, bytes],
                                                         data: st.DataObject) -> None:
    root = compute_root_from_items(items)
    present = data.draw(st.sampled_from(sorted(items)))
    absent_key = present + b"\xff\xfe"
    if absent_key in items:
        return
    absence = reference_proof(items, absent_key)
    assert not verify_proof(root, present, None, absence)
    membership = reference_proof(items, present)
    assert not verify_proof(root, present, None, membership)
    assert not verify_proof(root, absent_key, items[present], membership)


def test_other_leaf_equal_to_the_key_is_refused() -> None:
    items = {b"a": b"1", b"b": b"2"}
    root = compute_root_from_items(items)
    proof = reference_proof(items, b"a")
    forged = Proof(proof.siblings, (h(b"a"), h(b"1")))
    assert not verify_proof(root, b"a", None, forged)


def test_verify_rejects_malformed_inputs() -> None:
    root = compute_root_from_items({b"a": b"1"})
    proof = Proof(())
    assert verify_proof(root, b"a", b"1", proof)
    assert not verify_proof(root[:31], b"a", b"1", proof)
    assert not verify_proof(root, "a", b"1", proof)  # type: ignore[arg-type]
    assert not verify_proof(root, b"a", "1", proof)  # type: ignore[arg-type]
    assert not verify_proof(root, b"a", b"1", "proof")  # type: ignore[arg-type]


# ---------------------------------------------------------------- plain data
@settings(max_examples=100, deadline=None)
@given(states, keys)
def test_proof_round_trips_through_the_codec(items: dict[bytes, bytes], key: bytes) -> None:
    proof = reference_proof(items, key)
    value = proof.to_value()
    assert Proof.from_value(codec.decode(codec.encode(value))) == proof


@pytest.mark.parametrize("value", [
    None, [], {"siblings": []}, {"siblings": [], "other_leaf": [], "extra": 1},
    {"siblings": "x", "other_leaf": []}, {"siblings": [b"short"], "other_leaf": []},
    {"siblings": [], "other_leaf": [bytes(32)]}, {"siblings": [], "other_leaf": [1, 2]},
    {"siblings": [bytes(32)] * 257, "other_leaf": []}, {"siblings": [], "other_leaf": None},
])
def test_invalid_proof_value(value: object) -> None:
    with pytest.raises(ProofError) as info:
        Proof.from_value(value)
    assert (info.value.codespace, info.value.code) == ("store", 1)


def test_invalid_proof_constructed_directly() -> None:
    with pytest.raises(ProofError):
        Proof((b"x",))
    with pytest.raises(ProofError):
        Proof([bytes(32)])  # type: ignore[arg-type]
