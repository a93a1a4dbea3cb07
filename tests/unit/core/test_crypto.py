"""Keys, signatures, addresses, DIDs and domain-separated signing bytes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core.crypto import (
    ADDRESS_SIZE,
    DID_PREFIX,
    PUBKEY_SIZE,
    SIGNATURE_SIZE,
    PrivateKey,
    address_from_did,
    address_from_pubkey,
    did_from_address,
    domain_bytes,
    is_address,
    verify_signature,
)

KEY = PrivateKey.from_secret("crypto-tests")
OTHER = PrivateKey.from_secret("crypto-tests-other")
MESSAGE = b"transfer 10 ucity"


def test_sign_and_verify() -> None:
    signature = KEY.sign(MESSAGE)
    assert len(signature) == SIGNATURE_SIZE
    assert len(KEY.public_key) == PUBKEY_SIZE
    assert verify_signature(KEY.public_key, MESSAGE, signature)


def test_signatures_are_deterministic() -> None:
    assert KEY.sign(MESSAGE) == KEY.sign(MESSAGE)


def test_invalid_signature_wrong_key() -> None:
    assert not verify_signature(OTHER.public_key, MESSAGE, KEY.sign(MESSAGE))


def test_invalid_signature_wrong_message() -> None:
    assert not verify_signature(KEY.public_key, MESSAGE + b"0", KEY.sign(MESSAGE))


@pytest.mark.parametrize("position", [0, 31, 32, 63])
def test_invalid_signature_tampered(position: int) -> None:
    signature = bytearray(KEY.sign(MESSAGE))
    signature[position] ^= 0x01
    assert not verify_signature(KEY.public_key, MESSAGE, bytes(signature))


@pytest.mark.parametrize(("pubkey", "signature"), [
    (KEY.public_key[:-1], KEY.sign(MESSAGE)),            # short key
    (KEY.public_key + b"\x00", KEY.sign(MESSAGE)),       # long key
    (KEY.public_key, KEY.sign(MESSAGE)[:-1]),            # short signature
    (KEY.public_key, b""),                               # empty signature
    (bytes(PUBKEY_SIZE), KEY.sign(MESSAGE)),             # the all-zero key
    (b"\xff" * PUBKEY_SIZE, KEY.sign(MESSAGE)),          # not a curve point
], ids=["short-key", "long-key", "short-signature", "empty-signature", "zero-key", "non-point"])
def test_invalid_inputs_return_false_instead_of_raising(pubkey: bytes, signature: bytes) -> None:
    assert verify_signature(pubkey, MESSAGE, signature) is False


def test_from_secret_is_deterministic_and_documented() -> None:
    # seed = SHA-256("citychain/test-key/v1" || 0x00 || secret): see tests/vectors/keys.json
    expected = hashlib.sha256(b"citychain/test-key/v1\x00crypto-tests").digest()
    assert PrivateKey.from_secret("crypto-tests").seed == expected
    assert PrivateKey.from_secret(b"crypto-tests") == KEY
    assert PrivateKey.from_secret("crypto-tests!") != KEY


def test_generate_gives_distinct_working_keys() -> None:
    first, second = PrivateKey.generate(), PrivateKey.generate()
    assert first.seed != second.seed
    assert verify_signature(first.public_key, MESSAGE, first.sign(MESSAGE))


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_invalid_seed_length(size: int) -> None:
    with pytest.raises(ValueError, match=f"an Ed25519 seed is 32 bytes, got {size}"):
        PrivateKey(b"\x01" * size)


def test_repr_never_shows_the_seed() -> None:
    seed = KEY.seed
    for text in (repr(KEY), str(KEY), f"{KEY}", f"{KEY!r}", repr([KEY]), repr({"k": KEY})):
        assert seed.hex() not in text
        assert repr(seed) not in text
        assert seed.hex().upper() not in text
        assert f"address={KEY.address}" in text


def test_seed_error_never_shows_the_seed() -> None:
    seed = bytes(range(33))
    with pytest.raises(ValueError) as info:
        PrivateKey(seed)
    assert seed.hex() not in str(info.value)
    assert repr(seed) not in str(info.value)


# ------------------------------------------------------------------------------------ addresses

def test_address_is_hex_of_sha256_of_pubkey_first_20_bytes() -> None:
    expected = hashlib.sha256(KEY.public_key).digest()[:ADDRESS_SIZE].hex()
    assert KEY.address == address_from_pubkey(KEY.public_key) == expected
    assert len(KEY.address) == 2 * ADDRESS_SIZE
    assert is_address(KEY.address)


@pytest.mark.parametrize("text", [
    "",
    "0" * 39,
    "0" * 41,
    "A" * 40,
    "g" * 40,
    KEY.address.upper(),
    KEY.address + "\n",    # "$" in a regex would accept this; bytes.fromhex ignores it
    "\n" + KEY.address,
    KEY.address[:-1] + " ",
    " " + KEY.address[1:],
    "0x" + KEY.address[2:],
    "\u0660" * 40,           # Arabic-Indic digits are not hex digits here
], ids=repr)
def test_invalid_address(text: str) -> None:
    assert not is_address(text)


def test_invalid_address_not_a_string() -> None:
    assert not is_address(bytes.fromhex(KEY.address))  # type: ignore[arg-type]
    assert not is_address(None)  # type: ignore[arg-type]


def test_did_round_trip() -> None:
    assert KEY.did == DID_PREFIX + KEY.address == did_from_address(KEY.address)
    assert KEY.did.startswith("did:city:")
    assert address_from_did(KEY.did) == KEY.address


@pytest.mark.parametrize("did", [
    KEY.address,
    "did:other:" + KEY.address,
    "DID:city:" + KEY.address,
    "did:city:",
    "did:city:" + KEY.address.upper(),
    "did:city:" + KEY.address + "\n",
    "did:city:" + KEY.address + "#key-1",
])
def test_invalid_did(did: str) -> None:
    assert address_from_did(did) is None


# ------------------------------------------------------------------------------------ domains

def test_domain_bytes_layout() -> None:
    assert domain_bytes("citychain/tx/v1", "city-1", b"\xa0") == (
        b"citychain/tx/v1" + b"\x00" + b"\x06" + b"city-1" + b"\xa0")


def test_domain_separation_other_domain() -> None:
    signature = KEY.sign(domain_bytes("citychain/tx/v1", "city-1", MESSAGE))
    assert verify_signature(KEY.public_key, domain_bytes("citychain/tx/v1", "city-1", MESSAGE),
                            signature)
    assert not verify_signature(KEY.public_key,
                                domain_bytes("citychain/header/v1", "city-1", MESSAGE), signature)


def test_domain_separation_other_chain() -> None:
    signature = KEY.sign(domain_bytes("citychain/tx/v1", "city-1", MESSAGE))
    for chain_id in ("city-2", "city-1 ", "", "City-1"):
        assert not verify_signature(KEY.public_key,
                                    domain_bytes("citychain/tx/v1", chain_id, MESSAGE), signature)


def test_domain_separation_payload_is_not_the_signed_bytes() -> None:
    # a signature over the framed bytes is useless for the bare payload, and the reverse
    assert not verify_signature(KEY.public_key, MESSAGE,
                                KEY.sign(domain_bytes("citychain/tx/v1", "city-1", MESSAGE)))


DOMAINS = st.text(min_size=1, max_size=20).filter(lambda text: "\x00" not in text)
CHAIN_IDS = st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(DOMAINS, CHAIN_IDS, st.binary(max_size=20), DOMAINS, CHAIN_IDS, st.binary(max_size=20))
def test_domain_bytes_never_collide(domain_a: str, chain_a: str, payload_a: bytes,
                                    domain_b: str, chain_b: str, payload_b: bytes) -> None:
    # The domain ends at its first NUL and the chain id is length-prefixed, so two different
    # (domain, chain id, payload) triples can never frame to the same bytes.
    if (domain_a, chain_a, payload_a) != (domain_b, chain_b, payload_b):
        assert domain_bytes(domain_a, chain_a, payload_a) != domain_bytes(domain_b, chain_b,
                                                                          payload_b)


def test_invalid_chain_id_longer_than_255_bytes() -> None:
    assert domain_bytes("d", "x" * 255, b"").startswith(b"d\x00\xff")
    with pytest.raises(ValueError, match="chain id longer than 255 bytes"):
        domain_bytes("d", "x" * 256, b"")
    with pytest.raises(ValueError, match="chain id longer than 255 bytes"):
        domain_bytes("d", "é" * 128, b"")  # 128 characters, 256 bytes
