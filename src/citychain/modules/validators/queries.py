"""Validators queries: plain-data answers read only through view.get / view.iterate.

``validator``, ``proposal`` and ``params`` read by ``get`` only, so a client can verify them key
by key; ``validators`` and ``proposals`` scan ranges.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from citychain.core.crypto import PUBKEY_SIZE
from citychain.core.errors import InvalidQueryError
from citychain.core.queries import check_query_params
from citychain.core.state import ReadView
from citychain.modules.validators import state
from citychain.modules.validators.types import compute_total_power

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_ID = 2**63 - 1


def query_validators(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Return the whole set in pubkey order and its total power (takes no parameters).

    Raises:
        InvalidQueryError: a parameter was given.
    """
    check_query_params(params, required=(), optional=())
    validators = list(state.iter_validators(view))
    return {"validators": [validator.to_value() for validator in validators],
            "total_power": compute_total_power(validators)}


def query_validator(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``pubkey`` (64 hex characters). Returns the validator, or None if not in the set.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("pubkey",), optional=())
    pubkey = _pubkey_param(params["pubkey"])
    validator = state.get_validator(view, pubkey)
    return None if validator is None else validator.to_value()


def query_proposal(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``id``. Returns the proposal (any status), or None if there is none.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("id",), optional=())
    proposal = state.get_proposal(view, _id_param(params, "id"))
    return None if proposal is None else proposal.to_value()


def query_proposals(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: optional ``start_after`` (an id) and ``limit`` (1..500, default 100).

    Returns the open proposals in id order and ``next_start_after`` when more may follow.

    Raises:
        InvalidQueryError: naming the parameter that is unknown or malformed.
    """
    check_query_params(params, required=(), optional=("limit", "start_after"))
    start_after = _id_param(params, "start_after") if "start_after" in params else None
    limit = params.get("limit", DEFAULT_LIMIT)
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise InvalidQueryError(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    ids = list(islice(state.iter_open_ids(view, start_after), limit + 1))
    more = len(ids) > limit
    ids = ids[:limit]
    found = [state.get_proposal(view, proposal_id) for proposal_id in ids]
    return {"proposals": [p.to_value() for p in found if p is not None],
            "next_start_after": ids[-1] if more else None}


def query_params(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Return the module params.

    Raises:
        InvalidQueryError: a parameter was given (this query takes none).
    """
    check_query_params(params, required=(), optional=())
    return state.get_params(view).to_value()




def _pubkey_param(value: Any) -> bytes:
    if isinstance(value, str) and len(value) == 2 * PUBKEY_SIZE:
        try:
            if value == value.lower():
                return bytes.fromhex(value)
        except ValueError:
            pass
    raise InvalidQueryError(f"pubkey must be {2 * PUBKEY_SIZE} lowercase hex characters, "
                            f"got {value!r}", field="pubkey")


def _id_param(params: dict[str, Any], name: str) -> int:
    value = params[name]
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise InvalidQueryError(f"{name} must be a proposal id (an integer from 1 to {MAX_ID})",
                                field=name)
    return value
