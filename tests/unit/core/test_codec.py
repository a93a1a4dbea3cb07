"""Canonical codec: round trips, one encoding per value, and every refusal with its exact error."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citychain.core import codec
from citychain.core.codec import MAX_DEPTH, MAX_INT, MIN_INT
from citychain.core.errors import DecodeError, NonCanonicalError

# ------------------------------------------------------------------------------------ strategies

INTS = st.one_of(
    st.integers(min_value=MIN_INT, max_value=MAX_INT),
    # the edges of every argument width, where shortest-form mistakes live
    st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, MAX_INT,
                     -1, -24, -25, -256, -257, -65536, -65537, -(2**32), -(2**32) - 1, MIN_INT]),
)
TEXT = st.text(max_size=40) | st.text(min_size=250, max_size=300)
SCALARS = st.none() | st.booleans() | INTS | TEXT | st.binary(max_size=40)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=30), children, max_size=6),
    max_leaves=40,
)


def strictly_equal(a: Any, b: Any) -> bool:
    """Equality that also compares types (so True is not 1 and a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def reorder(value: Any, data: st.DataObject) -> Any:
    """Rebuild ``value`` with every map's items inserted in a random order."""
    if isinstance(value, list):
        return [reorder(item, data) for item in value]
    if isinstance(value, dict):
        items = data.draw(st.permutations(list(value.items())))
        return {key: reorder(item, data) for key, item in items}
    return value


def oracle_accepts(raw: bytes) -> bool:
    """An independent statement of what decode must accept: bytes that a general CBOR decoder
    (cbor2, which ignores trailing bytes and applies tags) reads as an allowed value whose
    canonical encoding is exactly those bytes."""
    try:
        value = cbor2.loads(raw)
    except Exception:
        return False
    try:
        return codec.encode(value) == raw
    except DecodeError:
        return False


# ------------------------------------------------------------------------------------ round trips

@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_decode_inverts_encode(value: Any) -> None:
    assert strictly_equal(codec.decode(codec.encode(value)), value)


@settings(max_examples=200, deadline=None)
@given(VALUES, st.data())
def test_encoding_does_not_depend_on_insertion_order(value: Any, data: st.DataObject) -> None:
    assert codec.encode(reorder(value, data)) == codec.encode(value)


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_an_independent_decoder_reads_the_same_value(value: Any) -> None:
    assert strictly_equal(cbor2.loads(codec.encode(value)), value)


def test_tuples_encode_as_lists() -> None:
    assert codec.encode((1, "a", (b"x",))) == codec.encode([1, "a", [b"x"]])
    assert codec.decode(codec.encode((1, 2))) == [1, 2]


class Wire(bytes):
    """A bytes subclass, as some transports hand out."""


def test_bytes_like_input_is_accepted() -> None:
    raw = codec.encode({"a": [1, b"\x00"]})
    for data in (bytearray(raw), memoryview(raw), Wire(raw)):
        assert codec.decode(data) == {"a": [1, b"\x00"]}
        assert type(codec.decode(data)["a"][1]) is bytes


@pytest.mark.parametrize("value", [MAX_INT, MIN_INT, 0, -1, 2**63, -(2**63)])
def test_integer_range_edges_round_trip(value: int) -> None:
    assert codec.decode(codec.encode(value)) == value


# ------------------------------------------------------------------------------------ key order

def test_map_keys_are_ordered_length_first_then_bytewise() -> None:
    # cbor2's canonical mode sorts by the encoded key: shorter first, then bytewise (RFC 7049
    # §3.9). For text keys this is also RFC 8949 §4.2.1's bytewise order, because a text
    # string's header byte grows with its length.
    raw = codec.encode({"aa": 1, "b": 2, "é": 3, "a": 4, "z" * 24: 5, "ab": 6})
    assert list(codec.decode(raw)) == ["a", "b", "aa", "ab", "é", "z" * 24]
    assert raw.hex().startswith("a6" "6161" "04" "6162" "02" "626161" "01")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=300), st.none(), min_size=2, max_size=8))
def test_encoded_keys_are_sorted_by_length_then_bytes(value: dict[str, None]) -> None:
    keys = list(codec.decode(codec.encode(value)))
    encoded = [key.encode() for key in keys]
    assert encoded == sorted(encoded, key=lambda key: (len(key), key))
    # the same order as comparing whole encoded keys (header included) bytewise
    assert [codec.encode(key) for key in keys] == sorted(codec.encode(key) for key in keys)


