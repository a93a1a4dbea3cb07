"""Contracts queries: plain-data answers read only through view.get / view.iterate.

``contract`` and ``params`` read by ``get`` only, so a client can verify them key by key;
``inspect`` (it reads the milestones' attestations), ``audit`` and ``by_party`` scan ranges.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from citychain.core.errors import InvalidQueryError
from citychain.core.queries import check_query_params
from citychain.core.state import ReadView
from citychain.modules.bank import api as bank
from citychain.modules.contracts import state
from citychain.modules.contracts.evaluation import check_milestone
from citychain.modules.contracts.handlers import ESCROW_OWNER
from citychain.modules.contracts.types import (
    MAX_TIME,
    MILESTONE_CLOSED,
    NEW_MILESTONE,
    ContractState,
    Terms,
    bond_escrow_id,
    escrow_id,
)
from citychain.modules.identity import api as identity

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_MAX_ID = 2**63 - 1


def query_contract(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``contract_id``. Returns the terms, status, escrow balances, every milestone's
    state and the newest amendment, or None.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("contract_id",), optional=())
    contract_id = _int_param(params, "contract_id", 0, 1, _MAX_ID)
    loaded = _load(view, contract_id)
    if loaded is None:
        return None
    contract, terms = loaded
    milestones = []
    for index, milestone in enumerate(terms.milestones):
        record = state.get_milestone(view, contract_id, index) or NEW_MILESTONE
        milestones.append({"index": index, "terms": milestone.to_value(),
                           "state": record.to_value()})
    amendment = state.get_amendment(view, contract_id, contract.amendments)
    return {
        "contract_id": contract_id,
        **contract.to_value(),
        **state.get_schedule(view, contract_id).to_value(),
        "creator": identity.did_of(contract.creator),
        "terms": terms.to_value(),
        "payer_total": terms.payer_total,
        "escrow": bank.get_escrow_balance(view, ESCROW_OWNER, escrow_id(contract_id),
                                          terms.denom),
        "bond": bank.get_escrow_balance(view, ESCROW_OWNER, bond_escrow_id(contract_id),
                                        terms.denom),
        "milestones": milestones,
        "amendment": None if amendment is None else amendment.to_value(),
    }


def query_inspect(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``contract_id``, optional ``at_height`` and ``at_time`` (UNIX s; default: the
    contract's last end-block check, or its creation). Judges every open milestone as end-block
    would at that height and time, over the latest committed feed values: the outcome, why, the
    feed values (with their heights) and attestations used, the hold time left and the payout.
    Returns None when there is no such contract.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("contract_id",), optional=("at_height", "at_time"))
    contract_id = _int_param(params, "contract_id", 0, 1, _MAX_ID)
    loaded = _load(view, contract_id)
    if loaded is None:
        return None
    contract, terms = loaded
    checked = state.get_schedule(view, contract_id)
    height = _int_param(params, "at_height",
                        checked.last_check_height or contract.created_height, 0, _MAX_ID)
    time = _int_param(params, "at_time", checked.last_check_time or contract.created_time, 0,
                      MAX_TIME)
    milestones = []
    for index, milestone in enumerate(terms.milestones):
        record = state.get_milestone(view, contract_id, index) or NEW_MILESTONE
        entry: dict[str, Any] = {"index": index, "name": milestone.name,
                                 "status": record.status, "condition": milestone.condition,
                                 "amount_expr": milestone.amount_expr,
                                 "deadline": milestone.deadline}
        if record.status not in MILESTONE_CLOSED:
            check = check_milestone(view, contract, index, milestone, record, height, time)
            met_since = record.met_since or (time if check.met else 0)
            entry.update({
                "period": check.period,
                "period_end": milestone.period_end(check.period),
                "outcome": check.outcome,
                "met": check.met,
                "why": check.detail,
                "payout": check.payout,
                "hold": milestone.hold,
                "met_since": record.met_since,
                "hold_left": max(0, milestone.hold - (time - met_since)) if check.met
                else milestone.hold,
                "feeds": [use.to_value() for use in check.feeds],
                "attestations": [item.to_value() for item in check.attestations],
            })
        entry["recorded"] = {"outcome": record.outcome, "detail": record.detail,
                             "height": record.outcome_height}
        milestones.append(entry)
    return {"contract_id": contract_id, "status": contract.status, "height": height,
            "time": time, "milestones": milestones}


def query_audit(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``contract_id``, optional ``after`` (a sequence number) and ``limit``. Returns
    the contract's audit trail in order and ``next_after`` when more follows, or None.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("contract_id",), optional=("after", "limit"))
    contract_id = _int_param(params, "contract_id", 0, 1, _MAX_ID)
    after = _int_param(params, "after", -1, -1, 2**32 - 1)
    limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    if state.get_state(view, contract_id) is None:
        return None
    found = list(islice(state.iter_audit(view, contract_id, after), limit + 1))
    more = len(found) > limit
    found = found[:limit]
    return {"contract_id": contract_id, "entries": [entry.to_value() for entry in found],
            "next_after": found[-1].seq if more else None}


def query_by_party(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``party`` (DID or address), optional ``start_after`` (a contract id), ``limit``.
    Returns the ids and statuses of the contracts the party is in, in id order.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("party",), optional=("limit", "start_after"))
    party = params["party"]
    address = identity.address_of(party) if isinstance(party, str) else None
    if address is None:
        raise InvalidQueryError(f"party must be an address (40 lowercase hex characters) or a "
                                f"did:city DID, got {party!r}", field="party")
    start_after = _int_param(params, "start_after", 0, 0, _MAX_ID)
    limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    ids = list(islice(state.iter_party_contract_ids(view, address, start_after), limit + 1))
    more = len(ids) > limit
    ids = ids[:limit]
    contracts = []
    for contract_id in ids:
        loaded = _load(view, contract_id)
        if loaded is not None:
            contract, terms = loaded
            contracts.append({"contract_id": contract_id, "status": contract.status,
                              "title": terms.title, "roles": list(terms.roles_of(address))})
    return {"party": identity.did_of(address), "contracts": contracts,
            "next_start_after": ids[-1] if more else None}


def query_params(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Return the module params.

    Raises:
        InvalidQueryError: a parameter was given (this query takes none).
    """
    check_query_params(params, required=(), optional=())
    return state.get_params(view).to_value()


def _load(view: ReadView, contract_id: int) -> tuple[ContractState, Terms] | None:
    contract = state.get_state(view, contract_id)
    terms = state.get_terms(view, contract_id)
    return None if contract is None or terms is None else (contract, terms)


def _int_param(params: dict[str, Any], name: str, default: int, minimum: int,
               maximum: int) -> int:
    value = params.get(name, default)
    if type(value) is not int or not minimum <= value <= maximum:
        raise InvalidQueryError(f"{name} must be an integer from {minimum} to {maximum}",
                                field=name)
    return value
