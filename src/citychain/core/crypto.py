"""Ed25519 keys (PyNaCl), addresses derived from public keys, DIDs and domain-separated signing."""

from __future__ import annotations

import re
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from citychain.core.hashing import sha256

PUBKEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32
ADDRESS_SIZE = 20
DID_PREFIX = "did:city:"
ADDRESS_PATTERN = "[0-9a-f]{40}"
_ADDRESS_RE = re.compile(ADDRESS_PATTERN)
_DID_RE = re.compile(re.escape(DID_PREFIX) + f"({ADDRESS_PATTERN})")


def address_from_pubkey(pubkey: bytes) -> str:
    """Return the account address of an Ed25519 public key: hex of SHA-256(pubkey)[:20]."""
    return sha256(pubkey)[:ADDRESS_SIZE].hex()


def is_address(text: str) -> bool:
    """Return whether ``text`` is a well-formed address (40 lowercase hex characters)."""
    # fullmatch, not match with "$": "$" also matches before a trailing newline, and
    # bytes.fromhex (keyspace.address_part) would then map "<address>\n" to the same key.
    return isinstance(text, str) and _ADDRESS_RE.fullmatch(text) is not None


def did_from_address(address: str) -> str:
    """Return the DID (``did:city:<address>``) of an account address."""
    return DID_PREFIX + address


def address_from_did(did: str) -> str | None:
    """Return the address a ``did:city:`` DID names, or None if ``did`` is not one."""
    # One match instead of a prefix test and a second match: an IoT anchor checks up to 1,000.
    match = _DID_RE.fullmatch(did) if isinstance(did, str) else None
    return None if match is None else match[1]


def domain_bytes(domain: str, chain_id: str, payload: bytes) -> bytes:
    """Return the bytes that get signed: ``domain || 0x00 || len(chain_id) || chain_id || payload``.

    The domain tag separates kinds of signed objects (transactions, block headers...) so that a
    signature for one can never be replayed as another, and the chain id binds it to one chain.
    """
    chain = chain_id.encode()
    if len(chain) > 255:
        raise ValueError("chain id longer than 255 bytes")
    return domain.encode() + b"\x00" + bytes([len(chain)]) + chain + payload


def verify_signature(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid Ed25519 signature of ``message`` by ``pubkey``."""
    if len(pubkey) != PUBKEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.signing.VerifyKey(pubkey).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
            nacl.exceptions.TypeError):
        return False
    return True


@dataclass(frozen=True, repr=False)
class PrivateKey:
    """An Ed25519 signing key. Its seed is never shown by ``repr``."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_SIZE:
            raise ValueError(f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(self.seed)}")
        object.__setattr__(self, "_signing", nacl.signing.SigningKey(self.seed))

    @classmethod
    def generate(cls) -> PrivateKey:
        """Return a fresh key from the operating system's random source."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_secret(cls, secret: bytes | str) -> PrivateKey:
        """Derive a key deterministically from ``secret`` (tests, demos, simulated devices)."""
        raw = secret.encode() if isinstance(secret, str) else secret
        return cls(sha256(b"citychain/test-key/v1\x00" + raw))

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing.verify_key)  # type: ignore[attr-defined]

    @property
    def address(self) -> str:
        return address_from_pubkey(self.public_key)

    @property
    def did(self) -> str:
        return did_from_address(self.address)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return bytes(self._signing.sign(message).signature)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"PrivateKey(address={self.address})"
