"""Oracle feeds: MsgDeclareFeed and MsgPublishFeedValue — success (state, facade, events) and every
failure."""

from __future__ import annotations

from dataclasses import replace

import pytest
from oracle_world import (
    BLOCK,
    HEIGHT,
    NOW_MS,
    K,
    anchor_msg,
    batch_id_of,
    did,
    fails,
    make_view,
    run,
)

from citychain.core.errors import InvalidMessageError, RoleRequiredError
from citychain.core.events import Event
from citychain.modules.oracle import api, state
from citychain.modules.oracle.errors import (
    CoverageLimitExceededError,
    FeedAlreadyExistsError,
    FeedNotFoundError,
    FeedValueOutOfRangeError,
    FeedWindowNotAfterLatestError,
    NotFeedPublisherError,
    SourceBatchNotFoundError,
    SourceBatchOutsideWindowError,
    SourceLimitExceededError,
    TimestampInFutureError,
)
from citychain.modules.oracle.messages import MsgDeclareFeed, MsgPublishFeedValue
from citychain.modules.oracle.params import Params
from citychain.modules.oracle.types import Feed, FeedValue
from citychain.testing.state import DictState


@pytest.fixture
def view() -> DictState:
    """Identities, five registered devices (one suspended, one foreign) and default params."""
    return make_view()

FIRST = anchor_msg(first_ms=NOW_MS - 600_000, last_ms=NOW_MS - 300_001)
SECOND = anchor_msg(root=b"\x22" * 32, first_ms=NOW_MS - 300_000, last_ms=NOW_MS - 1)
FIRST_ID, SECOND_ID = batch_id_of(FIRST), batch_id_of(SECOND)


def declare(feed_id: str = "pm25-centre", aggregation: str = "mean",
            coverage: tuple[str, ...] = ("centre", "north")) -> MsgDeclareFeed:
    return MsgDeclareFeed(feed_id, "Mean PM2.5 over 5 minutes", "GQ", 1, aggregation, coverage)


def publish(value: int = 123, start: int = NOW_MS - 300_000, end: int = NOW_MS,
            sources: tuple[bytes, ...] = (SECOND_ID,),
            feed_id: str = "pm25-centre") -> MsgPublishFeedValue:
    return MsgPublishFeedValue(feed_id, start, end, value,
                               tuple(sorted(batch_id.hex() for batch_id in sources)))


@pytest.fixture
def fed(view: DictState) -> DictState:
    """The shared world plus two anchored batches and a declared mean feed."""
    run(view, K.operator, FIRST)
    run(view, K.operator, SECOND)
    run(view, K.operator, declare())
    return view


def test_declare_feed_stores_and_emits(view: DictState) -> None:
    events = run(view, K.operator, declare())
    assert api.get_feed(view, "pm25-centre") == Feed(
        "pm25-centre", K.operator.address, "Mean PM2.5 over 5 minutes", "GQ", 1, "mean",
        ("centre", "north"), HEIGHT)
    assert events == [Event.of("feed_declared", feed_id="pm25-centre", publisher=did(K.operator),
                               aggregation="mean", unit="GQ", scale=1)]
    assert api.get_feed_value(view, "pm25-centre") is None


def test_invalid_declare_feed_twice(view: DictState) -> None:
    run(view, K.operator, declare())
    fails(view, K.other_operator, declare(), FeedAlreadyExistsError, "feed_id")


def test_invalid_declare_feed_sender_not_operator(view: DictState) -> None:
    fails(view, K.citizen, declare(), RoleRequiredError, "sender")


def test_invalid_declare_feed_coverage_over_params(view: DictState) -> None:
    state.set_params(view, replace(Params(), max_feed_coverage=1))
    error = fails(view, K.operator, declare(), CoverageLimitExceededError, "coverage")
    assert error.details["limit"] == 1


def test_invalid_declare_feed_unknown_aggregation(view: DictState) -> None:
    fails(view, K.operator, declare(aggregation="median"), InvalidMessageError, "aggregation")


def test_invalid_declare_feed_unsorted_coverage(view: DictState) -> None:
    fails(view, K.operator, declare(coverage=("north", "centre")), InvalidMessageError,
          "coverage[1]")


def test_invalid_declare_feed_bad_id(view: DictState) -> None:
    fails(view, K.operator, declare(feed_id="PM25"), InvalidMessageError, "feed_id")


def test_publish_feed_value_stores_latest_and_history(fed: DictState) -> None:
    events = run(fed, K.operator, publish(sources=(FIRST_ID, SECOND_ID),
                                          start=NOW_MS - 400_000))
    expected = FeedValue("pm25-centre", 123, 1, NOW_MS - 400_000, NOW_MS,
                         tuple(sorted((FIRST_ID, SECOND_ID))), HEIGHT, BLOCK.time_ns)
    assert api.get_feed_value(fed, "pm25-centre") == expected
    assert api.get_feed_value_at(fed, "pm25-centre", NOW_MS) == expected
    assert api.get_feed_value_at(fed, "pm25-centre", NOW_MS - 1) is None
    assert events == [Event.of("feed_value_published", feed_id="pm25-centre",
                               publisher=did(K.operator), value=123,
                               window_start_ms=NOW_MS - 400_000, window_end_ms=NOW_MS,
                               source_count=2)]


