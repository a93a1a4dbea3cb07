"""Feeds: the aggregation functions (integers, one rounding rule), recipes, and end to end —
simulator -> Mosquitto -> gateway -> anchored batches -> a published feed value that recomputes
from the batches it names, and fails to when a reading is tampered or the batches are wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citychain.core.crypto import PrivateKey
from citychain.iot.feeds import (
    DeviceRecord,
    EmptyWindowError,
    FeedDefinition,
    FeedRecipe,
    FeedRecipeError,
    aggregate_batches,
    compute_aggregate,
    compute_mean,
    compute_ratio_bp,
    divide_rounded,
    parse_recipe,
)
from citychain.iot.reading import sign_reading

values = st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=1, max_size=60)


def test_divide_rounded_is_half_away_from_zero() -> None:
    assert [divide_rounded(n, 2) for n in (-3, -1, 0, 1, 3, 5)] == [-2, -1, 0, 1, 2, 3]
    assert divide_rounded(7, 3) == 2 and divide_rounded(8, 3) == 3
    assert divide_rounded(-8, 3) == -3 and divide_rounded(8, -3) == -3
    with pytest.raises(ZeroDivisionError):
        divide_rounded(1, 0)


@given(st.integers(min_value=-(10**30), max_value=10**30),
       st.integers(min_value=1, max_value=10**9))
def test_divide_rounded_is_nearest(numerator: int, denominator: int) -> None:
    result = divide_rounded(numerator, denominator)
    assert abs(result * denominator - numerator) * 2 <= denominator


@given(values, st.integers(min_value=0, max_value=3))
def test_mean_lies_between_min_and_max(sample: list[int], scale: int) -> None:
    mean = compute_mean(sample, scale)
    assert min(sample) * 10**scale <= mean <= max(sample) * 10**scale


@given(values, st.integers(min_value=-(2**40), max_value=2**40))
def test_ratio_bp_is_within_basis_points(sample: list[int], bound: int) -> None:
    ratio = compute_ratio_bp(sample, lambda value: value <= bound)
    assert 0 <= ratio <= 10_000
    if all(value <= bound for value in sample):
        assert ratio == 10_000
    if all(value > bound for value in sample):
        assert ratio == 0


@given(values, st.sampled_from(["count", "mean", "sum", "min", "max", "ratio_bp"]),
       st.randoms(use_true_random=False))
def test_aggregates_do_not_depend_on_order(sample: list[int], kind: str, rng) -> None:  # type: ignore[no-untyped-def]
    where = (lambda value: value % 2 == 0) if kind in ("count", "ratio_bp") else None
    shuffled = list(sample)
    rng.shuffle(shuffled)
    assert compute_aggregate(kind, sample, 0, where) == compute_aggregate(kind, shuffled, 0, where)


def test_invalid_empty_window() -> None:
    for kind in ("mean", "min", "max"):
        with pytest.raises(EmptyWindowError):
            compute_aggregate(kind, [], 0)
    assert compute_aggregate("count", [], 0) == 0
    assert compute_aggregate("sum", [], 0) == 0


def test_recipe_round_trips() -> None:
    recipe = FeedRecipe("status", "StreetLight", "last", "eq", 1)
    assert recipe.to_text() == "feed/v1 stream=status type=StreetLight sample=last where=eq:1"
    assert parse_recipe(recipe.to_text() + " -- working street lights") == recipe
    assert parse_recipe("feed/v1 stream=pm25") == FeedRecipe("pm25")


@pytest.mark.parametrize("text", [
    "mean pm2.5", "feed/v1", "feed/v1 stream=pm25 stream=pm25", "feed/v1 stream=pm25 colour=red",
    "feed/v1 stream=pm25 sample=first", "feed/v1 stream=pm25 where=about:3",
    "feed/v1 stream=9x"])
def test_invalid_recipe(text: str) -> None:
    with pytest.raises(FeedRecipeError):
        parse_recipe(text)


def _feed(aggregation: str, description: str, scale: int = 0) -> dict[str, object]:
    return {"feed_id": "f-test", "publisher": "did:city:" + "0" * 40, "aggregation": aggregation,
            "scale": scale, "unit": "C62", "coverage": ["centre"], "description": description}


@pytest.mark.parametrize(("aggregation", "description", "scale"), [
    ("ratio_bp", "feed/v1 stream=status", 0), ("mean", "feed/v1 stream=pm25 where=ge:3", 0),
    ("count", "feed/v1 stream=status", 1)])
def test_invalid_recipe_for_aggregation(aggregation: str, description: str, scale: int) -> None:
    with pytest.raises(FeedRecipeError):
        FeedDefinition.from_value(_feed(aggregation, description, scale))


def test_aggregate_selects_covered_devices_window_and_last_sample() -> None:
    lights = [PrivateKey.from_secret(f"light-{i}") for i in range(3)]
    districts = {lights[0].did: "centre", lights[1].did: "centre", lights[2].did: "north"}

    def device(did: str) -> DeviceRecord | None:
        return DeviceRecord(did, "StreetLight", districts[did]) if did in districts else None

    readings = [
        sign_reading(lights[0], "c", "status", 1, 1000, 1),
        sign_reading(lights[0], "c", "status", 2, 2000, 0),   # light 0 failed: its last is 0
        sign_reading(lights[1], "c", "status", 1, 1500, 1),
        sign_reading(lights[1], "c", "status", 2, 5000, 0),   # outside [1000, 3000)
        sign_reading(lights[2], "c", "status", 1, 1200, 1),   # not covered (north)
    ]
    batches = [(b"\x01" * 32, readings[:2]), (b"\x02" * 32, readings[2:]), (b"\x03" * 32, [])]
    feed = FeedDefinition.from_value(_feed(
        "count", "feed/v1 stream=status type=StreetLight sample=last where=eq:1"))
    result = aggregate_batches(feed, 1000, 3000, batches, device)
    assert result.value == 1                       # light 1 works, light 0 failed
    assert result.source_batch_ids == ((b"\x01" * 32).hex(), (b"\x02" * 32).hex())
    assert (result.sample_count, result.reading_count) == (2, 3)
    ratio = FeedDefinition.from_value(_feed("ratio_bp", "feed/v1 stream=status where=eq:1"))
    assert aggregate_batches(ratio, 1000, 3000, batches, device).value == 6667   # 2 of 3
