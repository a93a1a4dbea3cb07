"""Contract templates: documented, parameterised terms for the city's common agreements.

A template is a pure function from named parameters to terms (JSON text for MsgCreateContract);
the chain does not know templates, it records the name and checks the terms like any others.
``TEMPLATES`` lists them with their parameters for the CLI, the API and the SDK;
docs/spec/contracts.md shows each one's conditions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from citychain.core.errors import InvalidMessageError
from citychain.modules.contracts.params import HARD_LIMITS
from citychain.modules.contracts.terms import DEFAULT_CHECK_EVERY_BLOCKS, parse_terms

DAY = 86_400


@dataclass(frozen=True, slots=True)
class TemplateParam:
    """One parameter: ``kind`` is int, str or list (a list of ``code:feed:...`` strings)."""

    name: str
    kind: type
    description: str
    default: Any = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    summary: str
    params: tuple[TemplateParam, ...]
    build: Callable[[Mapping[str, Any]], dict[str, Any]]

    def terms(self, values: Mapping[str, Any]) -> str:
        """Return the terms (JSON text) for ``values``, checked as the chain will check them.

        Raises:
            InvalidMessageError: a parameter is missing, unknown or of the wrong type, or the
                terms fail their checks (the field names the terms path).
            ConditionInvalidError: a built condition is refused (a bad feed id, say).
        """
        chosen = resolve_params(self, values)
        text = json.dumps({**self.build(chosen), "template": self.name}, sort_keys=True,
                          separators=(",", ":"))
        parse_terms(text, HARD_LIMITS)
        return text


def resolve_params(template: Template, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``values`` against the template's parameters and fill in defaults.

    Raises:
        InvalidMessageError: naming the parameter.
    """
    known = {param.name: param for param in template.params}
    for name in sorted(values):
        if name not in known:
            raise InvalidMessageError(f"template {template.name} has no parameter {name!r}",
                                      field=name)
    chosen: dict[str, Any] = {}
    for param in template.params:
        if param.name not in values or values[param.name] is None:
            if param.required:
                raise InvalidMessageError(f"template {template.name} needs {param.name}: "
                                          f"{param.description}", field=param.name)
            chosen[param.name] = param.default
            continue
        value = values[param.name]
        if param.kind is list and isinstance(value, tuple):
            value = list(value)
        if type(value) is not param.kind:
            raise InvalidMessageError(f"{param.name} must be {param.kind.__name__}, got "
                                      f"{type(value).__name__}", field=param.name)
        chosen[param.name] = value
    return chosen


def _parties(values: Mapping[str, Any], *extra: str) -> list[dict[str, str]]:
    parties = [{"role": "payer", "did": values["payer"]}, {"role": "payee", "did": values["payee"]}]
    for role in extra:
        if values.get(role):
            parties.append({"role": role, "did": values[role]})
    return parties


def _feed(feed_id: str) -> str:
    return "feeds[" + json.dumps(feed_id) + "]"


def _fresh_in_period(feed_id: str) -> str:
    # Bounded on both sides: a period judged late must not be paid with a later period's value.
    return (f"{_feed(feed_id)}.window_end > milestone.period_start && "
            f"{_feed(feed_id)}.window_end <= milestone.period_end")


# Parameters every template takes, with the same meaning.
_ARBITER = TemplateParam("arbiter", str, "an arbiter's DID (optional)", "")
_DENOM = TemplateParam("denom", str, "the denomination", "ucity")
_CHECK_EVERY_BLOCKS = TemplateParam("check_every_blocks", int,
                                    "how often end-block judges the contract",
                                    DEFAULT_CHECK_EVERY_BLOCKS)
_TERMS_HASH = TemplateParam("terms_hash", str,
                            "SHA-256 (hex) of the signed legal text, or empty", "")


# ------------------------------------------------------------------ ppp street lighting