def test_later_value_becomes_latest_and_history_keeps_both(fed: DictState) -> None:
    run(fed, K.operator, publish(value=100, end=NOW_MS - 1))
    run(fed, K.operator, publish(value=90))
    latest = api.get_feed_value(fed, "pm25-centre")
    assert latest is not None and latest.value == 90
    assert [v.value for v in state.iter_values(fed, "pm25-centre")] == [100, 90]
    earlier = api.get_feed_value_at(fed, "pm25-centre", NOW_MS - 1)
    assert earlier is not None and earlier.value == 100


def test_ratio_and_count_bounds_accept_their_edges(fed: DictState) -> None:
    run(fed, K.operator, declare("lights-working", "ratio_bp"))
    run(fed, K.operator, publish(10_000, feed_id="lights-working"))
    run(fed, K.operator, declare("departures", "count"))
    run(fed, K.operator, publish(0, feed_id="departures"))
    run(fed, K.operator, declare("temp-min", "min"))
    run(fed, K.operator, publish(-40, feed_id="temp-min"))


def test_invalid_publish_unknown_feed(fed: DictState) -> None:
    fails(fed, K.operator, publish(feed_id="no-such-feed"), FeedNotFoundError, "feed_id")


def test_invalid_publish_not_publisher(fed: DictState) -> None:
    fails(fed, K.other_operator, publish(), NotFeedPublisherError, "sender")


def test_invalid_publish_sender_not_operator(fed: DictState) -> None:
    fails(fed, K.citizen, publish(), RoleRequiredError, "sender")


def test_invalid_publish_ratio_above_10000(fed: DictState) -> None:
    run(fed, K.operator, declare("lights-working", "ratio_bp"))
    fails(fed, K.operator, publish(10_001, feed_id="lights-working"), FeedValueOutOfRangeError,
          "value")


def test_invalid_publish_negative_count(fed: DictState) -> None:
    run(fed, K.operator, declare("departures", "count"))
    fails(fed, K.operator, publish(-1, feed_id="departures"), FeedValueOutOfRangeError, "value")


def test_invalid_publish_more_sources_than_params(fed: DictState) -> None:
    state.set_params(fed, replace(Params(), max_feed_sources=1))
    error = fails(fed, K.operator, publish(sources=(FIRST_ID, SECOND_ID),
                                           start=NOW_MS - 400_000),
                  SourceLimitExceededError, "source_batch_ids")
    assert error.details["limit"] == 1


def test_invalid_publish_window_in_the_future(fed: DictState) -> None:
    skew = Params().max_timestamp_skew_ms
    fails(fed, K.operator, publish(end=NOW_MS + skew + 1), TimestampInFutureError,
          "window_end_ms")


def test_invalid_publish_window_not_after_latest(fed: DictState) -> None:
    run(fed, K.operator, publish())
    error = fails(fed, K.operator, publish(end=NOW_MS), FeedWindowNotAfterLatestError,
                  "window_end_ms")
    assert error.details["latest"] == NOW_MS
    fails(fed, K.operator, publish(end=NOW_MS - 1), FeedWindowNotAfterLatestError,
          "window_end_ms")


def test_invalid_publish_unknown_source_batch(fed: DictState) -> None:
    sources = (SECOND_ID, b"\xff" * 32)
    fails(fed, K.operator, publish(sources=sources), SourceBatchNotFoundError,
          "source_batch_ids[1]")


def test_invalid_publish_source_outside_window(fed: DictState) -> None:
    # FIRST's readings end at NOW - 300_001, before the window [NOW - 300_000, NOW).
    msg = publish(sources=(FIRST_ID, SECOND_ID))
    index = msg.source_batch_ids.index(FIRST_ID.hex())
    fails(fed, K.operator, msg, SourceBatchOutsideWindowError, f"source_batch_ids[{index}]")
    # A window is half-open: a batch starting at its end does not overlap it.
    fails(fed, K.operator, publish(start=NOW_MS - 400_000, end=NOW_MS - 300_000),
          SourceBatchOutsideWindowError, "source_batch_ids[0]")


def test_invalid_publish_unsorted_sources(fed: DictState) -> None:
    msg = publish(sources=(FIRST_ID, SECOND_ID), start=NOW_MS - 400_000)
    swapped = replace(msg, source_batch_ids=tuple(reversed(msg.source_batch_ids)))
    fails(fed, K.operator, swapped, InvalidMessageError, "source_batch_ids[1]")


def test_invalid_publish_empty_window(fed: DictState) -> None:
    fails(fed, K.operator, publish(start=NOW_MS, end=NOW_MS), InvalidMessageError,
          "window_end_ms")


def test_facade_refuses_malformed_ids(fed: DictState) -> None:
    assert api.get_feed_value(fed, "X") is None
    assert api.get_feed_value_at(fed, "pm25-centre", -1) is None
    assert api.get_anchor(fed, b"\x01") is None
