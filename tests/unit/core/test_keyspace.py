"""Store keys: byte order equals the logical order of their parts; prefix ranges are exact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core.keyspace import address_part, bytes_part, make_key, text_part, uint_part
from citychain.core.state import prefix_end

PREFIX = b"\x07\x01"
UINTS = st.integers(min_value=0, max_value=2**64 - 1)
TEXTS = st.text(max_size=12).filter(lambda text: len(text.encode()) <= 255)
PARTS = st.tuples(UINTS, TEXTS, st.integers(min_value=0, max_value=2**16 - 1))


def key_of(parts: tuple[int, str, int]) -> bytes:
    number, text, small = parts
    return make_key(PREFIX, uint_part(number), text_part(text), uint_part(small, 2))


def logical(parts: tuple[int, str, int]) -> tuple[int, tuple[int, bytes], int]:
    """The order keys sort in: integers by value; a text part by its UTF-8 length, then its
    bytes (the length byte comes first), so it is not alphabetical across lengths."""
    number, text, small = parts
    raw = text.encode()
    return number, (len(raw), raw), small


@settings(max_examples=300, deadline=None)
@given(st.lists(PARTS, min_size=2, max_size=12, unique=True))
def test_byte_order_equals_logical_order(parts: list[tuple[int, str, int]]) -> None:
    assert sorted(parts, key=key_of) == sorted(parts, key=logical)


@settings(max_examples=300, deadline=None)
@given(PARTS, PARTS)
def test_distinct_parts_give_distinct_keys(a: tuple[int, str, int],
                                           b: tuple[int, str, int]) -> None:
    assert (key_of(a) == key_of(b)) == (a == b)


@settings(max_examples=200, deadline=None)
@given(st.lists(UINTS, min_size=2, max_size=10))
def test_uint_parts_sort_numerically(numbers: list[int]) -> None:
    assert sorted(numbers, key=uint_part) == sorted(numbers)


@settings(max_examples=200, deadline=None)
@given(PARTS, PARTS)
def test_prefix_scan_holds_exactly_the_keys_with_that_prefix(a: tuple[int, str, int],
                                                             b: tuple[int, str, int]) -> None:
    # all keys of (number, text, *) lie in [prefix, prefix_end(prefix)); no other key does
    start = make_key(PREFIX, uint_part(a[0]), text_part(a[1]))
    end = prefix_end(start)
    assert end is not None
    inside = start <= key_of(b) < end
    assert inside == (b[:2] == a[:2])


def test_text_parts_sort_by_length_first() -> None:
    # A length-prefixed text part is prefix-free but NOT alphabetical: "b" sorts before "aa".
    assert text_part("b") < text_part("aa")
    assert text_part("a") < text_part("b") < text_part("aa") < text_part("ab")


def test_part_layouts() -> None:
    assert uint_part(1) == b"\x00" * 7 + b"\x01"
    assert uint_part(258, 2) == b"\x01\x02"
    assert text_part("") == b"\x00"
    assert text_part("é") == b"\x02\xc3\xa9"
    assert bytes_part(b"\x00\xff") == b"\x02\x00\xff"
    assert address_part("00" * 19 + "ff") == b"\x00" * 19 + b"\xff"
    assert make_key(b"\x01", b"\x02", b"\x03") == b"\x01\x02\x03"
    assert make_key(b"\x01") == b"\x01"


def test_invalid_uint_part_negative() -> None:
    with pytest.raises(ValueError, match="key integers are unsigned"):
        uint_part(-1)


def test_invalid_uint_part_too_wide() -> None:
    assert uint_part(2**64 - 1) == b"\xff" * 8
    with pytest.raises(OverflowError):
        uint_part(2**64)
    with pytest.raises(OverflowError):
        uint_part(256, 1)


def test_invalid_text_part_longer_than_255_bytes() -> None:
    assert len(text_part("x" * 255)) == 256
    with pytest.raises(ValueError, match="key text longer than 255 bytes"):
        text_part("x" * 256)
    with pytest.raises(ValueError, match="key text longer than 255 bytes"):
        text_part("é" * 128)


def test_invalid_bytes_part_longer_than_255_bytes() -> None:
    with pytest.raises(ValueError, match="key bytes longer than 255 bytes"):
        bytes_part(bytes(256))


# ------------------------------------------------------------------------------------ prefix_end

@pytest.mark.parametrize(("prefix", "end"), [
    (b"\x01", b"\x02"),
    (b"\x01\x02", b"\x01\x03"),
    (b"\x01\xff", b"\x02"),
    (b"\x01\xff\xff", b"\x02"),
    (b"\xff", None),
    (b"\xff\xff", None),
    (b"", None),
])
def test_prefix_end(prefix: bytes, end: bytes | None) -> None:
    assert prefix_end(prefix) == end


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4), st.binary(max_size=6))
def test_prefix_end_bounds_every_key_with_the_prefix(prefix: bytes, key: bytes) -> None:
    end = prefix_end(prefix)
    inside = prefix <= key and (end is None or key < end)
    assert inside == key.startswith(prefix)
