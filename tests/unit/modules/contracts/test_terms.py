"""Contract terms: strict JSON parsing (integers only, no duplicate or unknown fields), the party
and milestone rules, each refusal naming the field at fault; templates build terms that parse."""

from __future__ import annotations

import json
from typing import Any

import pytest

from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidMessageError
from citychain.modules.contracts.conditions import ConditionLimits
from citychain.modules.contracts.errors import ConditionInvalidError
from citychain.modules.contracts.params import HARD_LIMITS, MAX_PERIODS
from citychain.modules.contracts.templates import (
    ESCROW,
    PAY_PER_USE,
    RECURRING_SERVICE,
    STREET_LIGHTING,
    TEMPLATES,
    Template,
)
from citychain.modules.contracts.terms import (
    DEFAULT_CHECK_EVERY_BLOCKS,
    DEFAULT_MAX_FEED_AGE,
    TEMPLATE_CUSTOM,
    milestone_to_json,
    parse_milestone,
    parse_terms,
    terms_to_json,
)
from citychain.modules.contracts.types import MAX_AMOUNT, ROLE_INSPECTOR, ROLE_PAYEE, ROLE_PAYER

PAYER = PrivateKey.from_secret("test_terms/payer")
PAYEE = PrivateKey.from_secret("test_terms/payee")
INSPECTOR = PrivateKey.from_secret("test_terms/inspector")
DEADLINE = 1_800_000_000


def milestone(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"name": "works", "condition": 'feeds["lights"].value >= 10',
                             "amount": 1_000, "deadline": DEADLINE}
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def terms(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "title": "Lights", "denom": "ucity",
        "parties": [{"role": "payer", "did": PAYER.did}, {"role": "payee", "did": PAYEE.did}],
        "milestones": [milestone()]}
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def text(value: Any) -> str:
    return json.dumps(value)


def refused(source: str, field: str, error: type[Exception] = InvalidMessageError) -> Any:
    with pytest.raises(error) as caught:
        parse_terms(source, HARD_LIMITS)
    assert type(caught.value) is error
    assert caught.value.field == field  # type: ignore[attr-defined]
    return caught.value


# ------------------------------------------------------------------------------ valid

def test_minimal_terms_take_the_defaults() -> None:
    parsed = parse_terms(text(terms()), HARD_LIMITS)
    assert (parsed.title, parsed.denom, parsed.template) == ("Lights", "ucity", TEMPLATE_CUSTOM)
    assert (parsed.check_every_blocks, parsed.bond, parsed.terms_hash) == (
        DEFAULT_CHECK_EVERY_BLOCKS, 0, "")
    assert (parsed.payer, parsed.payee) == (PAYER.address, PAYEE.address)
    (only,) = parsed.milestones
    assert (only.hold, only.period, only.periods, only.on_miss, only.penalty) == (
        0, 0, 1, "refund", 0)
    assert only.max_feed_age == DEFAULT_MAX_FEED_AGE and only.feed_ids == ("lights",)
    assert parsed.payer_total == 1_000 and not only.recurring


def test_parties_are_stored_in_role_order_whatever_the_input_order() -> None:
    parties = [{"role": "inspector", "did": INSPECTOR.did}, {"role": "payee", "did": PAYEE.did},
               {"role": "payer", "did": PAYER.did}]
    parsed = parse_terms(text(terms(parties=parties)), HARD_LIMITS)
    assert [p.role for p in parsed.parties] == [ROLE_PAYER, ROLE_PAYEE, ROLE_INSPECTOR]
    assert parsed.roles_of(INSPECTOR.address) == (ROLE_INSPECTOR,)
    assert parsed.roles_of(PrivateKey.from_secret("test_terms/x").address) == ()


def test_recurring_milestone_with_amount_expr_reads_both_feeds() -> None:
    parsed = parse_milestone(milestone(period=86_400, periods=12,
                                       amount_expr='feeds["meter"].value * 3'),
                             HARD_LIMITS, "m")
    assert parsed.recurring and parsed.total == 12_000
    assert parsed.feed_ids == ("lights", "meter")
    assert parsed.period_end(2) == DEADLINE + 2 * 86_400


