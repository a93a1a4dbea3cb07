"""Contract terms as people write them (JSON) and as the chain stores them (records).

The terms travel in a message as one JSON text, so the rules the parties sign are the rules an
auditor reads. Parsing is strict: no floats, no duplicate or unknown fields, every condition
checked against the CEL subset and its limits. docs/spec/contracts.md lists every field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from citychain.core.errors import InvalidMessageError
from citychain.modules.contracts.conditions import (
    CheckedCondition,
    ConditionLimits,
    check_condition,
)
from citychain.modules.contracts.params import MAX_MILESTONES, MAX_PERIODS, MAX_TERMS_BYTES
from citychain.modules.contracts.types import (
    MAX_AMOUNT,
    MAX_NAME,
    MAX_TEMPLATE,
    MAX_TIME,
    MAX_TITLE,
    ON_MISS,
    ON_MISS_PENALTY,
    ON_MISS_REFUND,
    REQUIRED_ROLES,
    ROLES,
    MilestoneTerms,
    Party,
    Terms,
)
from citychain.modules.identity.api import address_of, validate_did_field

DEFAULT_CHECK_EVERY_BLOCKS = 10
DEFAULT_MAX_FEED_AGE = 86_400
TEMPLATE_CUSTOM = "custom"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TEMPLATE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_HASH_HEX = re.compile(r"[0-9a-f]{64}")
_DENOM = re.compile(r"[a-z][a-z0-9]{2,15}")

# field -> (required, type, default)
_MILESTONE_FIELDS: dict[str, tuple[bool, type, Any]] = {
    "name": (True, str, None),
    "condition": (True, str, None),
    "amount": (True, int, None),
    "deadline": (True, int, None),
    "amount_expr": (False, str, ""),
    "hold": (False, int, 0),
    "period": (False, int, 0),
    "periods": (False, int, 1),
    "on_miss": (False, str, ON_MISS_REFUND),
    "penalty": (False, int, 0),
    "max_feed_age": (False, int, DEFAULT_MAX_FEED_AGE),
}
_TERMS_FIELDS: dict[str, tuple[bool, type, Any]] = {
    "title": (True, str, None),
    "denom": (True, str, None),
    "parties": (True, list, None),
    "milestones": (True, list, None),
    "template": (False, str, TEMPLATE_CUSTOM),
    "terms_hash": (False, str, ""),
    "check_every_blocks": (False, int, DEFAULT_CHECK_EVERY_BLOCKS),
    "bond": (False, int, 0),
}


def load_json(text: str, field: str, max_bytes: int = MAX_TERMS_BYTES) -> Any:
    """Parse JSON strictly: integers only (no floats, NaN or Infinity), no duplicate keys.

    Raises:
        InvalidMessageError: naming ``field``.
    """
    size = len(text.encode())
    if size > max_bytes:
        raise InvalidMessageError(f"{field} is {size} bytes; at most {max_bytes}", field=field)
    try:
        return json.loads(text, parse_float=_refuse_float, parse_constant=_refuse_float,
                          object_pairs_hook=_unique_keys)
    except _JsonRefused as error:
        raise InvalidMessageError(f"{field}: {error}", field=field) from None
    except ValueError as error:
        raise InvalidMessageError(f"{field} is not valid JSON: {error}", field=field) from None


def parse_terms(text: str, limits: ConditionLimits, field: str = "terms") -> Terms:
    """Parse and check a contract's terms (JSON text).

    Raises:
        InvalidMessageError: a field is missing, unknown, of the wrong type or out of bounds.
        ConditionInvalidError: a condition or amount expression is refused.
    """
    value = _fields(load_json(text, field), _TERMS_FIELDS, field)
    title, template, denom = value["title"], value["template"], value["denom"]
    if not 1 <= len(title) <= MAX_TITLE:
        raise InvalidMessageError(f"{field}.title must have 1 to {MAX_TITLE} characters",
                                  field=f"{field}.title")
    if _TEMPLATE.fullmatch(template) is None or len(template) > MAX_TEMPLATE:
        raise InvalidMessageError(f"{field}.template must match [a-z][a-z0-9_]{{0,63}}, got "
                                  f"{template!r}", field=f"{field}.template")
    if _DENOM.fullmatch(denom) is None:
        raise InvalidMessageError(f"{field}.denom must be 3 to 16 lowercase letters or digits "
                                  f"starting with a letter, got {denom!r}", field=f"{field}.denom")
    if value["terms_hash"] and _HASH_HEX.fullmatch(value["terms_hash"]) is None:
        raise InvalidMessageError(f"{field}.terms_hash must be empty or 64 lowercase hex "
                                  "characters (the SHA-256 of the legal text)",
                                  field=f"{field}.terms_hash")
    _int_in(value["check_every_blocks"], 1, 100_000, f"{field}.check_every_blocks")
    _int_in(value["bond"], 0, MAX_AMOUNT, f"{field}.bond")
    parties = _parse_parties(value["parties"], f"{field}.parties")
    raw_milestones = value["milestones"]
    if not 1 <= len(raw_milestones) <= MAX_MILESTONES:
        raise InvalidMessageError(f"{field}.milestones must list 1 to {MAX_MILESTONES} "
                                  f"milestones, got {len(raw_milestones)}",
                                  field=f"{field}.milestones")
    milestones: list[MilestoneTerms] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_milestones):
        where = f"{field}.milestones[{index}]"
        milestone = parse_milestone(raw, limits, where)
        if milestone.name in names:
            raise InvalidMessageError(f"{where}.name {milestone.name!r} is used twice",
                                      field=f"{where}.name")
        names.add(milestone.name)
        if milestone.on_miss == ON_MISS_PENALTY and value["bond"] == 0:
            raise InvalidMessageError(f"{where}.on_miss is penalty but the terms ask no bond "
                                      "from the payee", field=f"{where}.on_miss")
        milestones.append(milestone)
    terms = Terms(title, template, denom, parties, value["terms_hash"],
                  value["check_every_blocks"], value["bond"], tuple(milestones))
    if terms.payer_total > MAX_AMOUNT:
        raise InvalidMessageError(f"{field}: the milestones pay {terms.payer_total} in total; at "
                                  f"most {MAX_AMOUNT}", field=f"{field}.milestones")
    return terms


def parse_milestone(raw: Any, limits: ConditionLimits, field: str) -> MilestoneTerms:
    """Parse and check one milestone (a JSON object already loaded).

    Raises:
        InvalidMessageError, ConditionInvalidError: naming ``field`` and the member at fault.
    """
    value = _fields(raw, _MILESTONE_FIELDS, field)
    if _NAME.fullmatch(value["name"]) is None or len(value["name"]) > MAX_NAME:
        raise InvalidMessageError(f"{field}.name must be 1 to 64 letters, digits, '_', '.' or "
                                  f"'-', got {value['name']!r}", field=f"{field}.name")
    _int_in(value["amount"], 1, MAX_AMOUNT, f"{field}.amount")
    _int_in(value["deadline"], 1, MAX_TIME, f"{field}.deadline")
    _int_in(value["hold"], 0, MAX_TIME, f"{field}.hold")
    _int_in(value["period"], 0, MAX_TIME, f"{field}.period")
    _int_in(value["periods"], 1, MAX_PERIODS, f"{field}.periods")
    _int_in(value["penalty"], 0, MAX_AMOUNT, f"{field}.penalty")
    _int_in(value["max_feed_age"], 1, MAX_TIME, f"{field}.max_feed_age")
    if value["on_miss"] not in ON_MISS:
        raise InvalidMessageError(f"{field}.on_miss must be one of {', '.join(ON_MISS)}, got "
                                  f"{value['on_miss']!r}", field=f"{field}.on_miss")
    if value["period"] == 0 and value["periods"] != 1:
        raise InvalidMessageError(f"{field}.periods must be 1 when period is 0 (a one-off "
                                  "milestone)", field=f"{field}.periods")
    if value["period"] > 0 and value["hold"] != 0:
        raise InvalidMessageError(f"{field}.hold must be 0 for a recurring milestone (each "
                                  "period is judged once, at its end)", field=f"{field}.hold")
    if (value["penalty"] > 0) != (value["on_miss"] == ON_MISS_PENALTY):
        raise InvalidMessageError(f"{field}.penalty must be positive exactly when on_miss is "
                                  "penalty", field=f"{field}.penalty")
    last_end = value["deadline"] + (value["periods"] - 1) * value["period"]
    if last_end > MAX_TIME:
        raise InvalidMessageError(f"{field}: the last period ends after {MAX_TIME}",
                                  field=f"{field}.periods")
    if value["amount"] * value["periods"] > MAX_AMOUNT:
        raise InvalidMessageError(f"{field}: amount x periods is above {MAX_AMOUNT}",
                                  field=f"{field}.amount")
    condition = _check(value["condition"], f"{field}.condition", "bool", limits)
    feed_ids = set(condition.feed_ids)
    if value["amount_expr"]:
        expression = _check(value["amount_expr"], f"{field}.amount_expr", "int", limits)
        feed_ids.update(expression.feed_ids)
    return MilestoneTerms(value["name"], value["condition"], value["amount"],
                          value["amount_expr"], value["deadline"], value["hold"],
                          value["period"], value["periods"], value["on_miss"], value["penalty"],
                          value["max_feed_age"], tuple(sorted(feed_ids)))


# A condition is checked in check_tx and again in the block (validate_basic and the handler's
# check against the params), and parsing costs about 1.5 ms: keep the conditions that passed.
# check_condition is a pure function of (source, kind, limits); refusals are not kept, so their
# errors always name the field at hand.
_CHECKED: dict[tuple[str, str, ConditionLimits], CheckedCondition] = {}
_CHECKED_SIZE = 4_096


def _check(source: str, field: str, kind: str, limits: ConditionLimits) -> CheckedCondition:
    key = (source, kind, limits)
    checked = _CHECKED.get(key)
    if checked is None:
        checked = check_condition(source, field=field, kind=kind, limits=limits)
        if len(_CHECKED) >= _CHECKED_SIZE:
            del _CHECKED[next(iter(_CHECKED))]  # oldest first; only speed depends on it
        _CHECKED[key] = checked
    return checked


def milestone_to_json(milestone: MilestoneTerms) -> str:
    """Return the JSON form of a milestone (what an amendment carries)."""
    value = milestone.to_value()
    del value["feed_ids"]
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def terms_to_json(terms: Terms) -> str:
    """Return the JSON form of terms (what MsgCreateContract carries), keys sorted."""
    value = terms.to_value()
    for milestone in value["milestones"]:
        del milestone["feed_ids"]
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _parse_parties(raw: list[Any], field: str) -> tuple[Party, ...]:
    by_role: dict[str, Party] = {}
    addresses: set[str] = set()
    if not 2 <= len(raw) <= len(ROLES):
        raise InvalidMessageError(f"{field} must list 2 to {len(ROLES)} parties, got "
                                  f"{len(raw)}", field=field)
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        party = _fields(item, {"role": (True, str, None), "did": (True, str, None)}, where)
        role, did = party["role"], party["did"]
        if role not in ROLES:
            raise InvalidMessageError(f"{where}.role must be one of {', '.join(ROLES)}, got "
                                      f"{role!r}", field=f"{where}.role")
        if role in by_role:
            raise InvalidMessageError(f"{where}.role {role} is taken by another party",
                                      field=f"{where}.role")
        validate_did_field(did, f"{where}.did")
        address = address_of(did)
        if address is None:  # validate_did_field accepted it, so this cannot happen
            raise InvalidMessageError(f"{where}.did is not a did:city DID", field=f"{where}.did")
        if address in addresses:
            raise InvalidMessageError(f"{where}.did already holds another role in this contract",
                                      field=f"{where}.did")
        addresses.add(address)
        by_role[role] = Party(role, address)
    for role in REQUIRED_ROLES:
        if role not in by_role:
            raise InvalidMessageError(f"{field} must include a {role}", field=field)
    return tuple(by_role[role] for role in ROLES if role in by_role)


def _fields(raw: Any, spec: dict[str, tuple[bool, type, Any]], field: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidMessageError(f"{field} must be a JSON object", field=field)
    for name in sorted(raw):
        if name not in spec:
            raise InvalidMessageError(f"{field} has unknown field {name!r}",
                                      field=f"{field}.{name}")
    value: dict[str, Any] = {}
    for name, (required, kind, default) in spec.items():
        if name not in raw:
            if required:
                raise InvalidMessageError(f"{field} is missing {name!r}", field=f"{field}.{name}")
            value[name] = default
            continue
        item = raw[name]
        if type(item) is not kind:  # bool is not accepted where an int is expected
            raise InvalidMessageError(f"{field}.{name} must be {_KIND_NAMES[kind]}, got "
                                      f"{type(item).__name__}", field=f"{field}.{name}")
        value[name] = item
    return value


_KIND_NAMES = {str: "a string", int: "an integer", list: "a list"}


def _int_in(value: int, minimum: int, maximum: int, field: str) -> None:
    if not minimum <= value <= maximum:
        raise InvalidMessageError(f"{field} must be from {minimum} to {maximum}, got {value}",
                                  field=field)


class _JsonRefused(ValueError):
    pass


def _refuse_float(text: str) -> Any:
    raise _JsonRefused(f"numbers must be integers (amounts in minor units, times in seconds); "
                       f"got {text}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _JsonRefused(f"field {key!r} appears twice")
        value[key] = item
    return value
