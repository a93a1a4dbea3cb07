"""The stored form of the state tree: node tuples and records, batch updates, walks and diffs.

The tree is the one :mod:`citychain.core.merkle` defines. In memory a node is a plain tuple
(fast to build; this is the hot path of every commit)::

    (hash, id, body, a, b)
    leaf:      body = 0x00 || keyhash || valuehash    a = height the leaf was written at, b = 0
    internal:  body = 0x01 || left hash || right hash a = left child id, b = right child id

``hash = sha256(body)`` always, so a node's hash is recomputed from its stored bytes and needs no
column of its own. Id 0 stands for the empty subtree. Ids are handed out in creation order
(children before parents) and every version's new nodes take one contiguous run of ids that
starts on a chunk boundary; the stores keep ``CHUNK_NODES`` fixed-size records per row, so a
commit writes a few large appended rows instead of one row per node.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Callable, Iterator
from hashlib import sha256 as _sha256

from citychain.core.merkle import EMPTY_ROOT, KEY_BITS
from citychain.store.errors import StoreCorruptionError

Node = tuple[bytes, int, bytes, int, int]
NodeLoader = Callable[[int], Node]

BODY_SIZE = 65
RECORD_SIZE = BODY_SIZE + 16
CHUNK_NODES = 48  # 48 x 81 = 3888 bytes: one row fills a 4 KiB SQLite page
FIRST_NODE_ID = CHUNK_NODES  # id 0 is the empty subtree; chunk 0 is never used

_LEAF = b"\x00"
_INTERNAL = b"\x01"
_PAIR = struct.Struct(">QQ")
_SAME = object()  # marks an unchanged child in TreeUpdate._update


def _no_hit(node_id: int) -> Node | None:
    return None


def chunk_end(node_id: int) -> int:
    """Return the first chunk-aligned id at or after ``node_id``."""
    return -(-node_id // CHUNK_NODES) * CHUNK_NODES


def decode_record(node_id: int, record: bytes) -> Node:
    """Rebuild a node from its stored record.

    Raises:
        StoreCorruptionError: the record has the wrong size or kind byte.
    """
    if len(record) != RECORD_SIZE or record[0] > 1:
        raise StoreCorruptionError(f"tree node {node_id}: stored record is malformed "
                                   f"({len(record)} bytes)")
    body = record[:BODY_SIZE]
    a, b = _PAIR.unpack_from(record, BODY_SIZE)
    return (_sha256(body).digest(), node_id, body, a, b)


def encode_chunks(nodes: list[Node]) -> list[tuple[int, bytes]]:
    """Pack ``nodes`` (contiguous ids, the first on a chunk boundary) into (chunk, data) rows."""
    rows: list[tuple[int, bytes]] = []
    if not nodes:
        return rows
    first_chunk = nodes[0][1] // CHUNK_NODES
    pack = _PAIR.pack
    for offset in range(0, len(nodes), CHUNK_NODES):
        part = nodes[offset:offset + CHUNK_NODES]
        rows.append((first_chunk + offset // CHUNK_NODES,
                     b"".join([node[2] + pack(node[3], node[4]) for node in part])))
    return rows


class TreeUpdate:
    """Applies one sorted batch of changes to a tree, creating new nodes in memory only.

    ``paths``/``keyhashes``/``valuehashes`` are parallel lists sorted by path; a value hash of
    None deletes the key. After :meth:`apply`, ``pending`` holds the new nodes in id order
    (``pending[i]`` has id ``first_id + i``; every one of them is reachable from the new root,
    since a node is only created once its place in the new tree is known) and ``effective[i]``
    is 1 when change
    ``i`` really changed the tree (writing a key's current value, or deleting an absent key,
    is not effective and leaves the node untouched).
    """

    def __init__(self, load: NodeLoader, first_id: int,
                 fast: Callable[[int], Node | None] | None = None, leaf_height: int = 0) -> None:
        self._load = load
        self.leaf_height = leaf_height  # stamped on new leaves: the height they will commit at
        self._fast: Callable[[int], Node | None] = fast if fast is not None else _no_hit
        self.first_id = first_id
        self._next_id = first_id
        self.pending: list[Node] = []
        self.replaced: list[int] = []  # ids of base-tree nodes the new tree no longer holds
        self._paths: list[int] = []
        self._keyhashes: list[bytes] = []
        self._valuehashes: list[bytes | None] = []
        self.effective = bytearray()

    def apply(self, root: Node | None, paths: list[int], keyhashes: list[bytes],
              valuehashes: list[bytes | None]) -> Node | None:
        """Return the new root (None: empty tree) after applying the changes to ``root``."""
        self._paths = paths
        self._keyhashes = keyhashes
        self._valuehashes = valuehashes
        self.effective = bytearray(len(paths))
        if not paths:
            return root
        return self._update(root, 0, 0, len(paths))

    # -------------------------------------------------------------- node creation
    def _new_leaf(self, index: int) -> Node:
        body = _LEAF + self._keyhashes[index] + self._valuehashes[index]  # type: ignore[operator]
        node_id = self._next_id
        self._next_id = node_id + 1
        node = (_sha256(body).digest(), node_id, body, self.leaf_height, 0)
        self.pending.append(node)
        self.effective[index] = 1
        return node

    def _new_internal(self, left_hash: bytes, right_hash: bytes, left_id: int,
                      right_id: int) -> Node:
        body = _INTERNAL + left_hash + right_hash
        node_id = self._next_id
        self._next_id = node_id + 1
        node = (_sha256(body).digest(), node_id, body, left_id, right_id)
        self.pending.append(node)
        return node

    # -------------------------------------------------------------- the batch walk
    def _update(self, node: Node | None, depth: int, low: int, high: int) -> Node | None:
        """Apply changes[low:high] (all inside ``node``'s subtree, at ``depth``)."""
        if node is None:
            return self._build_fresh(depth, low, high)
        body = node[2]
        if not body[0]:
            return self._merge_leaf(node, depth, low, high)
        paths = self._paths
        shift = KEY_BITS - 1 - depth
        split = bisect_left(paths, ((paths[low] >> shift) | 1) << shift, low, high)
        fast = self._fast
        left_id = node[3]
        right_id = node[4]
        left: Node | object | None = _SAME
        right: Node | object | None = _SAME
        if split > low:
            old = (fast(left_id) or self._load(left_id)) if left_id else None
            left = self._update(old, depth + 1, low, split)
            if left is old:
                left = _SAME
        if split < high:
            old = (fast(right_id) or self._load(right_id)) if right_id else None
            right = self._update(old, depth + 1, split, high)
            if right is old:
                right = _SAME
        if left is _SAME:
            if right is _SAME:
                return node
            left_hash = body[1:33]
        elif left is None:
            left_hash, left_id = EMPTY_ROOT, 0
        else:
            left_hash, left_id = left[0], left[1]  # type: ignore[index]
        if right is _SAME:
            right_hash = body[33:65]
        elif right is None:
            right_hash, right_id = EMPTY_ROOT, 0
        else:
            right_hash, right_id = right[0], right[1]  # type: ignore[index]
        self.replaced.append(node[1])
        # A subtree left with a single leaf is that leaf (it moves up, keeping its id).
        if not left_id:
            if not right_id:
                return None
            only: Node = self._load(right_id) if right is _SAME else right  # type: ignore[assignment]
            if not only[2][0]:
                return only
        elif not right_id:
            only = self._load(left_id) if left is _SAME else left  # type: ignore[assignment]
            if not only[2][0]:
                return only
        body = _INTERNAL + left_hash + right_hash  # _new_internal, inlined on the hot path
        node_id = self._next_id
        self._next_id = node_id + 1
        new = (_sha256(body).digest(), node_id, body, left_id, right_id)
        self.pending.append(new)
        return new

    def _merge_leaf(self, leaf: Node, depth: int, low: int, high: int) -> Node | None:
        """Apply changes[low:high] to a subtree that holds only ``leaf``."""
        paths = self._paths
        valuehashes = self._valuehashes
        leaf_path = int.from_bytes(leaf[2][1:33], "big")
        if high - low == 1:  # the usual case: one change lands on one leaf
            valuehash = valuehashes[low]
            if paths[low] == leaf_path:
                if valuehash is None:
                    self.effective[low] = 1
                    self.replaced.append(leaf[1])
                    return None
                if valuehash == leaf[2][33:65]:
                    return leaf
                self.replaced.append(leaf[1])
                return self._new_leaf(low)
            if valuehash is None:
                return leaf  # deleting an absent key
            new = self._new_leaf(low)
            if leaf_path < paths[low]:
                return self._build(depth, [leaf_path, paths[low]], [leaf, new], 0, 2)
            return self._build(depth, [paths[low], leaf_path], [new, leaf], 0, 2)
        out_paths: list[int] = []
        out_nodes: list[Node] = []
        placed = False
        for index in range(low, high):
            path = paths[index]
            valuehash = valuehashes[index]
            if not placed and leaf_path < path:
                out_paths.append(leaf_path)
                out_nodes.append(leaf)
                placed = True
            if path == leaf_path:
                placed = True
                if valuehash == leaf[2][33:65]:
                    out_paths.append(path)
                    out_nodes.append(leaf)
                    continue
                self.replaced.append(leaf[1])
                if valuehash is None:
                    self.effective[index] = 1
                    continue
                out_paths.append(path)
                out_nodes.append(self._new_leaf(index))
                continue
            if valuehash is not None:
                out_paths.append(path)
                out_nodes.append(self._new_leaf(index))
        if not placed:
            out_paths.append(leaf_path)
            out_nodes.append(leaf)
        return self._build(depth, out_paths, out_nodes, 0, len(out_paths))

    def _build_fresh(self, depth: int, low: int, high: int) -> Node | None:
        """Build the subtree of changes[low:high] where the tree was empty."""
        valuehashes = self._valuehashes
        if high - low == 1:
            return None if valuehashes[low] is None else self._new_leaf(low)
        out_paths: list[int] = []
        out_nodes: list[Node] = []
        paths = self._paths
        for index in range(low, high):
            if valuehashes[index] is not None:
                out_paths.append(paths[index])
                out_nodes.append(self._new_leaf(index))
        return self._build(depth, out_paths, out_nodes, 0, len(out_paths))

    def _build(self, depth: int, paths: list[int], nodes: list[Node], low: int,
               high: int) -> Node | None:
        """Build the canonical subtree over the (sorted) leaves ``nodes[low:high]``."""
        if high - low <= 1:
            return nodes[low] if high > low else None
        shift = KEY_BITS - 1 - depth
        split = bisect_left(paths, ((paths[low] >> shift) | 1) << shift, low, high)
        left = self._build(depth + 1, paths, nodes, low, split)
        right = self._build(depth + 1, paths, nodes, split, high)
        return self._new_internal(left[0] if left is not None else EMPTY_ROOT,
                                  right[0] if right is not None else EMPTY_ROOT,
                                  left[1] if left is not None else 0,
                                  right[1] if right is not None else 0)


def finalize_nodes(update: TreeUpdate, height: int) -> list[Node]:
    """Return the update's new nodes (id order) with every leaf stamped with ``height`` (they
    already are unless the height differs from the one assumed when they were created)."""
    if update.leaf_height == height:
        return update.pending
    return [node if node[2][0] else (node[0], node[1], node[2], height, 0)
            for node in update.pending]


def walk(root: Node | None, path: int, load: NodeLoader) -> tuple[list[bytes], Node | None]:
    """Follow ``path`` from ``root``; return the siblings passed (root first) and the node the
    path ends at: a leaf (this key's or another's) or None (an empty subtree)."""
    siblings: list[bytes] = []
    node = root
    depth = 0
    while node is not None and node[2][0] == 1:
        body = node[2]
        if (path >> (KEY_BITS - 1 - depth)) & 1:
            siblings.append(body[1:33])
            child = node[4]
        else:
            siblings.append(body[33:65])
            child = node[3]
        node = load(child) if child else None
        depth += 1
    return siblings, node


def iter_leaves(node: Node | None, load: NodeLoader, prefix: int = 0,
                prefix_bits: int = 0, depth: int = 0) -> Iterator[Node]:
    """Yield the leaves under ``node`` (at ``depth``) in path order, restricted to paths that
    start with the ``prefix_bits``-bit ``prefix``."""
    if node is None:
        return
    if node[2][0] == 0:
        if (int.from_bytes(node[2][1:33], "big") >> (KEY_BITS - prefix_bits)) == prefix \
                or prefix_bits == 0:
            yield node
        return
    if depth < prefix_bits:
        child = node[4] if (prefix >> (prefix_bits - 1 - depth)) & 1 else node[3]
        yield from iter_leaves(load(child) if child else None, load, prefix, prefix_bits,
                               depth + 1)
        return
    for child in (node[3], node[4]):
        if child:
            yield from iter_leaves(load(child), load, prefix, prefix_bits, depth + 1)