def _build_street_lighting(values: Mapping[str, Any]) -> dict[str, Any]:
    milestones = []
    for index, spec in enumerate(values["districts"]):
        parts = spec.split(":") if isinstance(spec, str) else []
        if len(parts) != 3 or not parts[2].isdigit():
            raise InvalidMessageError(
                f"districts[{index}] must be DISTRICT:FEED_ID:MIN_WORKING_LIGHTS, got {spec!r}",
                field=f"districts[{index}]")
        district, feed_id, minimum = parts
        condition = f"{_feed(feed_id)}.value >= {int(minimum)}"
        if values["inspector"]:
            condition += ' && "inspector" in attestations'
        milestones.append({
            "name": f"district-{district}", "condition": condition,
            "amount": values["amount_per_district"], "deadline": values["deadline"],
            "hold": values["hold_seconds"] or values["hold_days"] * DAY,
            "max_feed_age": values["max_feed_age"],
            "on_miss": "penalty" if values["penalty"] else "refund",
            "penalty": values["penalty"]})
    return {"title": values["title"], "denom": values["denom"],
            "parties": _parties(values, "inspector", "arbiter"),
            "check_every_blocks": values["check_every_blocks"], "bond": values["bond"],
            "terms_hash": values["terms_hash"], "milestones": milestones}


STREET_LIGHTING = Template(
    "ppp_street_lighting",
    "PPP milestone escrow: pay the contractor per district once the district's street-light "
    "feed has shown at least N working lights for hold_days, with the inspector's sign-off",
    (TemplateParam("payer", str, "the city department's DID (pays)"),
     TemplateParam("payee", str, "the contractor's DID (is paid)"),
     TemplateParam("inspector", str, "the inspector's DID (signs off each district); empty: no "
                   "sign-off needed", ""),
     _ARBITER,
     _DENOM,
     TemplateParam("title", str, "the contract's title", "Smart street lighting"),
     TemplateParam("districts", list, "one DISTRICT:FEED_ID:MIN_WORKING_LIGHTS per district"),
     TemplateParam("amount_per_district", int, "what each district releases (minor units)"),
     TemplateParam("deadline", int, "UNIX seconds by which each district must be released"),
     TemplateParam("hold_days", int, "days the feed must show enough working lights", 7),
     TemplateParam("hold_seconds", int, "the hold in seconds instead (tests, demos); 0: use "
                   "hold_days", 0),
     TemplateParam("max_feed_age", int, "seconds after which a feed value is stale", 3_600),
     TemplateParam("penalty", int, "paid to the city from the bond per missed district (0: "
                   "refund only)", 0),
     TemplateParam("bond", int, "the contractor's performance bond (needed for a penalty)", 0),
     _CHECK_EVERY_BLOCKS,
     _TERMS_HASH),
    _build_street_lighting)


# ------------------------------------------------------------------------ pay per use

def _build_pay_per_use(values: Mapping[str, Any]) -> dict[str, Any]:
    feed_id = values["meter_feed"]
    return {"title": values["title"], "denom": values["denom"],
            "parties": _parties(values, "arbiter"),
            "check_every_blocks": values["check_every_blocks"],
            "terms_hash": values["terms_hash"],
            "milestones": [{
                "name": "usage", "condition": _fresh_in_period(feed_id),
                "amount": values["cap_per_period"],
                "amount_expr": f"{_feed(feed_id)}.value * {values['unit_price']}",
                "deadline": values["first_period_end"], "period": values["period"],
                "periods": values["periods"], "max_feed_age": values["max_feed_age"]}]}


PAY_PER_USE = Template(
    "pay_per_use",
    "Pay-per-use: each period the user pays the meter feed's value times a unit price (road "
    "use by autonomous vehicles, tolls), up to a cap; the rest of the period's escrow returns",
    (TemplateParam("payer", str, "the user's DID (a fleet operator; pays)"),
     TemplateParam("payee", str, "the city's DID (is paid)"),
     _ARBITER,
     _DENOM,
     TemplateParam("title", str, "the contract's title", "Road use"),
     TemplateParam("meter_feed", str, "the feed metering use per period (its scaled unit)"),
     TemplateParam("unit_price", int, "price per scaled unit of the meter (minor units)"),
     TemplateParam("cap_per_period", int, "the most one period can cost (escrowed per period)"),
     TemplateParam("period", int, "the billing period in seconds", 30 * DAY),
     TemplateParam("periods", int, "how many periods", 12),
     TemplateParam("first_period_end", int, "UNIX seconds when the first period ends"),
     TemplateParam("max_feed_age", int, "seconds after which a meter value is stale", DAY),
     _CHECK_EVERY_BLOCKS,
     _TERMS_HASH),
    _build_pay_per_use)


