"""The store audit: re-derive every stored fact from the others and name each contradiction.

Heights are checked oldest first. For each height the tree is compared with the previous
height's tree (descending only where node ids differ), which verifies every node the height
created against the hash its parent expects and yields the keys whose leaves changed; those must
be exactly the height's stored writes. Metadata digests are replayed, the latest key/values are
matched against the latest tree's leaves, and the backend checks its own storage (rows that no
version owns, physical integrity).
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256 as _sha256
from typing import TYPE_CHECKING

from citychain.core.merkle import EMPTY_ROOT, KEY_BITS
from citychain.store.errors import StoreCorruptionError
from citychain.store.tree import FIRST_NODE_ID, Node, chunk_end, iter_leaves

if TYPE_CHECKING:
    from citychain.store.versioned import VersionedStoreBase, VersionRow

MAX_PROBLEMS = 200
LATEST_PARTITION = 1 << 18  # latest key/values held in memory at once while matching leaves


def short(data: bytes) -> str:
    """Return ``data`` as hex, cut after 40 bytes."""
    return data.hex() if len(data) <= 40 else data[:40].hex() + ".."


class _TooMany(Exception):
    pass


class _Auditor:
    def __init__(self, store: VersionedStoreBase) -> None:
        self.store = store
        self.read = store._read_node
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(text)
        if len(self.problems) >= MAX_PROBLEMS:
            raise _TooMany

    # ------------------------------------------------------------------ query indexes
    def check_indexes(self) -> None:
        """Compare the stored query index entries with what the attached indexes derive from
        the latest state (skipped when none are attached: the audit cannot know them)."""
        store = self.store
        if not store.indexes:
            return
        if store._index_signatures != store._signatures():
            self.problem("the query index was built by other definitions than those attached")
            return
        compare_index_entries(list(store._index_rows()), store.derived_index_entries(),
                          self.problem)

    # ------------------------------------------------------------------ versions
    def check_versions(self, progress: Callable[[int, int], None] | None) -> None:
        from citychain.store.versioned import compute_meta_digest

        store = self.store
        total = (store.latest_height - store.first_height + 1) if store.first_height else 0
        meta_by_height: dict[int, list[tuple[str, bytes]]] = {}
        for height, name, value in store._meta_rows():
            meta_by_height.setdefault(height, []).append((name, value))
        meta: dict[str, bytes] = {}
        previous: VersionRow | None = None
        previous_root: Node | None = None
        expected_first = FIRST_NODE_ID
        done = 0
        for row in store._iter_versions():
            if previous is not None and row.height != previous.height + 1:
                self.problem(f"version rows: height {row.height} follows height "
                             f"{previous.height} (heights must be consecutive)")
            if row.first_node != expected_first:
                self.problem(f"version row of height {row.height}: its nodes start at id "
                             f"{row.first_node}, expected {expected_first}")
            expected_first = chunk_end(row.first_node + row.node_count)
            for name, value in meta_by_height.pop(row.height, []):
                meta[name] = value
            if compute_meta_digest(meta) != row.meta_digest:
                self.problem(f"version row of height {row.height}: metadata digest differs from "
                             "the stored metadata")
            previous_root = self.check_height(row, previous_root)
            previous = row
            done += 1
            if progress is not None:
                progress(done, total + 1)
        for height in sorted(meta_by_height):
            names = ", ".join(name for name, _ in meta_by_height[height])
            self.problem(f"metadata row(s) {names} at height {height}: no such version")
        latest = store._latest
        if (previous is None) != (latest is None) or (
                previous is not None and latest is not None and previous != latest):
            self.problem("the latest version row differs from the one loaded when the store "
                         "was opened")
        if store.first_height and done != total:
            self.problem(f"expected {total} version rows for heights {store.first_height}.."
                         f"{store.latest_height}, found {done}")

    def check_height(self, row: VersionRow, old_root: Node | None) -> Node | None:
        """Verify the tree of ``row`` against the previous tree and the stored writes; return
        the new root node (as stored, even if damaged, so later heights can still be diffed)."""
        check = _HeightCheck(self, row)
        check.diff(old_root, row.root, row.root_id, 0, 0)
        if len(check.visited) != row.node_count and not check.damaged:
            missing = [node_id for node_id in range(row.first_node,
                                                    row.first_node + row.node_count)
                       if node_id not in check.visited]
            for node_id in missing[:5]:
                self.problem(f"tree node {node_id} of height {row.height} is not reachable from "
                             "that height's root")
            if len(missing) > 5:
                self.problem(f"height {row.height}: {len(missing) - 5} more unreachable nodes")
        if check.damaged:
            self.problem(f"height {row.height}: stored writes not compared (its tree is damaged)")
        else:
            check.compare_writes()
        if not row.root_id:
            return None
        try:
            return self.read(row.root_id)
        except StoreCorruptionError:
            return None

    # ------------------------------------------------------------------ latest state
    def check_latest(self) -> None:
        store = self.store
        latest = store._latest
        height = latest.height if latest is not None else 0
        root: Node | None = None
        if latest is not None and latest.root_id:
            try:
                root = self.read(latest.root_id)
            except StoreCorruptionError as exc:
                self.problem(f"latest root: {exc}")
                return
        count = store._count_latest()
        bits = 0
        while (count >> bits) > LATEST_PARTITION and bits < 16:
            bits += 1
        for prefix in range(1 << bits):
            self._check_latest_partition(root, height, prefix, bits)

    def _check_latest_partition(self, root: Node | None, height: int, prefix: int,
                                bits: int) -> None:
        entries: list[tuple[bytes, bytes, bytes]] = []
        lower = b""
        while True:
            rows = self.store._scan_latest(lower, None, 4096)
            for key, value in rows:
                keyhash = _sha256(key).digest()
                if bits == 0 or int.from_bytes(keyhash, "big") >> (KEY_BITS - bits) == prefix:
                    entries.append((keyhash, _sha256(value).digest(), key))
            if len(rows) < 4096:
                break
            lower = rows[-1][0] + b"\x00"
        entries.sort()
        leaves = iter_leaves(root, self.read, prefix, bits)
        index = 0
        for leaf in leaves:
            keyhash = leaf[2][1:33]
            while index < len(entries) and entries[index][0] < keyhash:
                self.problem(f"state row for key {short(entries[index][2])} at height {height}: "
                             "no tree leaf holds this key")
                index += 1
            if index < len(entries) and entries[index][0] == keyhash:
                if entries[index][1] != leaf[2][33:65]:
                    self.problem(f"state row for key {short(entries[index][2])} at height "
                                 f"{height}: value hash differs from tree leaf")
                index += 1
            else:
                self.problem(f"tree leaf for keyhash {keyhash.hex()} at height {height}: no "
                             "state row holds its key")
        for entry in entries[index:]:
            self.problem(f"state row for key {short(entry[2])} at height {height}: no tree leaf "
                         "holds this key")


class _HeightCheck:
    """The diff of one height's tree against the previous one."""

    def __init__(self, auditor: _Auditor, row: VersionRow) -> None:
        self.auditor = auditor
        self.read = auditor.read
        self.row = row
        self.low = row.first_node
        self.high = row.first_node + row.node_count
        self.visited: set[int] = set()
        self.changed: dict[bytes, tuple[bytes | None, bytes | None]] = {}
        self.damaged = False

    def problem(self, text: str) -> None:
        self.damaged = True
        self.auditor.problem(text)

    def old(self, node_id: int) -> Node | None:
        """A node of the previous tree (already verified)."""
        if not node_id:
            return None
        try:
            return self.read(node_id)
        except StoreCorruptionError as exc:
            self.problem(f"height {self.row.height}: {exc}")
            return None

    def new(self, node_id: int, expected: bytes, prefix: int, depth: int) -> Node | None:
        """A node of this height's tree: check it hashes to what its parent expects."""
        height = self.row.height
        where = "the version row" if depth == 0 else "its parent"
        try:
            node = self.read(node_id)
        except StoreCorruptionError as exc:
            self.problem(f"height {height}: {exc}")
            return None
        if node[0] != expected:
            self.problem(f"tree node {node_id} (height {height}, depth {depth}): its stored bytes "
                         f"hash to {node[0].hex()[:16]}.. but {where} expects "
                         f"{expected.hex()[:16]}..")
            return None
        if self.low <= node_id < self.high:
            if node_id in self.visited:
                self.problem(f"tree node {node_id} (height {height}) is referenced twice")
                return None
            self.visited.add(node_id)
            if node[2][0] == 0 and (node[3] != height or node[4] != 0):
                self.problem(f"tree leaf {node_id} records height {node[3]} but was written at "
                             f"height {height}")
        elif node_id >= self.high:
            self.problem(f"tree node {node_id} is referenced at height {height} but is newer "
                         "than that height's nodes")
            return None
        body = node[2]
        if body[0] == 0:
            path = int.from_bytes(body[1:33], "big")
            if depth and path >> (KEY_BITS - depth) != prefix:
                self.problem(f"tree leaf {node_id} (height {height}) sits at depth {depth} off "
                             "its key's path")
        elif (node[3] == 0) != (body[1:33] == EMPTY_ROOT) or \
                (node[4] == 0) != (body[33:65] == EMPTY_ROOT) or (node[3] == 0 == node[4]):
            self.problem(f"tree node {node_id} (height {height}): child ids and child hashes "
                         "disagree")
            return None
        return node

    def diff(self, old: Node | None, new_hash: bytes, new_id: int, prefix: int,
             depth: int) -> None:
        if old is not None and old[1] == new_id:
            if old[0] != new_hash:
                self.problem(f"tree node {new_id} (height {self.row.height}, depth {depth}): "
                             f"hashes to {old[0].hex()[:16]}.. but the reference to it expects "
                             f"{new_hash.hex()[:16]}..")
            return
        new: Node | None = None
        if new_id:
            new = self.new(new_id, new_hash, prefix, depth)
            if new is None:
                return
        elif new_hash != EMPTY_ROOT:
            self.problem(f"height {self.row.height}: an empty subtree at depth {depth} is "
                         f"referenced with hash {new_hash.hex()[:16]}..")
            return
        if old is None and new is None:
            return
        if old is not None and new is not None and old[2][0] == 1 and new[2][0] == 1:
            old_body = old[2]
            new_body = new[2]
            if old_body[1:33] != new_body[1:33] or old[3] != new[3]:
                self.diff(self.old(old[3]), new_body[1:33], new[3], prefix << 1, depth + 1)
            if old_body[33:65] != new_body[33:65] or old[4] != new[4]:
                self.diff(self.old(old[4]), new_body[33:65], new[4], (prefix << 1) | 1,
                          depth + 1)
            return
        before = {leaf[2][1:33]: leaf[2][33:65] for leaf in iter_leaves(old, self.read)}
        after: dict[bytes, bytes] = {}
        if new is not None:
            self.collect(new, prefix, depth, after)
        for keyhash in sorted(before.keys() | after.keys()):
            old_value = before.get(keyhash)
            new_value = after.get(keyhash)
            if old_value != new_value:
                self.changed[keyhash] = (old_value, new_value)

    def collect(self, node: Node, prefix: int, depth: int, out: dict[bytes, bytes]) -> None:
        body = node[2]
        if body[0] == 0:
            out[body[1:33]] = body[33:65]
            return
        for side, child_id, child_hash in ((0, node[3], body[1:33]), (1, node[4], body[33:65])):
            if child_id:
                child = self.new(child_id, child_hash, (prefix << 1) | side, depth + 1)
                if child is not None:
                    self.collect(child, (prefix << 1) | side, depth + 1, out)

    def compare_writes(self) -> None:
        height = self.row.height
        seen: set[bytes] = set()
        try:
            writes = self.auditor.store._changes_at(height)
        except StoreCorruptionError as exc:
            self.auditor.problem(f"{exc}")
            return
        for key, value in writes:
            keyhash = _sha256(key).digest()
            seen.add(keyhash)
            entry = self.changed.get(keyhash)
            if entry is None:
                self.auditor.problem(f"change row for key {short(key)} at height {height}: the "
                                     "tree did not change this key at that height")
            elif entry[1] != (_sha256(value).digest() if value is not None else None):
                self.auditor.problem(f"change row for key {short(key)} at height {height}: value "
                                     "hash differs from tree leaf")
        for keyhash in sorted(self.changed.keys() - seen):
            self.auditor.problem(f"height {height}: the tree changed the leaf of keyhash "
                                 f"{keyhash.hex()} but no change row records it")


