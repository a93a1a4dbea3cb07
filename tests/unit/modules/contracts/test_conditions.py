"""Contract conditions: the allowed CEL subset and its limits at creation, and evaluation that
records every failure under a stable error code instead of raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citychain.modules.contracts import conditions
from citychain.modules.contracts.conditions import (
    VARIABLES,
    CheckedCondition,
    ConditionLimits,
    Evaluation,
    check_condition,
    evaluate,
)
from citychain.modules.contracts.errors import ConditionInvalidError

FIELD = "milestones[0].condition"
LIGHTS = (
    'feeds["lights.d7.working"].value >= 120 '
    '&& block.time - feeds["lights.d7.working"].window_end <= 3600 '
    '&& "inspector" in attestations'
)


def activation(
    *, working: int = 131, window_end: int = 1_700_003_600, amount: int = 4_000_000,
    attestations: tuple[str, ...] = ("inspector", "city"),
) -> dict[str, object]:
    return {
        "attestations": list(attestations),
        "block": {"height": 120_345, "time": 1_700_005_000},
        "contract": {"id": "c-42", "status": "active", "escrow": 12_000_000},
        "feeds": {
            "lights.d7.working": {"value": working, "window_end": window_end, "count": 144},
            "meter": {"value": 250, "window_end": 1_700_000_000},
        },
        "milestone": {"index": 2, "amount": amount, "status": "pending"},
    }


def refused(source: str, *, kind: str = "bool",
            limits: ConditionLimits | None = None) -> ConditionInvalidError:
    with pytest.raises(ConditionInvalidError) as caught:
        if limits is None:
            check_condition(source, field=FIELD, kind=kind)
        else:
            check_condition(source, field=FIELD, kind=kind, limits=limits)
    error = caught.value
    assert error.field == FIELD
    assert error.code == 1
    assert error.codespace == "contracts"
    return error


def failed(code: str, error: str) -> Evaluation:
    return Evaluation(ok=False, value=None, error_code=code, error=error)


# --- creation -----------------------------------------------------------------------------------


def test_street_lighting_condition_is_accepted() -> None:
    checked = check_condition(LIGHTS, field=FIELD)
    assert checked == CheckedCondition(
        source=LIGHTS, kind="bool", feed_ids=("lights.d7.working",), nodes=20, cost=32
    )


def test_feed_ids_are_sorted_and_distinct() -> None:
    checked = check_condition(
        'feeds["zeta"].value > feeds["alpha"].value && feeds["zeta"].count > 0', field=FIELD
    )
    assert checked.feed_ids == ("alpha", "zeta")


@pytest.mark.parametrize("source", [
    "milestone.amount > 0x10",
    "-5 < milestone.amount",
    "size(attestations) >= 2 && size(contract.id) < 64",
    "attestations.size() == 2",
    'int(contract.status) == 1 || string(milestone.index) == "2"',
    "has(milestone.amount) && has(feeds[\"meter\"].value)",
    'milestone.status == "pending" ? milestone.amount > 0 : false',
    "!(milestone.amount % 2 == 0)",
    "milestone.index in [1, 2, 3]",
    "attestations[0] == 'inspector'",
    'contract["id"] + "/x" != ""',
])
def test_allowed_constructs(source: str) -> None:
    assert check_condition(source, field=FIELD).source == source


def test_int_kind_is_accepted() -> None:
    checked = check_condition('feeds["meter"].value * 12', field=FIELD, kind="int")
    assert (checked.kind, checked.feed_ids) == ("int", ("meter",))


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        check_condition("true", field=FIELD, kind="string")
    with pytest.raises(ValueError):
        evaluate("true", "double", {})


def test_invalid_too_long() -> None:
    source = "milestone.amount > " + "1" * 18 + " || " + " || ".join(["true"] * 300)
    error = refused(source)
    assert error.details["reason"] == "too_long"
    assert error.details["limit"] == 1024
    assert error.details["actual"] == len(source.encode())


def test_invalid_too_long_counts_utf8_bytes() -> None:
    source = '"' + "é" * 20 + '" == contract.id'  # 37 characters, 57 bytes
    error = refused(source, limits=ConditionLimits(max_bytes=40))
    assert (error.details["reason"], error.details["actual"]) == ("too_long", 57)


@pytest.mark.parametrize("source", ["milestone.amount >", "a ) b", '"open', "&& true"])
def test_invalid_syntax(source: str) -> None:
    error = refused(source)
    assert error.details["reason"] == "syntax"
    assert "line 1, column" in error.message


def test_invalid_syntax_from_the_evaluator() -> None:
    # The reference grammar accepts an int literal the evaluator cannot hold.
    error = refused("milestone.amount < 9223372036854775808")
    assert error.details["reason"] == "syntax"
    assert "invalid int literal" in error.message


def test_invalid_syntax_nesting_deeper_than_the_evaluator_allows() -> None:
    error = refused("(" * 120 + "true" + ")" * 120)
    assert error.details["reason"] == "syntax"


@pytest.mark.parametrize("source", [
    "[1, 2].all(x, x > 0)",
    "[1].map(x, x) == [1]",
    "attestations.exists(a, a == 'inspector')",
    "attestations.exists_one(a, a == 'city')",
    "size(attestations.filter(a, a != '')) > 0",
    "[[1]].all(x, x.all(y, y > 0))",
    "[1].map(x, [1].map(y, x + y)) == [[2]]",
])
def test_invalid_macro(source: str) -> None:
    assert refused(source).details["reason"] == "macro"


@pytest.mark.parametrize("source", [
    "f(f(1)) > 0",
    "double(milestone.amount) > 1",
    "uint(milestone.amount) > 1",
    'timestamp("2026-01-01T00:00:00Z") == timestamp("2026-01-01T00:00:00Z")',
    'duration("1s") == duration("1s")',
    'contract.id.matches("^c-")',
    'contract.id.startsWith("c")',
    "dyn(milestone.amount) > 1",
    "min(1, milestone.amount) > 0",
    "size(attestations, 1) > 0",
    "attestations.size(1) > 0",
    "has(milestone)",
    'has(milestone["amount"])',
])
def test_invalid_function(source: str) -> None:
    assert refused(source).details["reason"] == "function"


@pytest.mark.parametrize("source", ["milestone.amount > 1.5", "1e3 < milestone.amount", ".5 > 0."])
def test_invalid_float(source: str) -> None:
    assert refused(source).details["reason"] == "float"


def test_invalid_uint() -> None:
    assert refused("milestone.amount == 1u").details["reason"] == "uint"


def test_invalid_bytes() -> None:
    assert refused('contract.id == b"c-42"').details["reason"] == "bytes"


@pytest.mark.parametrize("source", [
    "milestone.status == null",
    '{"a": 1}["a"] == 1',
    "Msg{amount: 1} == milestone",
    ".milestone.amount > 0",
])
def test_invalid_unsupported(source: str) -> None:
    assert refused(source).details["reason"] == "unsupported"


@pytest.mark.parametrize("source", ["budget > 0", "milestone.amount > limit", "x == x"])
def test_invalid_unknown_identifier(source: str) -> None:
    assert refused(source).details["reason"] == "unknown_identifier"


@pytest.mark.parametrize("source", [
    "feeds[string(block.height)].value > 0",
    "feeds[contract.id].value > 0",
    'feeds["a" + "b"].value > 0',
    'feeds[""].value > 0',
    'feeds["lights\\x2ed7"].value > 0',
    "feeds.meter.value > 0",
    'has(feeds.meter)',
    'size(feeds) > 0',
    '"meter" in feeds',
    "feeds == feeds",
])
def test_invalid_feed_access(source: str) -> None:
    assert refused(source).details["reason"] == "feed_access"


def test_invalid_too_many_feeds() -> None:
    source = " && ".join(f'feeds["feed.{i}"].value > 0' for i in range(9))
    error = refused(source)
    assert (error.details["reason"], error.details["limit"], error.details["actual"]) == (
        "too_many_feeds", 8, 9)
    # Reading the same feed twice counts once.
    assert check_condition(source + ' && feeds["feed.0"].count > 0', field=FIELD,
                           limits=ConditionLimits(max_feeds=9)).feed_ids[0] == "feed.0"


def test_invalid_too_large() -> None:
    source = " + ".join(["1"] * 200) + " > milestone.amount"  # 200 + 199 + 1 + 2 nodes
    error = refused(source)
    assert error.details == {"reason": "too_large", "limit": 256, "actual": 402}


def test_invalid_too_costly() -> None:
    source = " && ".join(["'inspector' in attestations"] * 12)
    checked = check_condition(source, field=FIELD)
    error = refused(source, limits=ConditionLimits(max_cost=checked.cost - 1))
    assert error.details == {"reason": "too_costly", "limit": checked.cost - 1,
                             "actual": checked.cost}


@pytest.mark.parametrize("source", ["1", '"yes"', "milestone.amount * 2", "-milestone.amount",
                                    "[true]", "size(attestations)"])
def test_invalid_wrong_kind_for_bool(source: str) -> None:
    error = refused(source)
    assert (error.details["reason"], error.details["expected"]) == ("wrong_kind", "bool")


@pytest.mark.parametrize("source", ["true", "milestone.amount > 1", "!true", "has(block.time)",
                                    "block.time > 0 && true", '"x"'])
def test_invalid_wrong_kind_for_int(source: str) -> None:
    error = refused(source, kind="int")
    assert (error.details["reason"], error.details["expected"]) == ("wrong_kind", "int")


def test_deep_nesting_does_not_exhaust_recursion() -> None:
    error = refused("!" * 1000 + "true")  # too many nodes, found without recursing
    assert error.details["reason"] == "too_large"


# --- evaluation -----------------------------------------------------------------------------


def test_street_lighting_condition_evaluates() -> None:
    assert evaluate(LIGHTS, "bool", activation()) == Evaluation(True, True, "", "")
    assert evaluate(LIGHTS, "bool", activation(working=119)) == Evaluation(True, False, "", "")
    assert evaluate(LIGHTS, "bool", activation(attestations=("city",))).value is False
    assert evaluate(LIGHTS, "bool", activation(window_end=1_700_000_000)).value is False


def test_int_kind_evaluates_to_int() -> None:
    result = evaluate('feeds["meter"].value * 12', "int", activation())
    assert result == Evaluation(True, 3000, "", "")
    assert type(result.value) is int


def test_bool_comes_back_as_bool() -> None:
    result = evaluate("milestone.amount > 0", "bool", activation())
    assert result.value is True


def test_division_by_zero_is_recorded() -> None:
    source = "1 / (milestone.amount - milestone.amount) == 0"
    check_condition(source, field=FIELD)
    assert evaluate(source, "bool", activation()) == failed(
        "division_by_zero", "division or modulo by zero")
    assert evaluate("1 % (milestone.amount - milestone.amount) == 0", "bool",
                    activation()).error_code == "division_by_zero"


@pytest.mark.parametrize("source", [
    "9223372036854775807 + milestone.amount > 0",
    "-9223372036854775807 - milestone.amount > 0",
    "9223372036854775807 * milestone.amount > 0",
    "-9223372036854775808 / (milestone.amount - 4000001) > 0",
    'int("99999999999999999999") > 0',
])
def test_overflow_is_recorded(source: str) -> None:
    check_condition(source, field=FIELD)
    result = evaluate(source, "bool", activation())
    assert (result.ok, result.value, result.error_code) == (False, None, "overflow")


def test_overflow_in_activation_is_recorded() -> None:
    data = activation(amount=2**63)
    assert evaluate("milestone.amount > 0", "bool", data).error_code == "overflow"
    # A variable the condition does not read is not looked at.
    assert evaluate("block.time > 0", "bool", data).ok


@pytest.mark.parametrize(("source", "error"), [
    ('feeds["lights.d9.working"].value > 0', "no such key or field: lights.d9.working"),
    ('feeds["meter"].window_start > 0', "no such key or field: window_start"),
    ("milestone.deadline > block.time", "no such key or field: deadline"),
    ("attestations[5] == 'x'", "list index out of range: 5"),
])
def test_missing_data_is_recorded(source: str, error: str) -> None:
    check_condition(source, field=FIELD)
    assert evaluate(source, "bool", activation()) == failed("missing_data", error)


def test_missing_variable_is_recorded() -> None:
    data = activation()
    del data["milestone"]
    assert evaluate("milestone.amount > 0", "bool", data) == failed(
        "missing_data", "no such variable: milestone")


@pytest.mark.parametrize(("source", "kind", "error"), [
    ("milestone.amount + 1", "bool", "result is int, expected bool"),
    ("milestone.amount > 1", "int", "result is bool, expected int"),
    ("milestone.status", "bool", "result is string, expected bool"),
    ("milestone.status", "int", "result is string, expected int"),
    ("attestations", "bool", "result is list, expected bool"),
    ("milestone", "int", "result is map, expected int"),
    ('milestone.status + 1 == ""', "bool", "Unsupported operation: string + int"),
    ("milestone.amount && true", "bool", "no matching overload"),
    ("size(milestone.amount) > 0", "bool", "no matching overload for size()"),
    ("string(milestone) != ''", "bool", "no matching overload for string()"),
])
def test_type_error_is_recorded(source: str, kind: str, error: str) -> None:
    assert evaluate(source, kind, activation()) == failed("type_error", error)


def test_float_in_activation_is_refused() -> None:
    data = activation()
    data["milestone"] = {"amount": 1.5}
    assert evaluate("milestone.amount > 1", "bool", data) == failed(
        "type_error", "activation value of type double")


def test_other_failures_are_evaluation_errors() -> None:
    assert evaluate('int(milestone.status) > 0', "bool", activation()) == failed(
        "evaluation_error", "int() of a string that is not an integer")
    assert evaluate("milestone.amount >", "bool", activation()) == failed(
        "evaluation_error", "condition does not compile")


def test_short_circuit_skips_errors() -> None:
    assert evaluate("true || 1 / 0 == 0", "bool", {}).value is True
    assert evaluate("false && milestone.nothing > 0", "bool", activation()).value is False


def test_error_messages_are_short() -> None:
    key = "k" * 500
    source = f'feeds["meter"].{key} > 0'
    result = evaluate(source, "bool", activation())
    assert result.error_code == "missing_data"
    assert len(result.error) <= 200


def test_result_does_not_depend_on_activation_order() -> None:
    forward = activation()
    backward = {name: _reverse(forward[name]) for name in reversed(list(forward))}
    assert list(backward) != list(forward)
    for source in (LIGHTS, "size(attestations) == 2", 'feeds["nope"].value > 0'):
        assert evaluate(source, "bool", forward) == evaluate(source, "bool", backward)


def _reverse(value: object) -> object:
    if isinstance(value, dict):
        return {key: _reverse(value[key]) for key in reversed(list(value))}
    return value


def test_program_cache_does_not_change_results() -> None:
    sources = [LIGHTS, "1 / (milestone.amount - milestone.amount) == 0", "milestone.amount + 1"]
    cold = []
    for source in sources:
        conditions._programs.clear()
        cold.append(evaluate(source, "bool", activation()))
    warm = [evaluate(source, "bool", activation()) for source in sources]
    assert cold == warm
    assert set(sources) <= set(conditions._programs)


def test_program_cache_is_bounded() -> None:
    conditions._programs.clear()
    for number in range(conditions._PROGRAM_CACHE_SIZE + 10):
        assert evaluate(f"milestone.amount > {number}", "bool", activation()).ok
    assert len(conditions._programs) == conditions._PROGRAM_CACHE_SIZE
    assert "milestone.amount > 0" not in conditions._programs


def test_variables_are_the_documented_ones() -> None:
    assert VARIABLES == ("attestations", "block", "contract", "feeds", "milestone")


ints64 = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.integers(-3, 3)

PROPERTY_SOURCES = [
    (LIGHTS, "bool"),
    ("milestone.amount * milestone.index + block.time / milestone.amount > 0", "bool"),
    ("milestone.amount % milestone.index - block.time", "int"),
    ('feeds["meter"].value * 12 - -milestone.amount', "int"),
    ("block.time - feeds[\"lights.d7.working\"].window_end <= 3600 || milestone.index < 0", "bool"),
]


@settings(max_examples=200, deadline=None)
@given(amount=ints64, index=ints64, time=ints64, working=ints64,
       window_end=ints64, meter=ints64, which=st.integers(0, len(PROPERTY_SOURCES) - 1))
def test_evaluate_never_raises_and_is_repeatable(
    amount: int, index: int, time: int, working: int, window_end: int, meter: int, which: int,
) -> None:
    source, kind = PROPERTY_SOURCES[which]
    data = activation(working=working, window_end=window_end)
    data["block"] = {"height": 1, "time": time}
    data["milestone"] = {"amount": amount, "index": index}
    data["feeds"]["meter"] = {"value": meter}  # type: ignore[index]
    first = evaluate(source, kind, data)
    second = evaluate(source, kind, data)
    assert first == second
    if first.ok:
        assert first.error_code == "" and first.error == ""
        if kind == "bool":
            assert type(first.value) is bool
        else:
            assert type(first.value) is int
            assert -(2**63) <= first.value <= 2**63 - 1
    else:
        assert first.value is None
        assert first.error_code in (
            "division_by_zero", "overflow", "missing_data", "type_error", "evaluation_error")