# ------------------------------------------------------------------------------------ refusals

def refused(hex_text: str) -> DecodeError | NonCanonicalError:
    with pytest.raises((DecodeError, NonCanonicalError)) as info:
        codec.decode(bytes.fromhex(hex_text.replace(" ", "")))
    return info.value


DISALLOWED = [
    # (id, hex, message fragment)
    ("half-float", "f93c00", "half-precision float at byte 0"),
    ("single-float", "fa3f800000", "single-precision float at byte 0"),
    ("double-float", "fb3ff0000000000000", "double-precision float at byte 0"),
    ("float-in-map", "a1 6161 fb3ff8000000000000", "double-precision float at byte 3"),
    ("float-nan", "f97e00", "half-precision float"),
    ("bignum", "c2 49 010000000000000000", "tag 2 (positive bignum) at byte 0"),
    ("negative-bignum", "c3 49 010000000000000000", "tag 3 (negative bignum)"),
    ("small-bignum", "c2 41 01", "integers must fit in 64 bits"),
    ("datetime-string", "c0 74 323031332d30332d32315432303a30343a30305a", "tag 0 (date/time"),
    ("datetime-epoch", "c1 1a514b67b0", "tag 1 (epoch date/time)"),
    ("self-described", "d9d9f7 01", "tag 55799 (self-described CBOR)"),
    ("unknown-tag", "d9ffff 01", "tag 65535 at byte 0: tags are not allowed"),
    ("tag-in-list", "82 01 c1 00", "tag 1 (epoch date/time) at byte 2"),
    ("undefined", "f7", "undefined at byte 0"),
    ("simple-value", "f0", "simple value 16 at byte 0"),
    ("simple-value-two-byte", "f8 20", "simple value at byte 0"),
    ("int-key", "a1 01 02", "map key at byte 1 is an unsigned integer, not a text string"),
    ("negative-int-key", "a1 20 02", "is a negative integer, not a text string"),
    ("bytes-key", "a1 4161 02", "is a byte string, not a text string"),
    ("bool-key", "a1 f5 02", "is a boolean, not a text string"),
    ("null-key", "a1 f6 02", "is null, not a text string"),
    ("array-key", "a1 820102 01", "is an array, not a text string"),
    ("map-key", "a1 a0 01", "is a map, not a text string"),
    ("float-key", "a1 f93c00 01", "is a float or simple value, not a text string"),
    ("trailing-bytes", "00 00", "1 trailing byte after the value at byte 1"),
    ("trailing-after-map", "a0 6161", "2 trailing bytes after the value at byte 1"),
    ("empty", "", "truncated input"),
    ("truncated-uint", "19 01", "truncated input"),
    ("truncated-text", "62 61", "truncated input"),
    ("truncated-multibyte-text", "62 c3", "truncated input"),
    ("truncated-array", "82 01", "truncated input"),
    ("truncated-map-value", "a1 6161", "truncated input"),
    ("truncated-map-key", "a2 6161 01 6262", "truncated input"),
    ("huge-claimed-length", "5b ffffffffffffffff", "truncated input"),
    ("huge-claimed-array", "9b ffffffffffffffff 00", "truncated input"),
    ("invalid-utf8", "62 c328", "text string at byte 1 is not valid UTF-8"),
    ("utf8-surrogate", "63 eda080", "is not valid UTF-8"),
    ("utf8-overlong", "62 c0af", "is not valid UTF-8"),
    ("invalid-utf8-key", "a1 62c328 01", "text string at byte 2 is not valid UTF-8"),
    ("reserved-info", "1c", "additional information 28 is reserved"),
    ("reserved-info-text", "7d", "additional information 29 is reserved"),
    ("indefinite-uint", "1f", "additional information 31 is not allowed here"),
    ("lone-break", "ff", "unexpected break byte at byte 0"),
    ("reserved-simple", "fc", "reserved initial byte 0xfc"),
    ("too-deep-array", "81" * (MAX_DEPTH + 1) + "00", f"nesting deeper than {MAX_DEPTH} levels"),
    ("too-deep-map", "a1 6161" * (MAX_DEPTH + 1) + "00", f"deeper than {MAX_DEPTH} levels"),
    ("too-deep-at", "81" * MAX_DEPTH + "a0", f"levels at byte {MAX_DEPTH}"),
]

