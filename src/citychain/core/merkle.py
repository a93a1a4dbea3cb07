"""The state tree scheme: a compressed binary sparse Merkle tree, its proofs and a pure verifier.

Every key sits on the 256-bit path ``keyhash = sha256(key)`` (bit 0 is the most significant bit
of the first byte; a 0 bit goes left). A leaf is placed at the shortest prefix of its path that no
other key shares, so the tree is about log2(n) deep::

    leaf      = sha256(0x00 || keyhash || sha256(value))
    internal  = sha256(0x01 || left || right)
    empty     = 32 zero bytes (an empty subtree, and the root of an empty tree)

A subtree holding exactly one leaf is that leaf's hash itself (no chain of internal nodes over
empty siblings). A subtree holding two or more leaves is an internal node, even when all of them
lie on one side (the other child is then ``empty``). The root is the root app hash; the stores in
``citychain.store`` keep this tree on disk, and this module is the reference they are tested
against. See docs/adr/0002-authenticated-state.md.

This module is pure: standard library and :mod:`citychain.core.hashing` only, so light clients
can verify answers without a database.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from citychain.core.errors import ChainError
from citychain.core.hashing import EMPTY_HASH, HASH_SIZE, sha256

__all__ = [
    "EMPTY_ROOT",
    "KEY_BITS",
    "Proof",
    "ProofError",
    "compute_root_from_items",
    "internal_hash",
    "key_hash",
    "leaf_hash",
    "value_hash",
    "verify_proof",
]

EMPTY_ROOT = EMPTY_HASH
KEY_BITS = 8 * HASH_SIZE  # path length: a proof never has more siblings than this

LEAF_PREFIX = b"\x00"
INTERNAL_PREFIX = b"\x01"


class ProofError(ChainError):
    """A proof is malformed (wrong shape, wrong sizes); a well-formed but wrong proof is not an
    error, :func:`verify_proof` just returns False."""

    codespace = "store"
    code = 1
    description = "proof is malformed"


def key_hash(key: bytes) -> bytes:
    """Return the 256-bit tree path of ``key``."""
    return sha256(key)


def value_hash(value: bytes) -> bytes:
    """Return the hash a leaf commits to for ``value``."""
    return sha256(value)


def leaf_hash(keyhash: bytes, valuehash: bytes) -> bytes:
    """Return the hash of the leaf for a key (by its path) and a value (by its hash)."""
    return sha256(LEAF_PREFIX + keyhash + valuehash)


def internal_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an internal node from its children's hashes."""
    return sha256(INTERNAL_PREFIX + left + right)


@dataclass(frozen=True)
class Proof:
    """A membership or non-membership proof for one key.

    ``siblings`` are the hashes of the subtrees beside the key's path, **ordered from the leaf
    up to the root**: ``siblings[0]`` is the sibling of the deepest node on the path (the node at
    depth ``len(siblings)``, where the path ends), ``siblings[-1]`` is the root's child on the
    other side of bit 0. ``siblings[i]`` therefore sits at depth ``len(siblings) - i``, on the
    opposite side of bit ``len(siblings) - 1 - i`` of the key's path. An empty sibling is
    ``EMPTY_ROOT`` (32 zero bytes).

    The path ends in one of three ways:

    * at the key's own leaf (membership: ``other_leaf`` is None and the value is given);
    * at an empty subtree (non-membership, ``other_leaf`` None);
    * at the leaf of another key whose path shares the first ``len(siblings)`` bits
      (non-membership: ``other_leaf`` is that leaf's ``(keyhash, valuehash)``).

    Raises:
        ProofError: a sibling or hash is not 32 bytes, or there are more than 256 siblings.
    """

    siblings: tuple[bytes, ...]
    other_leaf: tuple[bytes, bytes] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.siblings, tuple):
            raise ProofError("proof siblings must be a tuple of hashes", field="siblings")
        if len(self.siblings) > KEY_BITS:
            raise ProofError(f"proof has {len(self.siblings)} siblings; a path has at most "
                             f"{KEY_BITS}", field="siblings")
        for index, sibling in enumerate(self.siblings):
            if type(sibling) is not bytes or len(sibling) != HASH_SIZE:
                raise ProofError(f"sibling {index} is not a {HASH_SIZE}-byte hash",
                                 field=f"siblings[{index}]")
        if self.other_leaf is not None:
            if not isinstance(self.other_leaf, tuple) or len(self.other_leaf) != 2:
                raise ProofError("other_leaf must be a (keyhash, valuehash) pair",
                                 field="other_leaf")
            for index, part in enumerate(self.other_leaf):
                if type(part) is not bytes or len(part) != HASH_SIZE:
                    raise ProofError(f"other_leaf[{index}] is not a {HASH_SIZE}-byte hash",
                                     field=f"other_leaf[{index}]")

    @property
    def depth(self) -> int:
        """Depth at which the key's path ends (0: the root itself)."""
        return len(self.siblings)

    def to_value(self) -> dict[str, Any]:
        """Return the proof as plain data (for :func:`citychain.core.codec.encode`)."""
        return {
            "siblings": list(self.siblings),
            "other_leaf": list(self.other_leaf) if self.other_leaf is not None else [],
        }

    @classmethod
    def from_value(cls, value: Any) -> Proof:
        """Rebuild a proof from :meth:`to_value` output.

        Raises:
            ProofError: the data does not have exactly the shape :meth:`to_value` produces.
        """
        if not isinstance(value, dict):
            raise ProofError(f"proof must be a map, got {type(value).__name__}")
        if set(value) != {"siblings", "other_leaf"}:
            raise ProofError("proof map must have exactly the fields other_leaf and siblings, "
                             f"got {', '.join(sorted(map(str, value)))}")
        siblings = value["siblings"]
        other = value["other_leaf"]
        if not isinstance(siblings, list):
            raise ProofError("proof siblings must be a list", field="siblings")
        if not isinstance(other, list) or len(other) not in (0, 2):
            raise ProofError("other_leaf must be an empty list or [keyhash, valuehash]",
                             field="other_leaf")
        return cls(tuple(siblings), (other[0], other[1]) if other else None)


