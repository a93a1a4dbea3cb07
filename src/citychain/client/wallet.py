"""A wallet: one Ed25519 account key, from a keyring file or a BIP-39 mnemonic, that signs txs.

Mnemonic derivation (documented, deterministic, never changes for a given phrase):

1. the BIP-39 seed: PBKDF2-HMAC-SHA512 of the phrase with salt ``"mnemonic" + passphrase``,
   2048 rounds, 64 bytes (the ``mnemonic`` package's ``Mnemonic.to_seed``);
2. SLIP-0010 for ed25519: master key = HMAC-SHA512(key ``b"ed25519 seed"``, BIP-39 seed), left
   32 bytes the key, right 32 bytes the chain code; each child is hardened:
   HMAC-SHA512(chain code, ``0x00 || key || ser32(index + 2**31)``);
3. along the path ``m/44'/6373'/account'/0'/0'`` (6373 is citychain's coin type; it is not
   registered in SLIP-44), the resulting 32-byte key is the Ed25519 seed.

The seed is held privately: ``repr`` and ``str`` show only the address, and only
:meth:`Wallet.export_seed` gives it out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from mnemonic import Mnemonic

from citychain.client.errors import WalletError
from citychain.core.crypto import SEED_SIZE, PrivateKey
from citychain.core.messages import Msg
from citychain.core.tx import TxBody, sign_tx

__all__ = ["COIN_TYPE", "DERIVATION_PATH", "Wallet", "derive_seed", "slip10_ed25519"]

COIN_TYPE = 6373
DERIVATION_PATH = "m/44'/6373'/{account}'/0'/0'"
_HARDENED = 2**31
_SLIP10_CURVE_KEY = b"ed25519 seed"
_LANGUAGE = "english"


def _path_indexes(account: int) -> tuple[int, ...]:
    return (44, COIN_TYPE, account, 0, 0)


def derive_seed(phrase: str, passphrase: str = "", account: int = 0) -> bytes:
    """The 32-byte Ed25519 seed of ``account`` for a BIP-39 phrase (see the module docstring).

    Raises:
        WalletError: the phrase is not a valid English BIP-39 mnemonic (words or checksum),
            or ``account`` is outside 0..2**31-1.
    """
    if not 0 <= account < _HARDENED:
        raise WalletError(f"account must be from 0 to {_HARDENED - 1}, got {account}")
    words = " ".join(phrase.split())
    if not Mnemonic(_LANGUAGE).check(words):
        raise WalletError("the mnemonic is not a valid BIP-39 English phrase (a word or the "
                          "checksum is wrong)")
    return slip10_ed25519(Mnemonic.to_seed(words, passphrase), _path_indexes(account))


def slip10_ed25519(seed: bytes, path: tuple[int, ...]) -> bytes:
    """SLIP-0010 ed25519 private key of ``seed`` along ``path`` (each index hardened, given
    without the 2**31 offset)."""
    digest = hmac.new(_SLIP10_CURVE_KEY, seed, hashlib.sha512).digest()
    key, chain_code = digest[:32], digest[32:]
    for index in path:
        data = b"\x00" + key + (index + _HARDENED).to_bytes(4, "big")
        digest = hmac.new(chain_code, data, hashlib.sha512).digest()
        key, chain_code = digest[:32], digest[32:]
    return key


class Wallet:
    """One account's signing key. Build it with :meth:`from_key_file`, :meth:`from_mnemonic`,
    :meth:`generate` or from a :class:`~citychain.core.crypto.PrivateKey`."""

    __slots__ = ("_key",)

    def __init__(self, key: PrivateKey) -> None:
        self._key = key

    # -- construction
    @classmethod
    def from_key_file(cls, path: str | Path) -> Wallet:
        """Load a keyring key file (``<home>/keyring/<name>.json``: name, address, pubkey and
        the seed in hex, as ``citychain keys`` writes it).

        Raises:
            WalletError: the file is missing, is not a key file, or its address or public key
                is not the seed's.
        """
        file = Path(path)
        try:
            data = json.loads(file.read_text())
            key = PrivateKey(bytes.fromhex(data["seed"]))
        except FileNotFoundError:
            raise WalletError(f"key file {file} does not exist") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # never echo the exception text: it could quote the seed
            raise WalletError(f"key file {file} is not a valid key file "
                              f"({type(exc).__name__})") from None
        if data.get("address", key.address) != key.address:
            raise WalletError(f"key file {file} names address {data.get('address')!r}, but its "
                              f"seed is the key of {key.address}")
        if data.get("pubkey", key.public_key.hex()) != key.public_key.hex():
            raise WalletError(f"key file {file} names a public key that is not its seed's")
        return cls(key)

    @classmethod
    def from_mnemonic(cls, phrase: str, passphrase: str = "", *, account: int = 0) -> Wallet:
        """The wallet of ``account`` for a BIP-39 phrase (and optional passphrase).

        Raises:
            WalletError: the phrase is not a valid BIP-39 English mnemonic.
        """
        return cls(PrivateKey(derive_seed(phrase, passphrase, account)))

    @classmethod
    def from_seed(cls, seed: bytes) -> Wallet:
        """The wallet of a raw 32-byte Ed25519 seed (as :meth:`export_seed` gives it).

        Raises:
            WalletError: the seed is not 32 bytes.
        """
        if len(seed) != SEED_SIZE:
            raise WalletError(f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(seed)}")
        return cls(PrivateKey(bytes(seed)))

    @classmethod
    def generate(cls, *, strength: int = 256, account: int = 0) -> tuple[Wallet, str]:
        """A new wallet and its mnemonic phrase (24 words by default; write it down, it is the
        only way to recover the key). ``strength`` is 128..256 bits in steps of 32.

        Raises:
            ValueError: ``strength`` is not one BIP-39 allows.
        """
        phrase = Mnemonic(_LANGUAGE).generate(strength=strength)
        return cls.from_mnemonic(phrase, account=account), phrase

    # -- identity
    @property
    def address(self) -> str:
        return self._key.address

    @property
    def did(self) -> str:
        return self._key.did

    @property
    def pubkey(self) -> bytes:
        return self._key.public_key

    def export_seed(self) -> bytes:
        """The 32-byte Ed25519 seed: whoever holds it controls the account."""
        return self._key.seed

    def save_key_file(self, path: str | Path, name: str) -> None:
        """Write the key as a keyring key file readable by the owner only (mode 0600).

        Raises:
            WalletError: the file already exists or cannot be written.
        """
        file = Path(path)
        data = {"name": name, "address": self.address, "pubkey": self.pubkey.hex(),
                "seed": self._key.seed.hex()}
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise WalletError(f"key file {file} already exists") from None
        except OSError as exc:
            raise WalletError(f"cannot write key file {file}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")

    # -- signing
    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (already domain-separated)."""
        return self._key.sign(message)

    def sign_tx(self, chain_id: str, sequence: int, messages: Msg | list[Msg] | tuple[Msg, ...],
                *, memo: str = "", sender: str | None = None) -> bytes:
        """Sign a tx of ``messages`` for ``chain_id`` at ``sequence`` and return its wire bytes
        (sender: this wallet's address unless given, e.g. an account whose key was rotated).

        Raises:
            ValueError: no messages, or a chain id over 255 bytes.
        """
        items = (messages,) if isinstance(messages, Msg) else tuple(messages)
        if not items:
            raise ValueError("a tx needs at least one message")
        return sign_tx(self._key, TxBody(chain_id, sender or self.address, sequence, items, memo))

    # -- never show the seed
    def __repr__(self) -> str:
        return f"Wallet(address={self.address})"

    __str__ = __repr__

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Wallet) and other.pubkey == self.pubkey

    def __hash__(self) -> int:
        return hash(self.pubkey)

    def __reduce__(self) -> Any:
        raise TypeError("a Wallet is not picklable (it would write the seed); use "
                        "export_seed() or save_key_file() explicitly")