def test_penalty_with_a_bond() -> None:
    parsed = parse_terms(text(terms(bond=500, milestones=[
        milestone(on_miss="penalty", penalty=200)])), HARD_LIMITS)
    assert parsed.bond == 500 and parsed.milestones[0].penalty == 200


def test_json_forms_round_trip() -> None:
    parsed = parse_terms(text(terms(milestones=[milestone(hold=60), milestone(name="two")])),
                         HARD_LIMITS)
    assert parse_terms(terms_to_json(parsed), HARD_LIMITS) == parsed
    again = parse_milestone(json.loads(milestone_to_json(parsed.milestones[0])), HARD_LIMITS,
                            "terms")
    assert again == parsed.milestones[0]


# ---------------------------------------------------------------------------- invalid

def test_invalid_float() -> None:
    refused(text(terms(milestones=[milestone(amount=1.5)])), "terms")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_invalid_float_constant(constant: str) -> None:
    source = text(terms()).replace('"amount": 1000', f'"amount": {constant}')
    refused(source, "terms")


def test_invalid_duplicate_keys() -> None:
    source = text(terms()).replace('"title": "Lights"', '"title": "Lights", "title": "Other"')
    error = refused(source, "terms")
    assert "twice" in error.message


def test_invalid_not_json() -> None:
    refused("{title", "terms")


def test_invalid_too_big() -> None:
    refused(" " * (48 * 1024 + 1), "terms")


def test_invalid_not_an_object() -> None:
    refused("[]", "terms")


def test_invalid_unknown_field() -> None:
    refused(text(terms(colour="blue")), "terms.colour")


def test_invalid_unknown_milestone_field() -> None:
    refused(text(terms(milestones=[milestone(colour="blue")])), "terms.milestones[0].colour")


def test_invalid_missing_title() -> None:
    source = {k: v for k, v in terms().items() if k != "title"}
    refused(text(source), "terms.title")


def test_invalid_bool_for_int() -> None:
    refused(text(terms(bond=True)), "terms.bond")


def test_invalid_wrong_type() -> None:
    refused(text(terms(title=5)), "terms.title")


def test_invalid_empty_title() -> None:
    refused(text(terms(title="")), "terms.title")


def test_invalid_denom() -> None:
    refused(text(terms(denom="U")), "terms.denom")


def test_invalid_template_name() -> None:
    refused(text(terms(template="Bad-Name")), "terms.template")


def test_invalid_terms_hash() -> None:
    refused(text(terms(terms_hash="AB" * 32)), "terms.terms_hash")


def test_invalid_check_every_blocks_zero() -> None:
    refused(text(terms(check_every_blocks=0)), "terms.check_every_blocks")


def test_invalid_negative_bond() -> None:
    refused(text(terms(bond=-1)), "terms.bond")


def test_invalid_missing_payer() -> None:
    parties = [{"role": "payee", "did": PAYEE.did}, {"role": "inspector", "did": INSPECTOR.did}]
    refused(text(terms(parties=parties)), "terms.parties")


def test_invalid_one_party() -> None:
    refused(text(terms(parties=[{"role": "payer", "did": PAYER.did}])), "terms.parties")


def test_invalid_unknown_role() -> None:
    parties = [{"role": "payer", "did": PAYER.did}, {"role": "mayor", "did": PAYEE.did}]
    refused(text(terms(parties=parties)), "terms.parties[1].role")


def test_invalid_duplicate_role() -> None:
    parties = [{"role": "payer", "did": PAYER.did}, {"role": "payer", "did": PAYEE.did}]
    refused(text(terms(parties=parties)), "terms.parties[1].role")


def test_invalid_duplicate_did() -> None:
    parties = [{"role": "payer", "did": PAYER.did}, {"role": "payee", "did": PAYER.did}]
    refused(text(terms(parties=parties)), "terms.parties[1].did")


def test_invalid_party_did() -> None:
    parties = [{"role": "payer", "did": PAYER.did}, {"role": "payee", "did": "did:web:x"}]
    refused(text(terms(parties=parties)), "terms.parties[1].did")


def test_invalid_no_milestones() -> None:
    refused(text(terms(milestones=[])), "terms.milestones")


def test_invalid_duplicate_milestone_name() -> None:
    refused(text(terms(milestones=[milestone(), milestone()])), "terms.milestones[1].name")


