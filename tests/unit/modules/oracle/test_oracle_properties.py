"""Oracle invariants under random inputs (hypothesis): encodings round trip; any set of valid
batches is stored and indexed consistently, so "which batches cover device D at time T" agrees
with a brute-force answer; every stored feed value names existing batches overlapping its window,
and the latest value is the one with the greatest window end."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_world import NOW_MS, K, batch_id_of, did, make_view, run

from citychain.core import codec
from citychain.core.errors import ChainError
from citychain.core.state import prefix_end
from citychain.modules.oracle import api, state
from citychain.modules.oracle.keys import DEVICE_ANCHOR_PREFIX
from citychain.modules.oracle.messages import (
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgPublishFeedValue,
    MsgRegisterDevice,
)
from citychain.modules.oracle.module import MODULE
from citychain.modules.oracle.params import Params
from citychain.modules.oracle.types import (
    Anchor,
    Device,
    Feed,
    FeedValue,
    Location,
    Stream,
    parse_stream_spec,
)
from citychain.testing.state import query_view

SENSORS = (K.sensor_a, K.sensor_b, K.gateway)
SPAN = Params().max_batch_span_ms
HORIZON = 6 * SPAN  # batch start times fall in [NOW - HORIZON, NOW]

ints64 = st.integers(min_value=-(2**63 - 1), max_value=2**63 - 1)
times = st.integers(min_value=0, max_value=2**63 - 1)
hashes = st.binary(min_size=32, max_size=32)
addresses = st.binary(min_size=20, max_size=20).map(bytes.hex)
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,31}", fullmatch=True)
units = st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True)
codes = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True)


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    low, high = sorted((draw(ints64), draw(ints64)))
    return Stream(draw(names), draw(units), low, high)


@settings(max_examples=200, deadline=None)
@given(stream=streams())
def test_stream_spec_round_trips(stream: Stream) -> None:
    assert parse_stream_spec(stream.to_spec()) == stream


@settings(max_examples=100, deadline=None)
@given(address=addresses, owner=addresses, district=codes, has=st.booleans(),
       lat=st.integers(-90_000_000, 90_000_000), items=st.lists(streams(), max_size=4),
       heights=st.tuples(times, times, times))
def test_device_record_round_trips(address: str, owner: str, district: str, has: bool,
                                   lat: int, items: list[Stream],
                                   heights: tuple[int, int, int]) -> None:
    device = Device(address, owner, "Vehicle", Location(district, has, lat, -lat), tuple(items),
                    heights[0], heights[1], "decommissioned", heights[2])
    assert Device.from_bytes(address, device.to_bytes()) == device


@settings(max_examples=100, deadline=None)
@given(batch_id=hashes, root=hashes, devices=st.lists(addresses, max_size=5), first=times,
       last=times, count=times, previous=st.one_of(st.just(b""), hashes), who=addresses,
       value=ints64, sources=st.lists(hashes, min_size=1, max_size=4))
def test_anchor_and_feed_records_round_trip(batch_id: bytes, root: bytes, devices: list[str],
                                            first: int, last: int, count: int,
                                            previous: bytes, who: str, value: int,
                                            sources: list[bytes]) -> None:
    anchor = Anchor(batch_id, root, tuple(sorted(devices)), first, last, count, previous, who,
                    who, count, last)
    assert Anchor.from_bytes(batch_id, anchor.to_bytes()) == anchor
    feed = Feed("feed-1", who, "Description", "GQ", 3, "sum", ("a", "b"), count)
    assert Feed.from_bytes("feed-1", feed.to_bytes()) == feed
    feed_value = FeedValue("feed-1", value, 3, first, last, tuple(sources), count, first)
    assert FeedValue.from_bytes("feed-1", feed_value.to_bytes()) == feed_value


@settings(max_examples=100, deadline=None)
@given(did_index=st.integers(0, 2), district=codes, items=st.lists(streams(), max_size=3,
                                                                     unique_by=lambda s: s.name))
def test_register_message_round_trips_through_the_codec(did_index: int, district: str,
                                                        items: list[Stream]) -> None:
    specs = tuple(s.to_spec() for s in sorted(items, key=lambda s: s.name))
    msg = MsgRegisterDevice(did(SENSORS[did_index]), "Vehicle", district, specs, False, 0, 0)
    msg.validate_basic()
    assert MsgRegisterDevice.from_value(codec.decode(codec.encode(msg.to_value()))) == msg


@st.composite
def batches(draw: st.DrawFn) -> MsgAnchorBatch:
    members = draw(st.lists(st.sampled_from(range(len(SENSORS))), min_size=1, max_size=3,
                            unique=True))
    first = NOW_MS - draw(st.integers(0, HORIZON))
    last = first + draw(st.integers(0, SPAN))
    dids = tuple(sorted(did(SENSORS[i]) for i in members))
    return MsgAnchorBatch(draw(hashes), dids, first, last, len(dids) + draw(st.integers(0, 99)),
                          b"")


@settings(max_examples=60, deadline=None)
@given(msgs=st.lists(batches(), max_size=12),
       probes=st.lists(st.integers(NOW_MS - HORIZON - SPAN, NOW_MS + SPAN), min_size=1,
                       max_size=8),
       keys_in_state=st.sampled_from([0, 1]))
def test_any_valid_batches_are_stored_and_indexed_consistently(msgs: list[MsgAnchorBatch],
                                                               probes: list[int],
                                                               keys_in_state: int) -> None:
    view = make_view({"max_timestamp_skew_ms": SPAN,
                      "device_anchor_keys_in_state": keys_in_state})
    anchored: dict[bytes, MsgAnchorBatch] = {}
    for msg in msgs:
        duplicate = any(msg.merkle_root == other.merkle_root for other in anchored.values())
        try:
            run(view, K.operator, msg)
        except ChainError as error:
            assert duplicate and error.code == 12
            continue
        assert not duplicate
        anchored[batch_id_of(msg)] = msg
    assert {a.batch_id for a in state.iter_anchors(view)} == set(anchored)
    for batch_id, msg in anchored.items():
        stored = api.get_anchor(view, batch_id)
        assert stored is not None and stored.merkle_root == msg.merkle_root
        assert state.get_batch_id_by_root(view, msg.merkle_root) == batch_id
    in_state = list(view.iterate(DEVICE_ANCHOR_PREFIX, prefix_end(DEVICE_ANCHOR_PREFIX)))
    assert len(in_state) == (keys_in_state and sum(len(m.devices) for m in anchored.values()))
    queried = query_view(view, MODULE.query_indexes)
    for sensor in SENSORS:
        for probe in probes:
            expected = sorted((m.first_reading_ms, batch_id.hex())
                              for batch_id, m in anchored.items()
                              if did(sensor) in m.devices
                              and m.first_reading_ms <= probe <= m.last_reading_ms)
            answer = MODULE.queries["anchors_by_device"](queried, {"did": did(sensor),
                                                                  "from_ms": probe,
                                                                  "limit": 500})
            assert [(a["first_reading_ms"], a["batch_id"]) for a in answer["anchors"]] == expected


@settings(max_examples=60, deadline=None)
@given(msgs=st.lists(batches(), min_size=1, max_size=6),
       publications=st.lists(st.tuples(st.integers(0, HORIZON), st.integers(1, SPAN), ints64,
                                       st.lists(st.integers(0, 7), min_size=1, max_size=3,
                                                unique=True)), max_size=10))
def test_feed_values_always_name_existing_overlapping_batches(
        msgs: list[MsgAnchorBatch],
        publications: list[tuple[int, int, int, list[int]]]) -> None:
    view = make_view({"max_timestamp_skew_ms": SPAN})
    run(view, K.operator, MsgDeclareFeed("mean-feed", "Mean", "GQ", 0, "mean", ("centre",)))
    ids: list[bytes] = []
    for msg in msgs:
        try:
            run(view, K.operator, msg)
            ids.append(batch_id_of(msg))
        except ChainError:
            pass
    unknown = [bytes([i]) * 32 for i in range(8)]  # ids no batch has (almost surely)
    for back, length, value, picks in publications:
        pool = ids + unknown
        sources = tuple(sorted({pool[i % len(pool)].hex() for i in picks}))
        end = NOW_MS - back
        try:
            run(view, K.operator, MsgPublishFeedValue("mean-feed", end - length, end, value,
                                                      sources))
        except ChainError as error:
            assert error.codespace == "oracle" and error.code in (19, 20, 21)
    history = list(state.iter_values(view, "mean-feed"))
    for stored in history:
        for batch_id in stored.source_batch_ids:
            anchor = api.get_anchor(view, batch_id)
            assert anchor is not None
            assert anchor.overlaps(stored.window_start_ms, stored.window_end_ms)
    ends = [v.window_end_ms for v in history]
    assert ends == sorted(set(ends))
    assert api.get_feed_value(view, "mean-feed") == (history[-1] if history else None)
