"""Solo block headers and blocks: hash-linked, signed by the node key, canonically encoded.

Unlike CometBFT (where header H carries the app hash after block H-1), a solo header carries the
app hash *after* its own block, so a query answer at height H is proven by header H.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core import codec
from citychain.core.crypto import PrivateKey, address_from_pubkey, domain_bytes, verify_signature
from citychain.core.hashing import EMPTY_HASH, sha256
from citychain.core.simple_merkle import merkle_root
from citychain.core.tx import tx_hash

HEADER_DOMAIN = "citychain/header/v1"


@dataclass(frozen=True, slots=True)
class Header:
    chain_id: str
    height: int
    time_ns: int
    prev_hash: bytes
    tx_root: bytes
    results_hash: bytes
    app_hash: bytes
    proposer: str

    def to_value(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "height": self.height, "time_ns": self.time_ns,
                "prev_hash": self.prev_hash, "tx_root": self.tx_root,
                "results_hash": self.results_hash, "app_hash": self.app_hash,
                "proposer": self.proposer}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> Header:
        return cls(**{name: value[name] for name in (
            "chain_id", "height", "time_ns", "prev_hash", "tx_root", "results_hash",
            "app_hash", "proposer")})

    def encode(self) -> bytes:
        return codec.encode(self.to_value())

    def hash(self) -> bytes:
        """The block hash: SHA-256 of the header's canonical encoding."""
        return sha256(self.encode())

    def sign_bytes(self) -> bytes:
        return domain_bytes(HEADER_DOMAIN, self.chain_id, self.encode())


@dataclass(frozen=True, slots=True)
class SignedHeader:
    header: Header
    pubkey: bytes
    signature: bytes

    def verify(self, trusted_pubkeys: frozenset[bytes] | None = None) -> bool:
        """Return whether the signature is valid (and by a trusted key, when given)."""
        if trusted_pubkeys is not None and self.pubkey not in trusted_pubkeys:
            return False
        if address_from_pubkey(self.pubkey) != self.header.proposer:
            return False
        return verify_signature(self.pubkey, self.header.sign_bytes(), self.signature)

    def to_value(self) -> dict[str, Any]:
        return {"header": self.header.to_value(), "pubkey": self.pubkey,
                "signature": self.signature}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> SignedHeader:
        return cls(Header.from_value(value["header"]), value["pubkey"], value["signature"])


def tx_root(txs: list[bytes]) -> bytes:
    """Merkle root over the tx hashes, as CometBFT computes a header's data_hash."""
    return merkle_root([tx_hash(raw) for raw in txs])


def results_hash(results: list[bytes]) -> bytes:
    """Merkle root over the canonical encodings of the block's tx results."""
    return merkle_root(results)


def sign_header(key: PrivateKey, header: Header) -> SignedHeader:
    return SignedHeader(header, key.public_key, key.sign(header.sign_bytes()))


GENESIS_PREV_HASH = EMPTY_HASH
