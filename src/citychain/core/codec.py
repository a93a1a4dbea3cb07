"""Canonical encoding: deterministic CBOR (RFC 8949 §4.2) over a small set of plain types.

Everything that is hashed or signed is encoded here and nowhere else. Allowed values are
``None``, ``bool``, integers in [-2**64, 2**64 - 1], ``str``, ``bytes``, ``list`` (tuples encode
as lists) and ``dict`` with ``str`` keys. Floats, tags, big integers and non-string map keys are
refused. :func:`decode` only accepts bytes that :func:`encode` would produce for the decoded value,
so every value has exactly one encoding. See docs/adr/0001-canonical-encoding.md.
"""

from __future__ import annotations

from typing import Any

import cbor2

from citychain.core.errors import DecodeError, NonCanonicalError

MAX_INT = 2**64 - 1
MIN_INT = -(2**64)
MAX_DEPTH = 32


def encode(value: Any) -> bytes:
    """Return the canonical encoding of ``value``.

    Raises:
        DecodeError: ``value`` holds a type that has no canonical encoding (float, set, object...).
    """
    _check_value(value, 0, "value")
    return cbor2.dumps(value, canonical=True)


def decode(data: bytes) -> Any:
    """Decode canonical bytes.

    Raises:
        DecodeError: the bytes are not well-formed or hold a disallowed type.
        NonCanonicalError: the bytes decode but are not the canonical encoding of their value.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise DecodeError(f"malformed encoding: {exc}") from None
    if not _check_value(value, 0, "value", ordered=True) or cbor2.dumps(value) != data:
        # The plain encoder keeps the decoded key order and always writes the shortest
        # lengths and integers, so equality with the input proves the input is canonical.
        raise NonCanonicalError("bytes are not in canonical form (key order, lengths or "
                                "integer widths differ from the canonical encoding)")
    return value


def _canonical_key_order(keys: list[str]) -> bool:
    encoded = [key.encode() for key in keys]
    return all((len(a), a) < (len(b), b) for a, b in zip(encoded, encoded[1:], strict=False))


def _check_value(value: Any, depth: int, path: str, ordered: bool = False) -> bool:
    """Raise DecodeError (naming the path) on a disallowed value; with ``ordered``, return
    whether every map's keys appear in canonical order."""
    try:
        return _walk(value, depth, ordered)
    except _Disallowed:
        _locate(value, depth, path)
        raise DecodeError("value has no canonical encoding") from None


class _Disallowed(Exception):
    pass


def _walk(value: Any, depth: int, ordered: bool) -> bool:
    # Hot path (every transaction): no path strings, no per-node allocation beyond recursion.
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or value is None:
        return True
    if kind is int:
        if MIN_INT <= value <= MAX_INT:
            return True
        raise _Disallowed
    if depth >= MAX_DEPTH:
        raise _Disallowed
    in_order = True
    if kind is list or kind is tuple:
        for item in value:
            if not _walk(item, depth + 1, ordered):
                in_order = False
        return in_order
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise _Disallowed
            if not _walk(item, depth + 1, ordered):
                in_order = False
        if ordered and len(value) > 1 and not _canonical_key_order(list(value)):
            in_order = False
        return in_order
    raise _Disallowed


def _locate(value: Any, depth: int, path: str) -> None:
    """Slow twin of _walk that raises a DecodeError naming the offending path."""
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or value is None:
        return
    if kind is int:
        if not MIN_INT <= value <= MAX_INT:
            raise DecodeError(f"integer at {path} is outside the 64-bit range", field=path)
        return
    if depth >= MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH} at {path}", field=path)
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            _locate(item, depth + 1, f"{path}[{index}]")
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise DecodeError(f"map key at {path} is {type(key).__name__}, not str",
                                  field=path)
            _locate(item, depth + 1, f"{path}.{key}")
        return
    if kind is float:
        raise DecodeError(f"float at {path} is not allowed; use integers in the smallest unit",
                          field=path)
    raise DecodeError(f"type {kind.__name__} at {path} has no canonical encoding", field=path)