def compare_index_entries(stored: list[tuple[bytes, int, bytes]],
                      derived: list[tuple[bytes, int, bytes]],
                      problem: Callable[[str], None]) -> None:
    """Report every query index entry that is missing, extra or different from the derived."""
    have = {row[0]: row for row in stored}
    want = {row[0]: row for row in derived}
    for key in sorted(have.keys() | want.keys()):
        found, expected = have.get(key), want.get(key)
        if found is None:
            problem(f"query index entry {short(key)} is missing")
        elif expected is None:
            problem(f"query index entry {short(key)} has no source record")
        elif found != expected:
            problem(f"query index entry {short(key)}: stored (height {found[1]}, value "
                    f"{short(found[2])}), derived (height {expected[1]}, value "
                    f"{short(expected[2])})")


def audit_store(store: VersionedStoreBase,
                progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Return every problem found in ``store`` (empty list: sound). Never raises for damaged
    data: an unexpected failure is reported as a problem and ends the audit."""
    auditor = _Auditor(store)
    try:
        auditor.check_versions(progress)
        auditor.check_latest()
        auditor.check_indexes()
        store._audit_storage(auditor.problem)
        total = (store.latest_height - store.first_height + 1) if store.first_height else 0
        if progress is not None:
            progress(total + 1, total + 1)
    except _TooMany:
        auditor.problems.append(f"audit stopped after {MAX_PROBLEMS} problems")
    except Exception as exc:  # a damaged database can fail in any primitive; report it
        auditor.problems.append(f"audit stopped: {type(exc).__name__}: {exc}")
    return auditor.problems
