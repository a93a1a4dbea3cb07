"""Query index definitions: deriving entries, refusing overlapping prefixes, and the view that
serves index prefixes from the index and everything else from the state."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.core.query_index import IndexedView, QueryIndex, check_indexes, derive_entries
from citychain.testing.state import DictState


def _tags(key: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    """b"s" + id -> "a,b": one entry b"t" + tag + b"/" + id per tag."""
    return [(b"t" + tag + b"/" + key[1:], b"") for tag in value.split(b",") if tag]


TAGS = QueryIndex("tags", 1, b"s", b"t", _tags)


def test_derive_entries_maps_new_records_and_ignores_deletes_and_other_keys() -> None:
    changes = [(b"s1", b"red,blue"), (b"s2", None), (b"u9", b"red"), (b"s3", b"red")]
    assert derive_entries((TAGS,), changes) == [
        (b"tblue/1", b""), (b"tred/1", b""), (b"tred/3", b"")]


def test_an_entry_outside_the_index_prefix_is_refused() -> None:
    stray = QueryIndex("stray", 1, b"s", b"t", lambda key, value: [(b"x" + key, b"")])
    with pytest.raises(ValueError, match="outside its prefix"):
        derive_entries((stray,), [(b"s1", b"v")])


@pytest.mark.parametrize(("indexes", "message"), [
    ((TAGS, QueryIndex("tags", 2, b"q", b"r", _tags)), "unique"),
    ((TAGS, QueryIndex("more", 1, b"q", b"tx", _tags)), "overlaps"),
    ((QueryIndex("self", 1, b"s", b"s1", _tags),), "overlaps"),
    ((TAGS, QueryIndex("shadow", 1, b"q", b"s", _tags)), "overlaps"),
    ((QueryIndex("empty", 1, b"s", b"", _tags),), "empty"),
])
def test_check_indexes_refuses_clashes(indexes: tuple[QueryIndex, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_indexes(indexes)


def test_signature_names_everything_that_decides_the_entries() -> None:
    assert TAGS.signature() == "tags:1:73:74"
    assert QueryIndex("tags", 2, b"s", b"t", _tags).signature() != TAGS.signature()


PREFIXES = (b"b", b"d\x01")
prefixed = st.sampled_from(PREFIXES).flatmap(
    lambda prefix: st.binary(max_size=2).map(lambda rest: prefix + rest))
keys = st.one_of(st.binary(max_size=3), prefixed)  # state keys may shadow index keys


@settings(max_examples=300, deadline=None)
@given(state=st.dictionaries(keys, st.binary(max_size=2), max_size=30),
       index=st.dictionaries(prefixed, st.binary(max_size=2), max_size=15),
       start=keys, end=st.one_of(st.none(), keys))
def test_indexed_view_reads_index_prefixes_from_the_index_only(
        state: dict[bytes, bytes], index: dict[bytes, bytes], start: bytes,
        end: bytes | None) -> None:
    view = IndexedView(DictState(state), DictState(index), PREFIXES)

    def indexed(key: bytes) -> bool:
        return key.startswith(PREFIXES)

    model = {key: value for key, value in state.items() if not indexed(key)}
    model.update(index)
    expected = sorted((key, value) for key, value in model.items()
                      if key >= start and (end is None or key < end))
    assert list(view.iterate(start, end)) == expected
    for key in list(state) + list(index):
        assert view.get(key) == model.get(key)
