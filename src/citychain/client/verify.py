"""Light verification: check a node's answer against a signed header, trusting no node.

A query answer carries, for every key the query read, the value and its Merkle proof against the
app hash at the answer's height; the header at that height is signed by a validator the client
trusts (from genesis). The client checks the signature, checks every proof against the header's
app hash, then re-runs the same pure query function over the proven reads and compares the result
with the answer. A tx answer carries its inclusion proof against the header's tx root.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from citychain.client.errors import VerificationError as VerificationError  # re-exported
from citychain.consensus.solo.block import SignedHeader
from citychain.core import codec
from citychain.core.merkle import Proof, verify_proof
from citychain.core.module import QueryHandler
from citychain.core.simple_merkle import verify_inclusion
from citychain.core.tx import tx_hash


@dataclass(frozen=True)
class ProvenRead:
    key: bytes
    value: bytes | None
    proof: Proof


def decode_reads(blob: bytes) -> list[ProvenRead]:
    try:
        items = codec.decode(blob)
        return [ProvenRead(i["key"], i["value"], Proof.from_value(i["proof"])) for i in items]
    except Exception as exc:
        raise VerificationError(f"proof bytes are malformed: {exc}") from None


def verify_header(signed: SignedHeader, chain_id: str, trusted: frozenset[bytes],
                  height: int | None = None) -> None:
    """Raise VerificationError unless ``signed`` is a header of ``chain_id`` signed by a trusted
    validator (at ``height`` when given)."""
    header = signed.header
    if header.chain_id != chain_id:
        raise VerificationError(f"header is for chain {header.chain_id!r}, not {chain_id!r}")
    if height is not None and header.height != height:
        raise VerificationError(f"header is for height {header.height}, expected {height}")
    if not signed.verify(trusted):
        raise VerificationError(f"header {header.height} is not signed by a trusted validator")


def verify_reads(app_hash: bytes, reads: list[ProvenRead]) -> dict[bytes, bytes | None]:
    """Check every read's proof against ``app_hash``; return the proven key -> value map."""
    proven: dict[bytes, bytes | None] = {}
    for read in reads:
        if not verify_proof(app_hash, read.key, read.value, read.proof):
            raise VerificationError(f"proof for key {read.key.hex()} does not match the app hash")
        proven[read.key] = read.value
    return proven


class ProvenView:
    """A read view over proven reads only; reading any other key is a verification failure."""

    def __init__(self, proven: dict[bytes, bytes | None]) -> None:
        self._proven = proven

    def get(self, key: bytes) -> bytes | None:
        if key not in self._proven:
            raise VerificationError(f"the query read key {key.hex()} for which no proof was sent")
        return self._proven[key]

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        raise VerificationError("range reads cannot be verified key by key")


def verify_query_answer(query: QueryHandler, params: dict[str, Any], answer: bytes,
                        reads: list[ProvenRead], signed: SignedHeader, chain_id: str,
                        trusted: frozenset[bytes], height: int | None = None) -> Any:
    """Verify an answer end to end and return its decoded value.

    ``height`` is the height the answer claims (or the client asked for): without it, a node
    could serve an old answer with the old header, and the client would accept stale state.

    Raises:
        VerificationError: the header (chain, height, signer), a proof, or the recomputed
            answer does not match.
    """
    verify_header(signed, chain_id, trusted, height)
    proven = verify_reads(signed.header.app_hash, reads)
    recomputed = query(ProvenView(proven), params)
    if codec.encode(recomputed) != answer:
        raise VerificationError("the answer differs from the query re-run over proven state")
    return recomputed


def verify_tx_inclusion(raw: bytes, index: int, total: int, aunts: list[bytes],
                        signed: SignedHeader, chain_id: str, trusted: frozenset[bytes],
                        height: int | None = None) -> None:
    """Raise VerificationError unless ``raw`` is tx ``index`` of the block ``signed`` heads
    (at ``height`` when given)."""
    verify_header(signed, chain_id, trusted, height)
    if not verify_inclusion(signed.header.tx_root, tx_hash(raw), index, total, aunts):
        raise VerificationError("tx inclusion proof does not match the header's tx root")