def _bit(path: int, depth: int) -> int:
    return (path >> (KEY_BITS - 1 - depth)) & 1


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """Return True iff ``proof`` shows that under ``root``, ``key`` maps to ``value``
    (``value`` None: the key is absent). Never raises for a wrong or malformed input; it is
    simply not a proof of the claim."""
    if (type(root) is not bytes or len(root) != HASH_SIZE or type(key) is not bytes
            or not isinstance(proof, Proof)
            or (value is not None and type(value) is not bytes)):
        return False
    keyhash = sha256(key)
    path = int.from_bytes(keyhash, "big")
    siblings = proof.siblings
    depth = len(siblings)
    if value is not None:
        if proof.other_leaf is not None:
            return False  # a non-membership proof cannot show a value
        node = leaf_hash(keyhash, sha256(value))
    elif proof.other_leaf is None:
        node = EMPTY_ROOT
    else:
        other_keyhash, other_valuehash = proof.other_leaf
        other_path = int.from_bytes(other_keyhash, "big")
        if other_path == path:
            return False  # that leaf is the key itself: the key is present
        if (other_path ^ path) >> (KEY_BITS - depth):
            return False  # the other leaf is not on this key's path
        node = leaf_hash(other_keyhash, other_valuehash)
    # In the canonical tree the node where the path ends always has a non-empty sibling:
    # a leaf beside an empty subtree would sit one level higher, and an internal node never
    # has two empty children. Refusing the other form keeps every proof unique.
    if depth and siblings[0] == EMPTY_ROOT:
        return False
    for index, sibling in enumerate(siblings):
        if _bit(path, depth - 1 - index):
            node = sha256(INTERNAL_PREFIX + sibling + node)
        else:
            node = sha256(INTERNAL_PREFIX + node + sibling)
    return node == root


def compute_root_from_items(items: Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes]) -> bytes:
    """Return the root of the tree holding exactly ``items`` (key, value pairs), from scratch.

    This is the reference the incremental stores are tested against; it costs O(n log n).

    Raises:
        ValueError: a key appears twice.
    """
    pairs = items.items() if isinstance(items, Mapping) else items
    leaves: dict[int, bytes] = {}
    for key, value in pairs:
        keyhash = sha256(key)
        path = int.from_bytes(keyhash, "big")
        if path in leaves:
            raise ValueError(f"key {key.hex()} appears twice")
        leaves[path] = leaf_hash(keyhash, sha256(value))
    paths = sorted(leaves)
    hashes = [leaves[path] for path in paths]
    return _subtree_root(paths, hashes, 0, len(paths), 0)


def _subtree_root(paths: list[int], hashes: list[bytes], low: int, high: int, depth: int) -> bytes:
    """Root of the leaves ``paths[low:high]`` (sorted, sharing their first ``depth`` bits)."""
    if low == high:
        return EMPTY_ROOT
    if high - low == 1:
        return hashes[low]
    shift = KEY_BITS - 1 - depth
    boundary = ((paths[low] >> shift) | 1) << shift  # first path of this prefix with bit = 1
    split = bisect_left(paths, boundary, low, high)
    return internal_hash(_subtree_root(paths, hashes, low, split, depth + 1),
                         _subtree_root(paths, hashes, split, high, depth + 1))