def test_invalid_milestone_name() -> None:
    refused(text(terms(milestones=[milestone(name="-x")])), "terms.milestones[0].name")


def test_invalid_zero_amount() -> None:
    refused(text(terms(milestones=[milestone(amount=0)])), "terms.milestones[0].amount")


def test_invalid_zero_deadline() -> None:
    refused(text(terms(milestones=[milestone(deadline=0)])), "terms.milestones[0].deadline")


def test_invalid_periods_with_period_zero() -> None:
    refused(text(terms(milestones=[milestone(periods=3)])), "terms.milestones[0].periods")


def test_invalid_too_many_periods() -> None:
    refused(text(terms(milestones=[milestone(period=60, periods=MAX_PERIODS + 1)])),
            "terms.milestones[0].periods")


def test_invalid_hold_on_recurring() -> None:
    refused(text(terms(milestones=[milestone(period=60, periods=2, hold=10)])),
            "terms.milestones[0].hold")


def test_invalid_on_miss() -> None:
    refused(text(terms(milestones=[milestone(on_miss="forgive")])),
            "terms.milestones[0].on_miss")


def test_invalid_penalty_without_on_miss_penalty() -> None:
    refused(text(terms(bond=10, milestones=[milestone(penalty=5)])),
            "terms.milestones[0].penalty")


def test_invalid_on_miss_penalty_without_penalty() -> None:
    refused(text(terms(bond=10, milestones=[milestone(on_miss="penalty")])),
            "terms.milestones[0].penalty")


def test_invalid_penalty_without_bond() -> None:
    refused(text(terms(milestones=[milestone(on_miss="penalty", penalty=5)])),
            "terms.milestones[0].on_miss")


def test_invalid_last_period_after_max_time() -> None:
    refused(text(terms(milestones=[milestone(deadline=2**40, period=1, periods=2)])),
            "terms.milestones[0].periods")


def test_invalid_amount_times_periods_overflow() -> None:
    refused(text(terms(milestones=[milestone(amount=MAX_AMOUNT // 2 + 1, period=60,
                                             periods=2)])),
            "terms.milestones[0].amount")


def test_invalid_total_overflow_across_milestones() -> None:
    big = MAX_AMOUNT // 2 + 1
    refused(text(terms(milestones=[milestone(amount=big), milestone(name="b", amount=big)])),
            "terms.milestones")


def test_invalid_condition_is_a_condition_error() -> None:
    error = refused(text(terms(milestones=[milestone(condition="[1,2].all(x, x > 0)")])),
                    "terms.milestones[0].condition", ConditionInvalidError)
    assert error.details["reason"] == "macro"


def test_invalid_condition_not_bool() -> None:
    error = refused(text(terms(milestones=[milestone(condition="milestone.amount * 2")])),
                    "terms.milestones[0].condition", ConditionInvalidError)
    assert error.details["reason"] == "wrong_kind"


def test_invalid_amount_expr_not_int() -> None:
    error = refused(text(terms(milestones=[milestone(amount_expr="true")])),
                    "terms.milestones[0].amount_expr", ConditionInvalidError)
    assert error.details["reason"] == "wrong_kind"


def test_invalid_condition_over_narrow_limits() -> None:
    narrow = ConditionLimits(max_bytes=16, max_nodes=64, max_cost=64, max_feeds=1)
    with pytest.raises(ConditionInvalidError) as caught:
        parse_terms(text(terms(milestones=[milestone(condition='feeds["lights"].value >= 10')])),
                    narrow)
    assert caught.value.field == "terms.milestones[0].condition"
    assert caught.value.details["reason"] == "too_long"


def test_invalid_milestone_not_an_object() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse_milestone([1], HARD_LIMITS, "terms")
    assert caught.value.field == "terms"


# -------------------------------------------------------------------------- templates

