"""Canonical encoding: deterministic CBOR (RFC 8949 §4.2) over a small set of plain types.

Everything that is hashed or signed is encoded here and nowhere else. Allowed values are
``None``, ``bool``, integers in [-2**64, 2**64 - 1], ``str``, ``bytes``, ``list`` (tuples encode
as lists) and ``dict`` with ``str`` keys. Floats, tags, big integers and non-string map keys are
refused. :func:`decode` only accepts bytes that :func:`encode` would produce for the decoded value,
so every value has exactly one encoding. See docs/adr/0001-canonical-encoding.md.

Encoding uses cbor2's canonical mode (map keys length-first, then bytewise, as in RFC 7049 §3.9 /
RFC 8949 §4.2.3). Decoding is a strict reader of exactly that subset written here: it never runs
a tag's semantic decoder on untrusted input, and it names the first problem it meets.
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
        DecodeError: ``value`` holds a type that has no canonical encoding (float, set, object...),
            an integer outside the 64-bit range, a non-string map key, nesting deeper than
            MAX_DEPTH, or a string that is not valid Unicode (lone surrogates).
    """
    _check_value(value, 0, "value")
    try:
        return cbor2.dumps(value, canonical=True)
    except UnicodeEncodeError:
        _locate(value, 0, "value", text=True)
        raise DecodeError("value holds a string that cannot be encoded as UTF-8") from None


def encode_scalar(value: int | str | bytes) -> bytes:
    """The canonical encoding of one integer (in [MIN_INT, MAX_INT]), ``str`` or ``bytes``:
    exactly the bytes :func:`encode` writes for it, alone or inside a list or map. For a hot
    path that assembles a fixed-shape map itself (keys in :func:`encode`'s order after
    :func:`map_head`); such a caller tests its bytes against :func:`encode`.

    Raises:
        DecodeError: a bool or another type, or an integer out of range.
        UnicodeEncodeError: a string that is not valid Unicode (lone surrogates).
    """
    if type(value) is int:
        if not MIN_INT <= value <= MAX_INT:
            raise DecodeError(f"integer {value} is outside the 64-bit range")
    elif type(value) is not str and type(value) is not bytes:
        raise DecodeError(f"{type(value).__name__} is not an integer, str or bytes")
    return cbor2.dumps(value)


def map_head(size: int) -> bytes:
    """The first bytes of the canonical encoding of a map with ``size`` entries."""
    if not 0 <= size < 2**32:
        raise DecodeError(f"map size {size} out of range")
    head = cbor2.dumps(size)  # an unsigned integer's head, same shortest-form argument
    return bytes((head[0] | 0xA0,)) + head[1:]


def decode(data: bytes) -> Any:
    """Decode canonical bytes.

    Raises:
        DecodeError: the bytes are not well-formed (truncated, trailing bytes, reserved or
            unexpected bytes, invalid UTF-8), nest deeper than MAX_DEPTH, or hold a disallowed
            item (float, tag, simple value, undefined, non-string map key). ``details`` carries the
            byte ``offset`` of the problem.
        NonCanonicalError: the bytes are well-formed but not the canonical encoding of their value
            (an integer or length not in its shortest form, an indefinite-length item, map keys out
            of order, a duplicate map key).
    """
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    try:
        value, end = _decode_item(data, 0, 0)
    except IndexError:
        end = len(data) + 1
    if end > len(data):
        raise DecodeError(f"truncated input: the value is incomplete at the end of the input "
                          f"(byte {len(data)})", offset=len(data))
    if end != len(data):
        extra = len(data) - end
        raise DecodeError(f"{extra} trailing byte{'s' if extra > 1 else ''} after the value at "
                          f"byte {end}", offset=end)
    return value


# ------------------------------------------------------------------------------------ decoding
#
# One byte opens every item: the major type in its top 3 bits, and in the low 5 bits either the
# argument itself (< 24) or how many bytes of argument follow (24..27: 1, 2, 4, 8), 31 for an
# indefinite length, 28..30 reserved. The argument is a uint (major 0), -1 - n (1), the length of a
# byte string (2), text string (3), array (4) or map (5), or a tag number (6). Major 7 holds
# false/true/null (0xf4..0xf6), floats, simple values and the break byte.
#
# The hot path is the map loop: keys and small values are decoded in place without a call.
# Lengths are not checked against the input as they are read: every item needs at least one more
# byte, so a claimed length beyond the input ends in an IndexError (reading past the end) or in a
# final position past the end, and ``decode`` reports both as truncated input.

_ARGUMENT_WIDTH = {24: 1, 25: 2, 26: 4, 27: 8}
_KIND = {0: "unsigned integer", 1: "negative integer", 2: "byte string", 3: "text string",
         4: "array", 5: "map", 6: "tag", 7: "simple value"}
_TAG_NAMES = {0: "date/time string", 1: "epoch date/time", 2: "positive bignum",
              3: "negative bignum", 4: "decimal fraction", 5: "bigfloat",
              55799: "self-described CBOR"}


