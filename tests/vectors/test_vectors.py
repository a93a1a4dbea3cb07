"""Recompute every committed vector from its inputs and compare the bytes exactly."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from citychain.core import codec
from citychain.core.crypto import PrivateKey, domain_bytes, verify_signature
from citychain.core.errors import DecodeError, NonCanonicalError
from citychain.core.tx import TX_DOMAIN, decode_tx

HERE = Path(__file__).resolve().parent


def load_generator() -> ModuleType:
    name = "citychain_test_vectors_generate"
    spec = importlib.util.spec_from_file_location(name, HERE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and type hints look the module up by name
    spec.loader.exec_module(module)
    return module


GENERATE = load_generator()


def load(filename: str) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((HERE / filename).read_text(encoding="utf-8"))
    return vectors


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    return bool(a == b)


CODEC = load("codec.json")
INVALID = load("codec_invalid.json")
KEYS = load("keys.json")
TXS = load("tx.json")


@pytest.mark.parametrize("vector", CODEC, ids=[vector["name"] for vector in CODEC])
def test_codec_vector(vector: dict[str, Any]) -> None:
    value = GENERATE.from_tagged(vector["value"])
    raw = bytes.fromhex(vector["hex"])
    assert codec.encode(value) == raw
    assert same(codec.decode(raw), value)


@pytest.mark.parametrize("vector", INVALID, ids=[vector["name"] for vector in INVALID])
def test_invalid_codec_vector(vector: dict[str, Any]) -> None:
    error = {"DecodeError": DecodeError, "NonCanonicalError": NonCanonicalError}[vector["error"]]
    with pytest.raises((DecodeError, NonCanonicalError)) as info:
        codec.decode(bytes.fromhex(vector["hex"]))
    assert type(info.value) is error


@pytest.mark.parametrize("vector", KEYS, ids=[vector["secret"] for vector in KEYS])
def test_key_vector(vector: dict[str, Any]) -> None:
    seed = hashlib.sha256(b"citychain/test-key/v1\x00" + vector["secret"].encode()).digest()
    assert seed.hex() == vector["seed"]
    key = PrivateKey.from_secret(vector["secret"])
    assert key.seed == seed
    pubkey = bytes.fromhex(vector["public_key"])
    assert key.public_key == pubkey
    assert hashlib.sha256(pubkey).digest()[:20].hex() == vector["address"] == key.address
    assert vector["did"] == "did:city:" + vector["address"] == key.did
    message, signature = bytes.fromhex(vector["message"]), bytes.fromhex(vector["signature"])
    assert key.sign(message) == signature  # Ed25519 signatures are deterministic
    assert verify_signature(pubkey, message, signature)


@pytest.mark.parametrize("vector", TXS, ids=[vector["name"] for vector in TXS])
def test_tx_vector(vector: dict[str, Any]) -> None:
    # Rebuild everything from the inputs as plain data, the way another implementation would.
    key = PrivateKey.from_secret(vector["secret"])
    assert key.address == vector["address"]
    assert key.public_key.hex() == vector["public_key"]
    body = {
        "chain_id": vector["chain_id"],
        "sender": vector["address"],
        "sequence": int(vector["sequence"]),
        "memo": vector["memo"],
        "messages": [{"type": message["type"], "value": GENERATE.from_tagged(message["value"])}
                     for message in vector["messages"]],
    }
    body_bytes = codec.encode(body)
    assert body_bytes.hex() == vector["body"]
    assert vector["domain"] == TX_DOMAIN
    chain = vector["chain_id"].encode()
    sign_bytes = TX_DOMAIN.encode() + b"\x00" + bytes([len(chain)]) + chain + body_bytes
    assert sign_bytes == domain_bytes(TX_DOMAIN, vector["chain_id"], body_bytes)
    assert sign_bytes.hex() == vector["sign_bytes"]
    signature = key.sign(sign_bytes)
    assert signature.hex() == vector["signature"]
    raw = codec.encode({"body": body, "pubkey": key.public_key, "signature": signature})
    assert raw.hex() == vector["tx"]
    assert hashlib.sha256(raw).hexdigest() == vector["hash"]
    # and the node's decoder agrees
    tx = decode_tx(raw, GENERATE.vector_registry())
    assert tx.sign_bytes == sign_bytes
    assert tx.hash.hex() == vector["hash"]
    assert tx.sender == vector["address"]
    assert [message.to_value() for message in tx.messages] == [m["value"] for m in body["messages"]]
    assert verify_signature(tx.pubkey, tx.sign_bytes, tx.signature)


@pytest.mark.parametrize("filename", sorted(GENERATE.FILES))
def test_committed_files_match_the_generator(filename: str) -> None:
    expected = GENERATE.render(GENERATE.FILES[filename]())
    assert (HERE / filename).read_text(encoding="utf-8") == expected, (
        f"{filename} differs from tests/vectors/generate.py; a changed vector is a protocol "
        "change. If it is intended, regenerate with --write and review the diff.")


def test_vectors_cover_the_edges() -> None:
    names = {vector["name"] for vector in CODEC}
    assert {"uint 23", "uint 24", "uint 18446744073709551615", "negint -18446744073709551616",
            "map shorter keys first", "deepest allowed nesting (32 arrays)"} <= names
    assert {vector["error"] for vector in INVALID} == {"DecodeError", "NonCanonicalError"}
    assert len({vector["chain_id"] for vector in TXS}) > 1