NON_CANONICAL = [
    ("unsorted-keys", "a2 6162 01 6161 02", "map key 'a' at byte 4 is out of canonical order"),
    ("longer-key-first", "a2 626161 01 6162 02", "map key 'b' at byte 5 is out of canonical order"),
    ("long-key-before-short", "a2 7818" + "61" * 24 + "01 6161 02", "out of canonical order"),
    ("duplicate-key", "a2 6161 01 6161 02", "duplicate map key 'a' at byte 4"),
    ("duplicate-long-key", "a2 7818" + "61" * 24 + "01 7818" + "61" * 24 + "02",
     "duplicate map key"),
    ("uint-one-byte", "18 17", "unsigned integer at byte 0: integer 23 is not in its shortest"),
    ("uint-two-bytes", "19 00ff", "integer 255 is not in its shortest form (3 bytes)"),
    ("uint-four-bytes", "1a 0000ffff", "integer 65535 is not in its shortest form (5 bytes)"),
    ("uint-eight-bytes", "1b 00000000ffffffff", "integer 4294967295 is not in its shortest"),
    ("negint-one-byte", "38 00", "negative integer at byte 0: integer 0 is not in its shortest"),
    ("negint-eight-bytes", "3b 0000000000000000", "negative integer at byte 0"),
    ("map-value-uint", "a1 6161 18 01", "unsigned integer at byte 3: integer 1 is not"),
    ("text-length", "78 01 61", "text string at byte 0: length 1 is not in its shortest form"),
    ("map-value-text-length", "a1 6161 78 01 61", "text string at byte 3: length 1"),
    ("bytes-length", "58 01 00", "byte string at byte 0: length 1"),
    ("map-value-bytes-length", "a1 6161 58 01 00", "byte string at byte 3: length 1"),
    ("bytes-length-two-bytes", "59 0001 00", "length 1 is not in its shortest form (3 bytes)"),
    ("array-length", "98 01 00", "array at byte 0: length 1"),
    ("map-length", "b8 01 6161 01", "map at byte 0: length 1"),
    ("key-length", "a1 7801 61 01", "text string at byte 1: length 1"),
    ("indefinite-array", "9f 01 ff", "indefinite-length array at byte 0"),
    ("indefinite-map", "bf 6161 01 ff", "indefinite-length map at byte 0"),
    ("indefinite-bytes", "5f 4101 ff", "indefinite-length byte string at byte 0"),
    ("indefinite-text", "7f 6161 ff", "indefinite-length text string at byte 0"),
    ("indefinite-key", "a1 7f6161ff 01", "indefinite-length text string at byte 1"),
]


@pytest.mark.parametrize(("hex_text", "fragment"), [case[1:] for case in DISALLOWED],
                         ids=[case[0] for case in DISALLOWED])
def test_invalid_refused_as_decode_error(hex_text: str, fragment: str) -> None:
    error = refused(hex_text)
    assert type(error) is DecodeError
    assert fragment in error.message
    assert (error.codespace, error.code) == ("core", 2)


@pytest.mark.parametrize(("hex_text", "fragment"), [case[1:] for case in NON_CANONICAL],
                         ids=[case[0] for case in NON_CANONICAL])
def test_invalid_refused_as_non_canonical(hex_text: str, fragment: str) -> None:
    error = refused(hex_text)
    assert type(error) is NonCanonicalError
    assert fragment in error.message
    assert (error.codespace, error.code) == ("core", 3)


@pytest.mark.parametrize("case", DISALLOWED + NON_CANONICAL, ids=lambda case: case[0])
def test_invalid_cases_are_refused_by_the_oracle_too(case: tuple[str, str, str]) -> None:
    assert not oracle_accepts(bytes.fromhex(case[1].replace(" ", "")))


def test_refusal_reports_the_byte_offset() -> None:
    error = refused("a2 6161 01 6162 f93c00")
    assert error.details == {"offset": 6}
    assert error.to_dict()["details"] == {"offset": 6}


def test_long_keys_are_cut_short_in_messages() -> None:
    key = "k" * 1000
    error = refused("a2" + codec.encode(key).hex() + "01" + codec.encode(key).hex() + "02")
    assert type(error) is NonCanonicalError
    assert error.message == f"duplicate map key {'k' * 40!r}... at byte 1005"


def test_deepest_allowed_nesting_decodes() -> None:
    nested: Any = 0
    for _ in range(MAX_DEPTH):
        nested = [nested]
    raw = codec.encode(nested)
    assert raw == bytes.fromhex("81" * MAX_DEPTH + "00")
    assert codec.decode(raw) == nested


