"""The simple Merkle tree (tx roots, reading batches) against RFC 6962's recursive definition."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core.simple_merkle import inclusion_proof, merkle_root, verify_inclusion


def rfc6962_root(items: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1, written as the RFC states it."""
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return hashlib.sha256(b"\x00" + items[0]).digest()
    k = 1
    while k * 2 < len(items):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_root(items[:k]) + rfc6962_root(items[k:])).digest()


def test_every_length_up_to_300_has_the_rfc_root() -> None:
    items = [bytes([n % 256, n // 256]) for n in range(300)]
    for length in range(301):
        assert merkle_root(items[:length]) == rfc6962_root(items[:length]), length


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70, unique=True), st.data())
def test_inclusion_proofs_verify_against_the_root_and_fail_when_tampered(
        items: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(items) - 1))
    root = merkle_root(items)
    assert root == rfc6962_root(items)
    proof = inclusion_proof(items, index)
    assert verify_inclusion(root, items[index], index, len(items), proof)
    assert not verify_inclusion(root, items[index] + b"x", index, len(items), proof)
    if len(items) > 1:
        assert not verify_inclusion(root, items[index], (index + 1) % len(items), len(items),
                                    proof)
