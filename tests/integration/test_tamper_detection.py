"""Tamper detection: one flipped byte anywhere in a stopped node's data (a block header, a tx, a
result, a state value, a tree node, the tx index) makes `verify_chain` name the height and what."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from citychain.consensus.solo.blockstore import BlockStore
from citychain.modules.bank.keys import balance_key
from citychain.modules.bank.messages import MsgTransfer
from citychain.node.assemble import open_solo
from citychain.node.audit import AuditReport, verify_chain
from citychain.node.home import Home
from citychain.testing.chain import DENOM, Cast, sign_raw, solo_home
from citychain.testing.checks import assert_ok

BLOCKS = 4
TAMPERED_HEIGHT = 2


@pytest.fixture(scope="module")
def clean_chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Cast]:
    """A stopped node home with BLOCKS blocks of transfers."""
    root = tmp_path_factory.mktemp("tamper") / "clean"
    _home, genesis, cast = solo_home(root)
    runtime = open_solo(root)
    try:
        runtime.node.handshake()
        for sequence in range(BLOCKS):
            for index, sender in enumerate(cast.citizens):
                to = cast.citizens[(index + 1) % len(cast.citizens)]
                raw = sign_raw(sender, genesis.chain_id, sequence,
                               MsgTransfer(to.did, DENOM, 10 + 4 * sequence + index))
                assert_ok(runtime.node.submit(raw))
            assert runtime.node.produce_block().failed == 0
    finally:
        runtime.close()
    return root, cast


def tampered_copy(clean: Path, tmp_path: Path, database: str,
                  change: Callable[[sqlite3.Connection], None]) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(clean, root)
    connection = sqlite3.connect(root / "data" / database)
    try:
        change(connection)
        connection.commit()
    finally:
        connection.close()
    return root


def flip(blob: bytes, offset: int) -> bytes:
    data = bytearray(blob)
    data[offset] ^= 0x01
    return bytes(data)


def flip_column(table: str, column: str, where: str, args: tuple[object, ...],
                locate: Callable[[bytes], int]) -> Callable[[sqlite3.Connection], None]:
    """Flip the lowest bit of one byte (chosen by ``locate``) of one cell."""

    def change(connection: sqlite3.Connection) -> None:
        rows = connection.execute(f"SELECT rowid, {column} FROM {table} WHERE {where}",
                                  args).fetchall()
        assert rows, f"no {table} row where {where} {args}"
        rowid, blob = rows[0]
        connection.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                           (flip(bytes(blob), locate(bytes(blob))), rowid))
    return change


def flip_state_value(key: bytes) -> Callable[[sqlite3.Connection], None]:
    def change(connection: sqlite3.Connection) -> None:
        (value,) = connection.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        connection.execute("UPDATE state SET value = ? WHERE key = ?",
                           (flip(bytes(value), len(value) - 1), key))
    return change


def assert_problem(report: AuditReport, height: int, *fragments: str) -> None:
    assert not report.ok, "the audit did not notice the tampering"
    first = report.first
    assert first is not None
    assert first.height == height, str(first)
    assert any(fragment in first.what for fragment in fragments), str(first)


def test_clean_chain_verifies(clean_chain: tuple[Path, Cast]) -> None:
    root, _cast = clean_chain
    report = verify_chain(root, stop_at_first=False)
    assert report.ok, [str(p) for p in report.problems]
    assert report.blocks_checked == BLOCKS
    assert report.txs_checked == BLOCKS * 4


def test_invalid_block_header_byte(clean_chain: tuple[Path, Cast], tmp_path: Path) -> None:
    root, _cast = clean_chain
    blocks = BlockStore(Home(root).blocks_db)
    stored = blocks.get(TAMPERED_HEIGHT)
    blocks.close()
    assert stored is not None
    app_hash = stored.signed_header.header.app_hash

    def locate(blob: bytes) -> int:
        return blob.index(app_hash) + 5  # a byte inside the header's app hash

    copy = tampered_copy(root, tmp_path, "blocks.db",
                         flip_column("blocks", "signed_header", "height = ?",
                                     (TAMPERED_HEIGHT,), locate))
    assert_problem(verify_chain(copy), TAMPERED_HEIGHT, "hash of the stored header")
    report = verify_chain(copy, stop_at_first=False)
    whats = [p.what for p in report.problems if p.height == TAMPERED_HEIGHT]
    assert any("signature" in what for what in whats), whats


def test_invalid_stored_tx_byte(clean_chain: tuple[Path, Cast], tmp_path: Path) -> None:
    root, _cast = clean_chain
    copy = tampered_copy(root, tmp_path, "blocks.db",
                         flip_column("blocks", "txs", "height = ?", (TAMPERED_HEIGHT,),
                                     lambda blob: len(blob) - 1))  # the last tx's signature
    assert_problem(verify_chain(copy), TAMPERED_HEIGHT, "tx root")


def test_invalid_stored_result_byte(clean_chain: tuple[Path, Cast], tmp_path: Path) -> None:
    root, _cast = clean_chain
    copy = tampered_copy(root, tmp_path, "blocks.db",
                         flip_column("blocks", "results", "height = ?", (TAMPERED_HEIGHT,),
                                     lambda blob: blob.index(b"coins_transferred") + 5))
    assert_problem(verify_chain(copy), TAMPERED_HEIGHT, "results hash")


def test_invalid_state_value_byte(clean_chain: tuple[Path, Cast], tmp_path: Path) -> None:
    root, cast = clean_chain
    key = balance_key(cast.citizens[1].address, DENOM)
    copy = tampered_copy(root, tmp_path, "state.db", flip_state_value(key))
    assert_problem(verify_chain(copy), BLOCKS, "state")


def test_invalid_tree_node_byte(clean_chain: tuple[Path, Cast], tmp_path: Path) -> None:
    root, _cast = clean_chain
    copy = tampered_copy(root, tmp_path, "state.db",
                         flip_column("nodes", "data", "1 = 1 ORDER BY chunk DESC", (),
                                     lambda blob: 7))
    assert_problem(verify_chain(copy), BLOCKS, "state")


def test_invalid_tx_index_entry(clean_chain: tuple[Path, Cast], tmp_path: Path) -> None:
    root, _cast = clean_chain

    def change(connection: sqlite3.Connection) -> None:
        (hash_,) = connection.execute(
            "SELECT hash FROM tx_index WHERE height = ? ORDER BY position",
            (TAMPERED_HEIGHT,)).fetchone()
        connection.execute("UPDATE tx_index SET hash = ? WHERE hash = ?",
                           (flip(bytes(hash_), 0), hash_))

    copy = tampered_copy(root, tmp_path, "blocks.db", change)
    assert_problem(verify_chain(copy), TAMPERED_HEIGHT, "tx index")


def test_invalid_tx_index_position(clean_chain: tuple[Path, Cast], tmp_path: Path) -> None:
    root, _cast = clean_chain

    def change(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE tx_index SET position = (position + 1) % 4 "
                           "WHERE height = ?", (TAMPERED_HEIGHT,))

    copy = tampered_copy(root, tmp_path, "blocks.db", change)
    assert_problem(verify_chain(copy), TAMPERED_HEIGHT, "tx index")


def test_home_layout_is_what_the_tamper_tests_edit(clean_chain: tuple[Path, Cast]) -> None:
    root, _cast = clean_chain
    home = Home(root)
    assert home.blocks_db == root / "data" / "blocks.db"
    assert home.state_db == root / "data" / "state.db"


def test_invalid_historical_state_change(clean_chain: tuple[Path, Cast],
                                         tmp_path: Path) -> None:
    """The writes recorded for an older height (served by queries at that height) are checked
    too. The store packs them as it likes: flip the last byte of the last row of that height."""
    root, _cast = clean_chain

    def change(connection: sqlite3.Connection) -> None:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(changes)")]
        blob_column = columns[-1]
        rowid, blob = connection.execute(
            f"SELECT rowid, {blob_column} FROM changes WHERE height = ? "
            "ORDER BY rowid DESC LIMIT 1", (TAMPERED_HEIGHT,)).fetchone()
        connection.execute(f"UPDATE changes SET {blob_column} = ? WHERE rowid = ?",
                           (flip(bytes(blob), len(blob) - 1), rowid))

    copy = tampered_copy(root, tmp_path, "state.db", change)
    # The state database's own audit names the height inside its text; verify_chain files
    # every state database problem under the latest height.
    assert_problem(verify_chain(copy), BLOCKS, f"height {TAMPERED_HEIGHT}")