def test_invalid_decode_input_not_bytes() -> None:
    with pytest.raises(DecodeError, match="expected bytes, got str"):
        codec.decode("00")  # type: ignore[arg-type]


def test_invalid_integers_outside_64_bits_never_decode() -> None:
    for value in (MAX_INT + 1, MIN_INT - 1, 2**100):
        raw = cbor2.dumps(value, canonical=True)  # a bignum tag
        error = refused(raw.hex())
        assert type(error) is DecodeError
        assert "tags are not allowed" in error.message


# ---------------------------------------------------------------------------- encode refusals

ENCODE_REFUSALS = [
    ("float", {"a": [1, 1.5]}, "float at value.a[1] is not allowed", "value.a[1]"),
    ("int-too-big", [MAX_INT + 1], "integer at value[0] is outside the 64-bit range", "value[0]"),
    ("int-too-small", {"x": MIN_INT - 1}, "outside the 64-bit range", "value.x"),
    ("int-key", {"a": {1: 2}}, "map key at value.a is int, not str", "value.a"),
    ("bool-key", {True: 1}, "map key at value is bool, not str", "value"),
    ("set", {"s": {1, 2}}, "type set at value.s has no canonical encoding", "value.s"),
    ("object", [object()], "type object at value[0]", "value[0]"),
    ("bytearray", bytearray(b"x"), "type bytearray at value", "value"),
    ("surrogate", {"a": "\ud800"}, "string at value.a is not valid Unicode", "value.a"),
    ("surrogate-key", {"\udfff": 1}, "map key at value is not valid Unicode", "value"),
]


@pytest.mark.parametrize(("value", "fragment", "field"), [case[1:] for case in ENCODE_REFUSALS],
                         ids=[case[0] for case in ENCODE_REFUSALS])
def test_invalid_encode_refuses_values_without_canonical_form(value: Any, fragment: str,
                                                               field: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.encode(value)
    assert fragment in info.value.message
    assert info.value.field == field


def test_invalid_encode_nesting_too_deep() -> None:
    nested: Any = 0
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    with pytest.raises(DecodeError, match=f"nesting deeper than {MAX_DEPTH}"):
        codec.encode(nested)


# ------------------------------------------------------------------------------------ one encoding

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=48))
def test_random_bytes_decode_only_if_canonical(raw: bytes) -> None:
    check_one_encoding(raw)


@st.composite
def mutated_encodings(draw: st.DrawFn) -> bytes:
    raw = bytearray(codec.encode(draw(VALUES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        position = draw(st.integers(min_value=0, max_value=max(len(raw) - 1, 0)))
        byte = draw(st.integers(min_value=0, max_value=255))
        if kind == "flip" and raw:
            raw[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "set" and raw:
            raw[position] = byte
        elif kind == "insert":
            raw.insert(position, byte)
        elif kind == "delete" and raw:
            del raw[position]
        elif kind == "truncate":
            del raw[position:]
        elif kind == "append":
            raw.append(byte)
    return bytes(raw)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_encodings())
def test_mutated_encodings_decode_only_if_canonical(raw: bytes) -> None:
    check_one_encoding(raw)


def check_one_encoding(raw: bytes) -> None:
    """Whatever decodes re-encodes to the same bytes, agrees with an independent decoder, and
    anything else is refused with one of the two codec errors (never another exception)."""
    try:
        value = codec.decode(raw)
    except (DecodeError, NonCanonicalError):
        assert not oracle_accepts(raw)
        return
    assert codec.encode(value) == raw
    assert strictly_equal(cbor2.loads(raw), value)


@given(st.one_of(st.integers(MIN_INT, MAX_INT), st.text(), st.binary()))
def test_encode_scalar_is_what_encode_writes(value: int | str | bytes) -> None:
    assert codec.encode_scalar(value) == codec.encode(value)
    assert codec.encode([value]) == b"\x81" + codec.encode_scalar(value)


@given(st.integers(0, 300))
def test_map_head_starts_the_encoding_of_a_map_of_that_size(size: int) -> None:
    encoded = codec.encode({f"k{i}": 0 for i in range(size)})
    head = codec.map_head(size)
    assert len(head) in (1, 2, 3) and encoded.startswith(head)


@pytest.mark.parametrize("value", [True, None, 1.5, MAX_INT + 1, MIN_INT - 1, ["a"]])
def test_encode_scalar_refuses_what_is_not_a_scalar_in_range(value: Any) -> None:
    with pytest.raises(DecodeError):
        codec.encode_scalar(value)
