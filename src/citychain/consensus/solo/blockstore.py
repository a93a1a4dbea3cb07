"""The solo block and tx store: signed headers, txs, results, and a tx index, in SQLite.

A block is written in one transaction *before* the application commits its state, so after a
crash the store may be one block ahead of the state; the node then replays that block (the same
handshake CometBFT does), never the other way round.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citychain.consensus.solo.block import SignedHeader
from citychain.core import codec
from citychain.core.events import Event
from citychain.core.tx import tx_hash

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    signed_header BLOB NOT NULL,
    txs BLOB NOT NULL,
    results BLOB NOT NULL,
    events BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tx_index (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class StoredBlock:
    signed_header: SignedHeader
    txs: list[bytes]
    results: list[bytes]
    events: list[Event]

    @property
    def height(self) -> int:
        return self.signed_header.header.height

    @property
    def hash(self) -> bytes:
        return self.signed_header.header.hash()


@dataclass(frozen=True, slots=True)
class TxLocation:
    height: int
    position: int


class BlockStore:
    """Blocks by height and txs by hash. Safe to read from several threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @property
    def latest_height(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(height) FROM blocks").fetchone()
        return int(row[0] or 0)

    def save(self, block: StoredBlock) -> None:
        """Store a block and index its txs, atomically."""
        header = block.signed_header
        rows = [(tx_hash(raw), block.height, i) for i, raw in enumerate(block.txs)]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                    (block.height, header.header.hash(), codec.encode(header.to_value()),
                     codec.encode(block.txs), codec.encode(block.results),
                     codec.encode([e.to_value() for e in block.events])))
                self._db.executemany("INSERT OR IGNORE INTO tx_index VALUES (?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, height: int) -> StoredBlock | None:
        with self._lock:
            row = self._db.execute(
                "SELECT signed_header, txs, results, events FROM blocks WHERE height = ?",
                (height,)).fetchone()
        if row is None:
            return None
        return _decode_block(row)

    def get_raw(self, height: int) -> dict[str, Any] | None:
        """Return the stored columns of a block, undecoded (for audits)."""
        with self._lock:
            row = self._db.execute(
                "SELECT hash, signed_header, txs, results, events FROM blocks WHERE height = ?",
                (height,)).fetchone()
        if row is None:
            return None
        return dict(zip(("hash", "signed_header", "txs", "results", "events"), row,
                        strict=True))

    def locate_tx(self, hash_: bytes) -> TxLocation | None:
        with self._lock:
            row = self._db.execute("SELECT height, position FROM tx_index WHERE hash = ?",
                                   (hash_,)).fetchone()
        return TxLocation(int(row[0]), int(row[1])) if row is not None else None

    def tx_index_rows(self) -> list[tuple[bytes, int, int]]:
        with self._lock:
            return list(self._db.execute("SELECT hash, height, position FROM tx_index "
                                         "ORDER BY hash"))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _decode_block(row: tuple[bytes, bytes, bytes, bytes]) -> StoredBlock:
    signed = SignedHeader.from_value(codec.decode(row[0]))
    txs = codec.decode(row[1])
    results = codec.decode(row[2])
    events = [Event.from_value(e) for e in codec.decode(row[3])]
    return StoredBlock(signed, txs, results, events)