def _decode_item(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    head = data[pos]
    major = head >> 5
    if major >= 6:
        if head == 0xF6:
            return None, pos + 1
        if head == 0xF5:
            return True, pos + 1
        if head == 0xF4:
            return False, pos + 1
        raise _refused_item(data, pos)
    at = pos
    info = head & 0x1F
    if info < 24:
        arg = info
        pos += 1
    elif info == 24:
        arg = data[pos + 1]
        if arg < 24:
            raise _not_shortest(major, 1, arg, pos)
        pos += 2
    else:
        arg, pos = _read_argument(data, pos, major, info)
    if major == 3:
        end = pos + arg
        try:
            return data[pos:end].decode(), end
        except UnicodeDecodeError as exc:
            raise _bad_text(data, pos, end, exc) from None
    if major == 5:
        if depth >= MAX_DEPTH:
            raise _too_deep(at)
        result: dict[str, Any] = {}
        previous = b""
        for _ in range(arg):
            start = pos
            head = data[pos]
            if 0x60 <= head <= 0x77:  # a text key shorter than 24 bytes: the usual case
                pos += 1 + head - 0x60
                try:
                    key = data[start + 1:pos].decode()
                except UnicodeDecodeError as exc:
                    raise _bad_text(data, start + 1, pos, exc) from None
            elif head >> 5 == 3:
                key, pos = _decode_item(data, pos, depth + 1)
            else:
                raise DecodeError(f"map key at byte {start} is {_describe(head)}, not a text "
                                  "string", offset=start)
            # Canonical order is shorter encoded key first, then bytewise. Every key is a text
            # string, whose header grows with its length, so plain bytewise comparison of the
            # encoded keys gives exactly that order; equal means a duplicate.
            encoded = data[start:pos]
            if encoded <= previous:
                raise _misordered_key(data, key, encoded == previous, start, pos)
            previous = encoded
            head = data[pos]
            if head < 0x18:
                result[key] = head
                pos += 1
            elif head < 0x1C:  # an unsigned integer with a 1, 2, 4 or 8-byte argument
                result[key], pos = _read_argument(data, pos, 0, head)
            elif 0x60 <= head <= 0x78:  # a text string shorter than 256 bytes
                if head == 0x78:
                    start = pos + 2
                    size = data[pos + 1]
                    if size < 24:
                        raise _not_shortest(3, 1, size, pos)
                else:
                    start = pos + 1
                    size = head - 0x60
                pos = start + size
                try:
                    result[key] = data[start:pos].decode()
                except UnicodeDecodeError as exc:
                    raise _bad_text(data, start, pos, exc) from None
            elif head == 0x58:  # a byte string of 24 to 255 bytes (keys, signatures, hashes)
                start = pos + 2
                size = data[pos + 1]
                if size < 24:
                    raise _not_shortest(2, 1, size, pos)
                pos = start + size
                result[key] = data[start:pos]
            else:
                result[key], pos = _decode_item(data, pos, depth + 1)
        return result, pos
    if major == 0:
        return arg, pos
    if major == 2:
        end = pos + arg
        return data[pos:end], end
    if major == 4:
        if depth >= MAX_DEPTH:
            raise _too_deep(at)
        items = []
        for _ in range(arg):
            item, pos = _decode_item(data, pos, depth + 1)
            items.append(item)
        return items, pos
    return -1 - arg, pos  # major 1


def _read_argument(data: bytes, pos: int, major: int, info: int) -> tuple[int, int]:
    """Read an argument that does not fit in the initial byte; refuse non-shortest forms."""
    width = _ARGUMENT_WIDTH.get(info)
    if width is None:
        if info == 31 and 2 <= major <= 5:
            raise NonCanonicalError(f"indefinite-length {_KIND[major]} at byte {pos}; "
                                    "only definite lengths are canonical", offset=pos)
        raise DecodeError(f"malformed {_KIND[major]} at byte {pos}: additional information "
                          f"{info} is {'reserved' if info < 31 else 'not allowed here'}",
                          offset=pos)
    end = pos + 1 + width
    if end > len(data):
        raise IndexError
    arg = int.from_bytes(data[pos + 1:end], "big")
    if arg < (24 if width == 1 else 1 << (4 * width)):
        raise _not_shortest(major, width, arg, pos)
    return arg, end


def _not_shortest(major: int, width: int, arg: int, pos: int) -> NonCanonicalError:
    what = "integer" if major < 2 else "length"
    return NonCanonicalError(f"{_KIND[major]} at byte {pos}: {what} {arg} is not in its shortest "
                             f"form ({width + 1} bytes)", offset=pos)


def _refused_item(data: bytes, pos: int) -> DecodeError:
    """Return the error for a major-type 6 or 7 item other than false, true and null."""
    head = data[pos]
    if head >> 5 == 6:
        info = head & 0x1F
        width = _ARGUMENT_WIDTH.get(info, 0)
        if info >= 28 or pos + 1 + width > len(data):
            return DecodeError(f"malformed tag at byte {pos}", offset=pos)
        number = info if width == 0 else int.from_bytes(data[pos + 1:pos + 1 + width], "big")
        name = _TAG_NAMES.get(number)
        label = f"tag {number} ({name})" if name else f"tag {number}"
        hint = "; integers must fit in 64 bits" if number in (2, 3) else ""
        return DecodeError(f"{label} at byte {pos}: tags are not allowed{hint}", offset=pos)
    if head in (0xF9, 0xFA, 0xFB):
        precision = {0xF9: "half", 0xFA: "single", 0xFB: "double"}[head]
        return DecodeError(f"{precision}-precision float at byte {pos}: floats are not allowed; "
                           "use integers in the smallest unit", offset=pos)
    if head == 0xF7:
        return DecodeError(f"undefined at byte {pos} is not allowed", offset=pos)
    if head <= 0xF3:
        return DecodeError(f"simple value {head & 0x1F} at byte {pos} is not allowed",
                           offset=pos)
    if head == 0xF8:
        return DecodeError(f"simple value at byte {pos} is not allowed", offset=pos)
    if head == 0xFF:
        return DecodeError(f"unexpected break byte at byte {pos}", offset=pos)
    return DecodeError(f"reserved initial byte 0x{head:02x} at byte {pos}", offset=pos)


def _describe(head: int) -> str:
    if head >> 5 == 7:
        return {0xF4: "a boolean", 0xF5: "a boolean", 0xF6: "null"}.get(head,
                                                                      "a float or simple value")
    kind = _KIND[head >> 5]
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _bad_text(data: bytes, pos: int, end: int, exc: UnicodeDecodeError) -> DecodeError:
    if end > len(data):
        raise IndexError  # the string was cut short, which is what made it invalid
    return DecodeError(f"text string at byte {pos + exc.start} is not valid UTF-8: {exc.reason}",
                       offset=pos + exc.start)


def _too_deep(pos: int) -> DecodeError:
    return DecodeError(f"nesting deeper than {MAX_DEPTH} levels at byte {pos}", offset=pos)


def _misordered_key(data: bytes, key: str, duplicate: bool, pos: int,
                    end: int) -> NonCanonicalError:
    if end > len(data):
        raise IndexError  # the key was cut short, which is what put it out of order
    shown = repr(key) if len(key) <= 40 else repr(key[:40]) + "..."  # keys may be 64 KiB
    if duplicate:
        return NonCanonicalError(f"duplicate map key {shown} at byte {pos}", offset=pos)
    return NonCanonicalError(f"map key {shown} at byte {pos} is out of canonical order "
                             "(shorter keys first, then bytewise)", offset=pos)


# ------------------------------------------------------------------------------------ encoding

def _check_value(value: Any, depth: int, path: str) -> None:
    """Raise DecodeError (naming the path) on a value that has no canonical encoding."""
    try:
        _walk(value, depth)
    except _Disallowed:
        _locate(value, depth, path)
        raise DecodeError("value has no canonical encoding") from None


class _Disallowed(Exception):
    pass


def _walk(value: Any, depth: int) -> None:
    # Hot path: no path strings, no per-node allocation beyond recursion.
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or value is None:
        return
    if kind is int:
        if MIN_INT <= value <= MAX_INT:
            return
        raise _Disallowed
    if depth >= MAX_DEPTH:
        raise _Disallowed
    if kind is list or kind is tuple:
        for item in value:
            _walk(item, depth + 1)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise _Disallowed
            _walk(item, depth + 1)
        return
    raise _Disallowed


def _locate(value: Any, depth: int, path: str, text: bool = False) -> None:
    """Slow twin of _walk that raises a DecodeError naming the offending path.

    With ``text``, also refuse strings that have no UTF-8 form (lone surrogates).
    """
    kind = type(value)
    if kind is str:
        if text and not _is_utf8_encodable(value):
            raise DecodeError(f"string at {path} is not valid Unicode (lone surrogate)",
                              field=path)
        return
    if kind is bytes or kind is bool or value is None:
        return
    if kind is int:
        if not MIN_INT <= value <= MAX_INT:
            raise DecodeError(f"integer at {path} is outside the 64-bit range", field=path)
        return
    if depth >= MAX_DEPTH and kind in (list, tuple, dict):
        raise DecodeError(f"nesting deeper than {MAX_DEPTH} at {path}", field=path)
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            _locate(item, depth + 1, f"{path}[{index}]", text)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise DecodeError(f"map key at {path} is {type(key).__name__}, not str",
                                  field=path)
            if text and not _is_utf8_encodable(key):
                raise DecodeError(f"map key at {path} is not valid Unicode (lone surrogate)",
                                  field=path)
            _locate(item, depth + 1, f"{path}.{key}", text)
        return
    if kind is float:
        raise DecodeError(f"float at {path} is not allowed; use integers in the smallest unit",
                          field=path)
    raise DecodeError(f"type {kind.__name__} at {path} has no canonical encoding", field=path)


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
