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
from typing import Any

from citychain.core import codec
from citychain.core.context import BlockContext
from citychain.core.errors import ChainError, DecodeError, InvalidGenesisError
from citychain.core.genesis_fields import check_fields, genesis_integer, genesis_list
from citychain.core.state import ReadView, StateView
from citychain.modules.contracts import state
from citychain.modules.contracts.params import Params
from citychain.modules.contracts.terms import parse_terms
from citychain.modules.contracts.types import (
    Amendment,
    Attestation,
    AuditEntry,
    ContractState,
    MilestoneState,
    Terms,
)

SECTION_PATH = "app_state.contracts"
_CONTRACT_FIELDS = ("amendments", "attestations", "audit", "contract_id", "milestones", "state",
                    "terms")
_Loaded = tuple[Terms, ContractState, list[MilestoneState],
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
        terms, record, milestones, attestations, amendments, audit = loaded[contract_id]
        state.set_terms(view, contract_id, terms)
        state.set_state(view, record)
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
        if record.next_check_height:
            state.set_due(view, record.next_check_height, contract_id)


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
                for item in state.iter_attestations(view, contract_id, index, period):
                    attestations.append({"milestone": index, "period": period,
                                         "role": item.role, **codec.decode(item.to_bytes())})
        amendments = [codec.decode(amendment.to_bytes())
                      for number in range(1, record.amendments + 1)
                      if (amendment := state.get_amendment(view, contract_id, number))
                      is not None]
        contracts.append({
            "contract_id": contract_id,
            "terms": terms.to_value(),
            "state": record.to_value(),
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
    if record.audit_count != len(audit):
        raise InvalidGenesisError(f"{path}.state.audit_count must equal the audit entries",
                                  field=f"{path}.state.audit_count")
    return terms, record, milestones, attestations, amendments, audit


def _decode(build: Any, path: str) -> Any:
    try:
        return build()
    except (DecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidGenesisError(f"{path} is malformed: {error}", field=path) from None