NOW = 1_767_225_600
TEMPLATE_VALUES: dict[str, dict[str, Any]] = {
    STREET_LIGHTING.name: {"payer": PAYER.did, "payee": PAYEE.did, "inspector": INSPECTOR.did,
                           "districts": ["d7:lights.d7:100", "d8:lights.d8:50"],
                           "amount_per_district": 5_000, "deadline": NOW + 86_400,
                           "penalty": 100, "bond": 200},
    PAY_PER_USE.name: {"payer": PAYER.did, "payee": PAYEE.did, "meter_feed": "road.km",
                       "unit_price": 3, "cap_per_period": 1_000, "first_period_end": NOW + 60},
    RECURRING_SERVICE.name: {"payer": PAYER.did, "payee": PAYEE.did, "rounds_feed": "rounds",
                             "min_rounds": 3, "amount_per_period": 700,
                             "first_period_end": NOW + 60, "periods": 4},
    ESCROW.name: {"payer": PAYER.did, "payee": PAYEE.did, "amount": 50, "deadline": NOW + 60},
}


@pytest.mark.parametrize("template", list(TEMPLATES.values()), ids=lambda t: t.name)
def test_each_template_builds_terms_that_parse(template: Template) -> None:
    parsed = parse_terms(template.terms(TEMPLATE_VALUES[template.name]), HARD_LIMITS)
    assert parsed.template == template.name
    assert (parsed.payer, parsed.payee) == (PAYER.address, PAYEE.address)


def test_street_lighting_template_terms() -> None:
    parsed = parse_terms(STREET_LIGHTING.terms(TEMPLATE_VALUES[STREET_LIGHTING.name]),
                         HARD_LIMITS)
    assert [m.name for m in parsed.milestones] == ["district-d7", "district-d8"]
    assert parsed.payer_total == 10_000 and parsed.bond == 200
    first = parsed.milestones[0]
    assert first.condition == 'feeds["lights.d7"].value >= 100 && "inspector" in attestations'
    assert (first.hold, first.on_miss, first.penalty) == (7 * 86_400, "penalty", 100)


def test_pay_per_use_and_recurring_template_terms() -> None:
    usage = parse_terms(PAY_PER_USE.terms(TEMPLATE_VALUES[PAY_PER_USE.name]),
                        HARD_LIMITS).milestones[0]
    assert (usage.amount, usage.periods, usage.amount_expr) == (
        1_000, 12, 'feeds["road.km"].value * 3')
    service = parse_terms(RECURRING_SERVICE.terms(TEMPLATE_VALUES[RECURRING_SERVICE.name]),
                          HARD_LIMITS)
    assert service.payer_total == 2_800 and service.milestones[0].feed_ids == ("rounds",)


def test_escrow_template_default_condition_names_the_arbiter_when_there_is_one() -> None:
    alone = parse_terms(ESCROW.terms(TEMPLATE_VALUES[ESCROW.name]), HARD_LIMITS)
    assert alone.milestones[0].condition == '"payer" in attestations'
    arbiter = PrivateKey.from_secret("test_terms/arbiter").did
    both = parse_terms(ESCROW.terms({**TEMPLATE_VALUES[ESCROW.name], "arbiter": arbiter}),
                       HARD_LIMITS)
    assert "arbiter" in both.milestones[0].condition and len(both.parties) == 3


def template_refused(template: Template, changes: dict[str, Any], field: str) -> None:
    values = {**TEMPLATE_VALUES[template.name], **changes}
    values = {k: v for k, v in values.items() if v is not ...}
    with pytest.raises(InvalidMessageError) as caught:
        template.terms(values)
    assert type(caught.value) is InvalidMessageError
    assert caught.value.field == field


def test_invalid_template_missing_param() -> None:
    template_refused(ESCROW, {"amount": ...}, "amount")


def test_invalid_template_unknown_param() -> None:
    template_refused(PAY_PER_USE, {"colour": "blue"}, "colour")


def test_invalid_template_param_type() -> None:
    template_refused(RECURRING_SERVICE, {"min_rounds": "3"}, "min_rounds")


def test_invalid_template_district_spec() -> None:
    template_refused(STREET_LIGHTING, {"districts": ["d7:lights"]}, "districts[0]")


def test_invalid_template_built_terms_name_the_terms_path() -> None:
    template_refused(ESCROW, {"amount": 0}, "terms.milestones[0].amount")


def test_template_accepts_a_tuple_for_a_list() -> None:
    values = {**TEMPLATE_VALUES[STREET_LIGHTING.name], "districts": ("d7:lights.d7:100",)}
    assert len(parse_terms(STREET_LIGHTING.terms(values), HARD_LIMITS).milestones) == 1
