"""Build the golden test vectors (canonical encoding, keys, signed transactions) from the code.

The JSON files next to this script are committed; other implementations check themselves
against them, and tests/vectors/test_vectors.py recomputes every vector from its inputs.

    .venv/bin/python tests/vectors/generate.py           # compare with the committed files
    .venv/bin/python tests/vectors/generate.py --write   # regenerate them (review the diff!)

A vector that changes is a protocol change: every signature and hash made before it breaks.

Values in the files use a tagged JSON form so that nothing is lost to JSON's number or
string rules: {"null": null}, {"bool": true}, {"int": "<decimal>"}, {"text": "..."},
{"bytes": "<hex>"}, {"list": [...]}, {"map": [["key", <value>], ...]}. A map's pairs are
listed in the order the value was built (often not the canonical order, on purpose).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.errors import DecodeError, NonCanonicalError
from citychain.core.hashing import sha256
from citychain.core.messages import MessageRegistry, Msg
from citychain.core.tx import TX_DOMAIN, TxBody, sign_tx

HERE = Path(__file__).resolve().parent
MESSAGE = b"citychain test vector message"


# ------------------------------------------------------------------------------------ tagged JSON

def to_tagged(value: Any) -> Any:
    """Return ``value`` in the tagged JSON form (see the module docstring)."""
    if value is None:
        return {"null": None}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, list | tuple):
        return {"list": [to_tagged(item) for item in value]}
    if isinstance(value, dict):
        return {"map": [[key, to_tagged(item)] for key, item in value.items()]}
    raise TypeError(f"no tagged form for {type(value).__name__}")


def from_tagged(tagged: Any) -> Any:
    """Return the value a tagged JSON form describes."""
    ((kind, inner),) = tagged.items()
    if kind == "null":
        return None
    if kind == "bool":
        return bool(inner)
    if kind == "int":
        return int(inner)
    if kind == "text":
        return str(inner)
    if kind == "bytes":
        return bytes.fromhex(inner)
    if kind == "list":
        return [from_tagged(item) for item in inner]
    if kind == "map":
        return {key: from_tagged(item) for key, item in inner}
    raise ValueError(f"unknown tag {kind!r}")


# ------------------------------------------------------------------------------------ codec

def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


CODEC_VALUES: list[tuple[str, Any]] = [
    ("null", None),
    ("false", False),
    ("true", True),
    *[(f"uint {value}", value) for value in (
        0, 1, 10, 23, 24, 25, 100, 255, 256, 1000, 65535, 65536, 1000000,
        2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1)],
    *[(f"negint {value}", value) for value in (
        -1, -10, -24, -25, -100, -256, -257, -1000, -65536, -65537,
        -(2**32), -(2**32) - 1, -(2**63), -(2**64))],
    ("text empty", ""),
    ("text ascii", "a"),
    ("text IETF", "IETF"),
    ("text quote and backslash", '"\\'),
    ("text two-byte utf-8", "\u00fc"),
    ("text three-byte utf-8", "\u6c34"),
    ("text four-byte utf-8", "\U00010151"),
    ("text NUL", "a\u0000b"),
    ("text 23 bytes (longest one-byte header)", "x" * 23),
    ("text 24 bytes (first two-byte header)", "x" * 24),
    ("text 255 bytes", "x" * 255),
    ("text 256 bytes (first three-byte header)", "x" * 256),
    ("bytes empty", b""),
    ("bytes 4", bytes([1, 2, 3, 4])),
    ("bytes 24", bytes(range(24))),
    ("bytes 32 (a public key or hash)", sha256(b"citychain")),
    ("bytes 256", bytes(range(256))),
    ("list empty", []),
    ("list ints", [1, 2, 3]),
    ("list nested", [1, [2, 3], [4, 5]]),
    ("list 25 items (two-byte header)", list(range(1, 26))),
    ("list mixed", [None, True, -1, "a", b"\x00", [], {}]),
    ("map empty", {}),
    ("map sorted", {"a": 1, "b": [2, 3]}),
    ("map built unsorted", {"b": 1, "a": 2, "c": 3}),
    ("map shorter keys first", {"aa": 1, "b": 2, "ccc": 3, "d": 4}),
    ("map key order by utf-8 bytes", {"\u00e9": 1, "z": 2, "ab": 3, "\u00e0": 4}),
    ("map long keys", {"k" * 24: 1, "k" * 23: 2, "j" * 24: 3}),
    ("map empty key", {"": 0, "a": 1}),
    ("map nested", {"outer": {"inner": {"leaf": [b"\xff", None]}}, "n": -5}),
    ("deepest allowed nesting (32 arrays)", nested(32)),
    ("transaction body", {
        "chain_id": "citychain-vectors-1",
        "sender": PrivateKey.from_secret("vector-0").address,
        "sequence": 0,
        "memo": "",
        "messages": [{"type": "citychain.vectors.v1.MsgTransfer",
                      "value": {"to": PrivateKey.from_secret("vector-1").address,
                                "amount": 1500}}],
    }),
]

INVALID_ENCODINGS: list[tuple[str, str, type[Exception]]] = [
    ("trailing byte", "0000", DecodeError),
    ("truncated", "1901", DecodeError),
    ("empty input", "", DecodeError),
    ("half-precision float", "f93c00", DecodeError),
    ("single-precision float", "fa3f800000", DecodeError),
    ("double-precision float", "fb3ff0000000000000", DecodeError),
    ("tag 0 (date/time string)", "c074323031332d30332d32315432303a30343a30305a", DecodeError),
    ("tag 1 (epoch date/time)", "c11a514b67b0", DecodeError),
    ("tag 2 bignum 2**64", "c249010000000000000000", DecodeError),
    ("tag 3 bignum -2**64-1", "c349010000000000000000", DecodeError),
    ("tag 2 bignum holding a small integer", "c24101", DecodeError),
    ("self-described CBOR tag", "d9d9f701", DecodeError),
    ("undefined", "f7", DecodeError),
    ("simple value", "f0", DecodeError),
    ("integer map key", "a10102", DecodeError),
    ("byte string map key", "a1410102", DecodeError),
    ("invalid utf-8", "62c328", DecodeError),
    ("lone break", "ff", DecodeError),
    ("reserved additional information", "1c", DecodeError),
    ("33 nested arrays", "81" * 33 + "00", DecodeError),
    ("integer 23 in two bytes", "1817", NonCanonicalError),
    ("integer 255 in three bytes", "1900ff", NonCanonicalError),
    ("integer -1 in two bytes", "3800", NonCanonicalError),
    ("text length 1 in two bytes", "780161", NonCanonicalError),
    ("array length 1 in two bytes", "980100", NonCanonicalError),
    ("indefinite-length array", "9f01ff", NonCanonicalError),
    ("indefinite-length map", "bf616101ff", NonCanonicalError),
    ("indefinite-length byte string", "5f4101ff", NonCanonicalError),
    ("indefinite-length text string", "7f6161ff", NonCanonicalError),
    ("keys bytewise out of order", "a2616201616102", NonCanonicalError),
    ("longer key before shorter key", "a2626161016162 02", NonCanonicalError),
    ("duplicate key", "a2616101616102", NonCanonicalError),
]


def codec_vectors() -> list[dict[str, Any]]:
    return [{"name": name, "value": to_tagged(value), "hex": codec.encode(value).hex()}
            for name, value in CODEC_VALUES]


def codec_invalid_vectors() -> list[dict[str, Any]]:
    vectors = []
    for name, hex_text, error in INVALID_ENCODINGS:
        raw = bytes.fromhex(hex_text.replace(" ", ""))
        try:
            codec.decode(raw)
        except (DecodeError, NonCanonicalError) as exc:
            if type(exc) is not error:
                raise AssertionError(f"{name}: {type(exc).__name__}, expected "
                                     f"{error.__name__}") from exc
        else:
            raise AssertionError(f"{name}: decoded, expected {error.__name__}")
        vectors.append({"name": name, "hex": raw.hex(), "error": error.__name__})
    return vectors


# ------------------------------------------------------------------------------------ keys

def key_vectors() -> list[dict[str, Any]]:
    vectors = []
    for index in range(5):
        secret = f"vector-{index}"
        key = PrivateKey.from_secret(secret)
        vectors.append({
            "secret": secret,
            "seed": key.seed.hex(),
            "public_key": key.public_key.hex(),
            "address": key.address,
            "did": key.did,
            "message": MESSAGE.hex(),
            "signature": key.sign(MESSAGE).hex(),
        })
    return vectors


# ------------------------------------------------------------------------------------ transactions

@dataclass(frozen=True)
class MsgTransfer(Msg):
    """An example message for the vectors (any registered message has this shape on the wire)."""

    TYPE = "citychain.vectors.v1.MsgTransfer"

    to: str
    amount: int


@dataclass(frozen=True)
class MsgAnchor(Msg):
    """An example message with the other field kinds: bytes, a list of text, a boolean."""

    TYPE = "citychain.vectors.v1.MsgAnchor"

    root: bytes
    labels: tuple[str, ...]
    public: bool


def vector_registry() -> MessageRegistry:
    registry = MessageRegistry()
    registry.register(MsgTransfer)
    registry.register(MsgAnchor)
    return registry


def _address(index: int) -> str:
    return PrivateKey.from_secret(f"vector-{index}").address


TRANSACTIONS: list[tuple[str, int, str, int, str, tuple[Msg, ...]]] = [
    # (name, signer index, chain id, sequence, memo, messages)
    ("one transfer", 0, "citychain-vectors-1", 0, "",
     (MsgTransfer(_address(1), 1500),)),
    ("same body, another chain id", 0, "citychain-vectors-2", 0, "",
     (MsgTransfer(_address(1), 1500),)),
    ("memo with non-ascii text", 1, "citychain-vectors-1", 1, "caf\u00e9 \u2615 rent",
     (MsgTransfer(_address(2), 250000),)),
    ("two messages, large sequence", 2, "citychain-vectors-1", 2**32, "batch",
     (MsgTransfer(_address(3), 1),
      MsgAnchor(sha256(b"readings 2026-01-01"), ("air", "pm2.5"), True))),
    ("largest sequence, empty list field", 3, "citychain-vectors-1", 2**63 - 1, "",
     (MsgAnchor(b"", (), False),)),
]


def tx_vectors() -> list[dict[str, Any]]:
    vectors = []
    for name, index, chain_id, sequence, memo, messages in TRANSACTIONS:
        secret = f"vector-{index}"
        key = PrivateKey.from_secret(secret)
        body = TxBody(chain_id, key.address, sequence, messages, memo)
        raw = sign_tx(key, body)
        value = codec.decode(raw)
        vectors.append({
            "name": name,
            "secret": secret,
            "address": key.address,
            "public_key": key.public_key.hex(),
            "chain_id": chain_id,
            "sequence": str(sequence),
            "memo": memo,
            "messages": [{"type": message.TYPE, "value": to_tagged(message.to_value())}
                         for message in messages],
            "domain": TX_DOMAIN,
            "body": codec.encode(body.to_value()).hex(),
            "sign_bytes": body.sign_bytes().hex(),
            "signature": value["signature"].hex(),
            "tx": raw.hex(),
            "hash": sha256(raw).hex(),
        })
    return vectors


# ------------------------------------------------------------------------------------ files

FILES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "codec.json": codec_vectors,
    "codec_invalid.json": codec_invalid_vectors,
    "keys.json": key_vectors,
    "tx.json": tx_vectors,
}


def render(vectors: list[dict[str, Any]]) -> str:
    return json.dumps(vectors, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="overwrite the committed files")
    args = parser.parse_args(argv)
    stale = []
    for filename, build in FILES.items():
        text = render(build())
        path = HERE / filename
        if args.write:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(filename)
    if stale:
        print(f"differ from the code: {', '.join(stale)} (run with --write to regenerate)")
        return 1
    if not args.write:
        print("all vector files match the code")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
