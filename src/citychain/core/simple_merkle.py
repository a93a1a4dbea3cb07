"""Simple binary Merkle tree over a list (RFC 6962 shape, as CometBFT hashes txs into data_hash).

leaf = sha256(0x00 || item), inner = sha256(0x01 || left || right), empty list = sha256(b"");
the split point is the largest power of two smaller than the list length. Used for the tx root
and results root of solo blocks and for tx inclusion proofs.
"""

from __future__ import annotations

from citychain.core.hashing import sha256

_LEAF = b"\x00"
_INNER = b"\x01"


def leaf_hash(item: bytes) -> bytes:
    return sha256(_LEAF + item)


def inner_hash(left: bytes, right: bytes) -> bytes:
    return sha256(_INNER + left + right)


def _split_point(length: int) -> int:
    return 1 << ((length - 1).bit_length() - 1)


def merkle_root(items: list[bytes]) -> bytes:
    """Return the root of ``items`` (sha256 of nothing for an empty list)."""
    if not items:
        return sha256(b"")
    return _root([leaf_hash(item) for item in items])


def _root(hashes: list[bytes]) -> bytes:
    """The root over leaf hashes, level by level: adjacent pairs joined, an odd last node
    carried up as it is. This is the same tree as the split at the largest power of two below
    the length (the left part is always a full tree, so its pairs never straddle the split),
    in one loop instead of a recursion and a list copy per node."""
    while len(hashes) > 1:
        level = [sha256(_INNER + hashes[index] + hashes[index + 1])
                 for index in range(0, len(hashes) - 1, 2)]
        if len(hashes) % 2:
            level.append(hashes[-1])
        hashes = level
    return hashes[0]


def inclusion_proof(items: list[bytes], index: int) -> list[bytes]:
    """Return the aunts (sibling hashes, leaf level first) proving ``items[index]``."""
    if not 0 <= index < len(items):
        raise IndexError(f"index {index} outside a list of {len(items)}")
    aunts: list[bytes] = []
    _collect([leaf_hash(item) for item in items], index, aunts)
    return aunts


def _collect(hashes: list[bytes], index: int, aunts: list[bytes]) -> None:
    if len(hashes) == 1:
        return
    split = _split_point(len(hashes))
    if index < split:
        _collect(hashes[:split], index, aunts)
        aunts.append(_root(hashes[split:]))
    else:
        _collect(hashes[split:], index - split, aunts)
        aunts.append(_root(hashes[:split]))


def verify_inclusion(root: bytes, item: bytes, index: int, total: int,
                     aunts: list[bytes]) -> bool:
    """Return whether ``item`` is element ``index`` of a ``total``-long list with ``root``."""
    if not 0 <= index < total:
        return False
    computed = _from_aunts(leaf_hash(item), index, total, list(aunts))
    return computed is not None and computed == root


def _from_aunts(node: bytes, index: int, total: int, aunts: list[bytes]) -> bytes | None:
    if total == 1:
        return node if not aunts else None
    if not aunts:
        return None
    split = _split_point(total)
    last = aunts[-1]
    if index < split:
        left = _from_aunts(node, index, split, aunts[:-1])
        return None if left is None else inner_hash(left, last)
    right = _from_aunts(node, index - split, total - split, aunts[:-1])
    return None if right is None else inner_hash(last, right)
