"""Contracts genesis: validate and load the section, and export state so that init(export) == state.

Section (every field optional)::

    {"params": {"max_milestones": int, ...},
     "next_id": int,
     "contracts": [{"contract_id": int,
                    "terms": {...as the contract query shows them, parties by DID...},
                    "state": {"status", "creator" (address), "signed": [role], ...},
                    "milestones": [{"status", "met_since", "periods_settled", ...}],
                    "attestations": [{"milestone", "period", "role", "address", "height",
                                      "time", "evidence"}],
                    "amendments": [{"number", "milestone", "terms", "proposer" (address), ...}],
                    "audit": [{"height", "time", "type", "attributes": [[name, value]]}]}]}

Terms are re-checked exactly as MsgCreateContract checks them (with the section's params);
the end-block schedule and the party index are rebuilt from the records.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

from citychain.core import codec
from citychain.core.context import BlockContext
from citychain.core.errors import ChainError, DecodeError, InvalidGenesisError
from citychain.core.genesis_fields import check_fields, genesis_integer, genesis_list
from citychain.core.state import ReadView, StateView
from citychain.modules.contracts import state
from citychain.modules.contracts.params import Params
from citychain.modules.contracts.terms import parse_milestone, parse_terms
from citychain.modules.contracts.types import (
    AMENDMENT_APPLIED,
    AMENDMENT_EXPIRED,
    AMENDMENT_OPEN,
    MILESTONE_MISSED,
    MILESTONE_PENDING,
    MILESTONE_RELEASED,
    MILESTONE_SETTLED,
    NOT_SCHEDULED,
    STATUS_ACTIVE,
    STATUS_CANCELLED,
    STATUS_COMPLETED,
    STATUS_PROPOSED,
    Amendment,
    Attestation,
    AuditEntry,
    ContractState,
    MilestoneState,
    Schedule,
    Terms,
)

SECTION_PATH = "app_state.contracts"
_CONTRACT_FIELDS = ("amendments", "attestations", "audit", "contract_id", "milestones", "state",
                    "terms")
_STATUSES = (STATUS_PROPOSED, STATUS_ACTIVE, STATUS_COMPLETED, STATUS_CANCELLED)
_MILESTONE_STATUSES = (MILESTONE_PENDING, MILESTONE_RELEASED, MILESTONE_MISSED, MILESTONE_SETTLED)
_AMENDMENT_STATUSES = (AMENDMENT_OPEN, AMENDMENT_APPLIED, AMENDMENT_EXPIRED)
_ADDRESS = re.compile(r"[0-9a-f]{40}")
_Loaded = tuple[Terms, ContractState, Schedule, list[MilestoneState],
                list[tuple[int, int, Attestation]], list[Amendment], list[AuditEntry]]


def init_genesis(view: StateView, block_ctx: BlockContext, section: Any) -> None:
    """Validate the contracts section and write its records. Every check runs before the first
    write.

    Raises:
        InvalidGenesisError: naming the path of the first invalid field.
    """
    del block_ctx
    if not isinstance(section, dict):
        raise InvalidGenesisError(f"{SECTION_PATH} must be a map", field=SECTION_PATH)
    check_fields(section, ("contracts", "next_id", "params"), SECTION_PATH)
    params = Params.from_genesis(section.get("params", {}), f"{SECTION_PATH}.params")
    loaded: dict[int, _Loaded] = {}
    for index, raw in enumerate(genesis_list(section, "contracts", SECTION_PATH)):
        path = f"{SECTION_PATH}.contracts[{index}]"
        if not isinstance(raw, dict):
            raise InvalidGenesisError(f"{path} must be a map", field=path)
        check_fields(raw, _CONTRACT_FIELDS, path)
        contract_id = genesis_integer(raw.get("contract_id"), f"{path}.contract_id", 1,
                                      2**63 - 1)
        if contract_id in loaded:
            raise InvalidGenesisError(f"{path} repeats contract {contract_id}",
                                      field=f"{path}.contract_id")
        loaded[contract_id] = _parse_contract(raw, contract_id, params, path)
    next_id = genesis_integer(section.get("next_id", max(loaded, default=0) + 1),
                              f"{SECTION_PATH}.next_id", 1, 2**63 - 1)
    if loaded and next_id <= max(loaded):
        raise InvalidGenesisError(f"{SECTION_PATH}.next_id must be above every contract id",
                                  field=f"{SECTION_PATH}.next_id")

    state.set_params(view, params)
    state.set_next_id(view, next_id)
    for contract_id in sorted(loaded):
        terms, record, schedule, milestones, attestations, amendments, audit = (
            loaded[contract_id])
        state.set_terms(view, contract_id, terms)
        state.set_state(view, record)
        if schedule != NOT_SCHEDULED:
            state.set_schedule(view, contract_id, schedule)
        for index, milestone in enumerate(milestones):
            state.set_milestone(view, contract_id, index, milestone)
        for index, period, attestation in attestations:
            state.set_attestation(view, contract_id, index, period, attestation)
        for amendment in amendments:
            state.set_amendment(view, contract_id, amendment)
        for entry in audit:
            state.set_audit_entry(view, contract_id, entry)
        for party in terms.parties:
            state.set_party_index(view, party.address, contract_id)
        if schedule.next_check_height:
            state.set_due(view, schedule.next_check_height, contract_id)


def export_genesis(view: ReadView) -> dict[str, Any]:
    """Return the contracts section describing the current state (in id order)."""
    contracts = []
    for contract_id in state.iter_contract_ids(view):
        record = state.get_state(view, contract_id)
        terms = state.get_terms(view, contract_id)
        if record is None or terms is None:
            continue
        milestones = [state.get_milestone(view, contract_id, index)
                      for index in range(len(terms.milestones))]
        attestations = []
        for index, milestone in enumerate(milestones):
            settled = 0 if milestone is None else milestone.periods_settled
            for period in range(settled + 1):
                for item in state.get_attestations(view, contract_id, index, period):
                    attestations.append({"milestone": index, "period": period,
                                         "role": item.role, **codec.decode(item.to_bytes())})
        amendments = [codec.decode(amendment.to_bytes())
                      for number in range(1, record.amendments + 1)
                      if (amendment := state.get_amendment(view, contract_id, number))
                      is not None]
        contracts.append({
            "contract_id": contract_id,
            "terms": terms.to_value(),
            "state": {**record.to_value(),
                      **state.get_schedule(view, contract_id).to_value()},
            "milestones": [None if item is None else item.to_value() for item in milestones],
            "attestations": attestations,
            "amendments": amendments,
            "audit": [codec.decode(entry.to_bytes())
                      for entry in state.iter_audit(view, contract_id)],
        })
    return {"params": state.get_params(view).to_value(), "next_id": state.get_next_id(view),
            "contracts": contracts}


def _parse_contract(raw: dict[str, Any], contract_id: int, params: Params,
                    path: str) -> _Loaded:
    terms_value = raw.get("terms")
    if not isinstance(terms_value, dict):
        raise InvalidGenesisError(f"{path}.terms must be a map", field=f"{path}.terms")
    plain = {name: value for name, value in terms_value.items()}
    milestones_value = plain.get("milestones")
    if isinstance(milestones_value, list):
        plain["milestones"] = [{k: v for k, v in item.items() if k != "feed_ids"}
                               if isinstance(item, dict) else item for item in milestones_value]
    try:
        terms = parse_terms(json.dumps(plain), params.condition_limits(), f"{path}.terms")
    except ChainError as error:
        raise InvalidGenesisError(str(error), field=error.field or f"{path}.terms") from None
    record = _decode(lambda: ContractState.from_bytes(contract_id,
                                                      codec.encode(raw.get("state"))),
                     f"{path}.state")
    state_value = raw.get("state")
    schedule = Schedule(*(
        genesis_integer(state_value.get(name, 0) if isinstance(state_value, dict) else 0,
                        f"{path}.state.{name}", 0, 2**63 - 1)
        for name in ("next_check_height", "last_check_height", "last_check_time")))
    milestone_values = genesis_list(raw, "milestones", path)
    if len(milestone_values) != len(terms.milestones):
        raise InvalidGenesisError(f"{path}.milestones must hold one state per milestone of the "
                                  "terms", field=f"{path}.milestones")
    milestones = [_decode(lambda item=item: MilestoneState.from_bytes(codec.encode(item)),
                          f"{path}.milestones[{index}]")
                  for index, item in enumerate(milestone_values)]
    attestations = []
    for index, item in enumerate(genesis_list(raw, "attestations", path)):
        where = f"{path}.attestations[{index}]"
        if not isinstance(item, dict):
            raise InvalidGenesisError(f"{where} must be a map", field=where)
        milestone = genesis_integer(item.get("milestone"), f"{where}.milestone", 0,
                                    len(terms.milestones) - 1)
        period = genesis_integer(item.get("period"), f"{where}.period", 0, 2**32 - 1)
        body = {k: v for k, v in item.items() if k not in ("milestone", "period", "role")}
        role = item.get("role")
        if not isinstance(role, str) or role not in terms.roles_of(str(body.get("address"))):
            raise InvalidGenesisError(f"{where}.role must be the role of its address in the "
                                      "terms", field=f"{where}.role")
        attestations.append((milestone, period, _decode(
            lambda body=body, role=role: Attestation.from_bytes(role, codec.encode(body)),
            where)))
    amendments = [_decode(lambda item=item: Amendment.from_bytes(codec.encode(item)),
                          f"{path}.amendments[{index}]")
                  for index, item in enumerate(genesis_list(raw, "amendments", path))]
    audit = [_decode(lambda item=item, seq=seq: AuditEntry.from_bytes(seq, codec.encode(item)),
                     f"{path}.audit[{seq}]")
             for seq, item in enumerate(genesis_list(raw, "audit", path))]
    _check_records(terms, record, milestones, attestations, amendments, audit, params, path)
    if record.audit_count != len(audit):
        raise InvalidGenesisError(f"{path}.state.audit_count must equal the audit entries",
                                  field=f"{path}.state.audit_count")
    return terms, record, schedule, milestones, attestations, amendments, audit


def _check_records(terms: Terms, record: ContractState, milestones: list[MilestoneState],
                   attestations: list[tuple[int, int, Attestation]], amendments: list[Amendment],
                   audit: list[AuditEntry], params: Params, path: str) -> None:
    """Refuse records whose fields do not have their declared types and vocabularies, so that
    nothing malformed reaches a store key or end-block (where it would stop the chain).

    Raises:
        InvalidGenesisError: naming the field.
    """
    _check_shape(record, f"{path}.state")
    _check_choice(record.status, _STATUSES, f"{path}.state.status")
    if _ADDRESS.fullmatch(record.creator) is None:
        raise InvalidGenesisError(f"{path}.state.creator must be an address",
                                  field=f"{path}.state.creator")
    roles = tuple(party.role for party in terms.parties)
    for role in record.signed:
        _check_choice(role, roles, f"{path}.state.signed")
    for index, milestone in enumerate(milestones):
        _check_shape(milestone, f"{path}.milestones[{index}]")
        _check_choice(milestone.status, _MILESTONE_STATUSES,
                      f"{path}.milestones[{index}].status")
    for index, (_, _, attestation) in enumerate(attestations):
        _check_shape(attestation, f"{path}.attestations[{index}]")
    numbers: set[int] = set()
    for index, amendment in enumerate(amendments):
        where = f"{path}.amendments[{index}]"
        _check_shape(amendment, where)
        genesis_integer(amendment.number, f"{where}.number", 1, record.amendments)
        if amendment.number in numbers:
            raise InvalidGenesisError(f"{where}.number repeats amendment {amendment.number}",
                                      field=f"{where}.number")
        numbers.add(amendment.number)
        genesis_integer(amendment.milestone, f"{where}.milestone", 0, len(terms.milestones) - 1)
        if not terms.roles_of(amendment.proposer):
            raise InvalidGenesisError(f"{where}.proposer must be a party's address",
                                      field=f"{where}.proposer")
        _check_choice(amendment.status, _AMENDMENT_STATUSES, f"{where}.status")
        for role in amendment.approvals:
            _check_choice(role, roles, f"{where}.approvals")
        value = amendment.terms.to_value()
        del value["feed_ids"]
        try:
            parsed = parse_milestone(value, params.condition_limits(), f"{where}.terms")
        except ChainError as error:
            raise InvalidGenesisError(str(error), field=error.field or f"{where}.terms") from None
        if parsed != amendment.terms:
            raise InvalidGenesisError(f"{where}.terms.feed_ids must be the feeds the condition "
                                      "reads", field=f"{where}.terms.feed_ids")
    for index, entry in enumerate(audit):
        _check_shape(entry, f"{path}.audit[{index}]")


def _check_shape(record: Any, path: str) -> None:
    for item in fields(record):
        value = getattr(record, item.name)
        where = f"{path}.{item.name}"
        if item.type == "int":
            genesis_integer(value, where, 0, 2**63 - 1)
        elif item.type == "str":
            if not isinstance(value, str):
                raise InvalidGenesisError(f"{where} must be a string", field=where)
        elif item.type == "tuple[str, ...]":
            if not all(isinstance(part, str) for part in value):
                raise InvalidGenesisError(f"{where} must be a list of strings", field=where)
        elif item.type == "tuple[tuple[str, str], ...]" and not all(
                isinstance(name, str) and isinstance(text, str) for name, text in value):
            raise InvalidGenesisError(f"{where} must be a list of [name, value] strings",
                                      field=where)


def _check_choice(value: str, choices: tuple[str, ...], path: str) -> None:
    if value not in choices:
        raise InvalidGenesisError(f"{path} must be one of {', '.join(choices)}, got {value!r}",
                                  field=path)


def _decode(build: Any, path: str) -> Any:
    try:
        return build()
    except (DecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidGenesisError(f"{path} is malformed: {error}", field=path) from None