# ------------------------------------------------------------------ recurring service

def _build_recurring_service(values: Mapping[str, Any]) -> dict[str, Any]:
    feed_id = values["rounds_feed"]
    condition = (f"{_feed(feed_id)}.value >= {values['min_rounds']} && "
                 f"{_fresh_in_period(feed_id)}")
    return {"title": values["title"], "denom": values["denom"],
            "parties": _parties(values, "inspector", "arbiter"),
            "check_every_blocks": values["check_every_blocks"], "bond": values["bond"],
            "terms_hash": values["terms_hash"],
            "milestones": [{
                "name": "service", "condition": condition,
                "amount": values["amount_per_period"], "deadline": values["first_period_end"],
                "period": values["period"], "periods": values["periods"],
                "max_feed_age": values["max_feed_age"],
                "on_miss": "penalty" if values["penalty"] else "refund",
                "penalty": values["penalty"]}]}


RECURRING_SERVICE = Template(
    "recurring_service",
    "Recurring service payment: the contractor is paid each period in which the rounds feed "
    "shows at least min_rounds verified collection rounds (waste collection)",
    (TemplateParam("payer", str, "the city department's DID (pays)"),
     TemplateParam("payee", str, "the contractor's DID (is paid)"),
     TemplateParam("inspector", str, "an inspector's DID (optional)", ""),
     _ARBITER,
     _DENOM,
     TemplateParam("title", str, "the contract's title", "Waste collection"),
     TemplateParam("rounds_feed", str, "the feed counting verified rounds per period"),
     TemplateParam("min_rounds", int, "rounds needed in a period", 1),
     TemplateParam("amount_per_period", int, "paid per period (minor units)"),
     TemplateParam("period", int, "the period in seconds", 7 * DAY),
     TemplateParam("periods", int, "how many periods", 52),
     TemplateParam("first_period_end", int, "UNIX seconds when the first period ends"),
     TemplateParam("max_feed_age", int, "seconds after which a rounds value is stale", DAY),
     TemplateParam("penalty", int, "paid from the bond per missed period (0: refund only)", 0),
     TemplateParam("bond", int, "the contractor's performance bond", 0),
     _CHECK_EVERY_BLOCKS,
     _TERMS_HASH),
    _build_recurring_service)


# ---------------------------------------------------------------------- generic escrow

def _build_escrow(values: Mapping[str, Any]) -> dict[str, Any]:
    condition = values["condition"] or ('"payer" in attestations || "arbiter" in attestations'
                                        if values["arbiter"] else '"payer" in attestations')
    return {"title": values["title"], "denom": values["denom"],
            "parties": _parties(values, "inspector", "arbiter"),
            "check_every_blocks": values["check_every_blocks"],
            "terms_hash": values["terms_hash"],
            "milestones": [{"name": "release", "condition": condition,
                            "amount": values["amount"], "deadline": values["deadline"]}]}


ESCROW = Template(
    "escrow",
    "Generic escrow: released to the payee when the condition holds (by default when the payer "
    "or the arbiter attests), refunded to the payer after the deadline",
    (TemplateParam("payer", str, "the payer's DID"),
     TemplateParam("payee", str, "the payee's DID"),
     TemplateParam("inspector", str, "an inspector's DID (optional)", ""),
     _ARBITER,
     _DENOM,
     TemplateParam("title", str, "the contract's title", "Escrow"),
     TemplateParam("amount", int, "the escrowed amount (minor units)"),
     TemplateParam("deadline", int, "UNIX seconds after which the payer is refunded"),
     TemplateParam("condition", str, "a CEL release condition (default: payer or arbiter "
                   "attests)", ""),
     _CHECK_EVERY_BLOCKS,
     _TERMS_HASH),
    _build_escrow)


TEMPLATES: dict[str, Template] = {template.name: template for template in
                                  (STREET_LIGHTING, PAY_PER_USE, RECURRING_SERVICE, ESCROW)}
