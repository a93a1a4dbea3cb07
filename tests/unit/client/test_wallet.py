"""Wallet: keyring files, BIP-39 mnemonics through SLIP-0010 (its published vector), signing,
and a seed that is never shown."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from mnemonic import Mnemonic

from citychain.client import Wallet, WalletError
from citychain.client.wallet import DERIVATION_PATH, derive_seed, slip10_ed25519
from citychain.core.crypto import PrivateKey, verify_signature
from citychain.core.messages import MessageRegistry
from citychain.core.tx import decode_tx
from citychain.modules.bank.messages import MsgTransfer
from citychain.node.keyring import Keyring

GOLDEN_ADDRESS = "a447ce295d1eb8792fcf350e7dcbcfb0a89c52f4"
"""The address of PHRASE (account 0): changing the derivation would lose every user's funds."""
PHRASE = ("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon "
          "abandon about")


def test_slip10_ed25519_matches_the_published_vector() -> None:
    seed = bytes.fromhex("000102030405060708090a0b0c0d0e0f")  # SLIP-0010 test vector 1
    assert slip10_ed25519(seed, ()).hex() == (
        "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7")
    assert slip10_ed25519(seed, (0,)).hex() == (
        "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3")


def test_mnemonic_derivation_is_fixed() -> None:
    wallet = Wallet.from_mnemonic(PHRASE)
    assert wallet.export_seed() == derive_seed(PHRASE) == slip10_ed25519(
        Mnemonic.to_seed(PHRASE, ""), (44, 6373, 0, 0, 0))
    assert wallet.address == GOLDEN_ADDRESS
    assert DERIVATION_PATH.format(account=0) == "m/44'/6373'/0'/0'/0'"
    assert Wallet.from_mnemonic("  " + PHRASE.replace(" ", "   ") + "\n") == wallet
    assert Wallet.from_mnemonic(PHRASE, account=1) != wallet
    assert Wallet.from_mnemonic(PHRASE, "passphrase") != wallet


def test_generate_gives_a_recoverable_phrase() -> None:
    wallet, phrase = Wallet.generate()
    assert len(phrase.split()) == 24
    assert Wallet.from_mnemonic(phrase) == wallet
    short, words = Wallet.generate(strength=128)
    assert len(words.split()) == 12 and short != wallet


def test_invalid_mnemonic() -> None:
    with pytest.raises(WalletError, match="checksum"):
        Wallet.from_mnemonic(PHRASE.replace("about", "abandon"))
    with pytest.raises(WalletError):
        Wallet.from_mnemonic("not a bip39 phrase at all")
    with pytest.raises(WalletError, match="account"):
        Wallet.from_mnemonic(PHRASE, account=2**31)


def test_the_seed_is_never_shown() -> None:
    wallet = Wallet.from_mnemonic(PHRASE)
    seed = wallet.export_seed()
    assert len(seed) == 32
    for shown in (repr(wallet), str(wallet), f"{wallet}", repr([wallet])):
        assert shown == f"Wallet(address={wallet.address})" or wallet.address in shown
        assert seed.hex() not in shown and "abandon" not in shown
    for name in dir(wallet):  # no public attribute holds the seed, whatever its name
        value = getattr(wallet, name)
        if not name.startswith("_") and not callable(value):
            assert value != seed and seed.hex() not in str(value), name
    assert not hasattr(wallet, "__dict__")  # no attribute can be added to hold it either
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(wallet)


def test_key_file_round_trip_with_the_keyring(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "keyring")
    info = keyring.create("alice", PrivateKey.from_secret("test_wallet/alice"))
    wallet = Wallet.from_key_file(tmp_path / "keyring" / "alice.json")
    assert (wallet.address, wallet.did, wallet.pubkey.hex()) == (info.address, info.did,
                                                                 info.pubkey)
    saved = tmp_path / "saved" / "copy.json"
    wallet.save_key_file(saved, "copy")
    assert saved.stat().st_mode & 0o777 == 0o600
    assert Keyring(saved.parent).load("copy").address == wallet.address
    with pytest.raises(WalletError, match="already exists"):
        wallet.save_key_file(saved, "copy")


def test_invalid_key_files(tmp_path: Path) -> None:
    with pytest.raises(WalletError, match="does not exist"):
        Wallet.from_key_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"seed": "zz' + "00" * 31 + '"}')
    with pytest.raises(WalletError, match="not a valid key file") as caught:
        Wallet.from_key_file(broken)
    assert "00" * 31 not in str(caught.value)
    other = tmp_path / "other.json"
    key = PrivateKey.from_secret("test_wallet/other")
    other.write_text('{"address": "' + "0" * 40 + '", "seed": "' + key.seed.hex() + '"}')
    with pytest.raises(WalletError, match="names address") as mismatch:
        Wallet.from_key_file(other)
    assert key.seed.hex() not in str(mismatch.value)


def test_sign_tx_decodes_and_verifies() -> None:
    wallet = Wallet.from_mnemonic(PHRASE)
    message = MsgTransfer(to=f"did:city:{'ab' * 20}", denom="ucity", amount=5)
    raw = wallet.sign_tx("wallet-city", 7, message, memo="hi")
    registry = MessageRegistry()
    registry.register(MsgTransfer)
    tx = decode_tx(raw, registry)
    assert (tx.sender, tx.body.sequence, tx.messages, tx.body.memo) == (
        wallet.address, 7, (message,), "hi")
    assert tx.pubkey == wallet.pubkey
    assert verify_signature(wallet.pubkey, tx.sign_bytes, tx.signature)
    assert wallet.sign_tx("wallet-city", 7, [message], memo="hi") == raw  # Ed25519: same bytes
    with pytest.raises(ValueError, match="at least one"):
        wallet.sign_tx("wallet-city", 0, [])
    assert Wallet.from_seed(wallet.export_seed()) == wallet
    with pytest.raises(WalletError):
        Wallet.from_seed(b"short")
