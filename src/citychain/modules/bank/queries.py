"""Bank queries: plain-data answers read only through view.get / view.iterate.

``balance``, ``supply`` and ``params`` read by ``get`` only, so a client can verify them key by
key; ``balances`` and ``denoms`` scan ranges.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from citychain.core.crypto import address_from_did, did_from_address, is_address
from citychain.core.errors import InvalidQueryError
from citychain.core.queries import check_query_params
from citychain.core.state import ReadView
from citychain.modules.bank import state
from citychain.modules.bank.types import MAX_ESCROW_NAME, is_denom, is_escrow_name

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def query_balance(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``address`` (or ``did``) and ``denom``. Returns the amount (0 if none).

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("denom",), optional=("address", "did"))
    address = _account_param(params)
    denom = _denom_param(params, "denom")
    return {"address": address, "did": did_from_address(address), "denom": denom,
            "amount": state.get_balance(view, address, denom)}


def query_balances(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``address`` (or ``did``). Returns every non-zero balance, by denom key order.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=(), optional=("address", "did"))
    address = _account_param(params)
    return {"address": address, "did": did_from_address(address),
            "balances": [{"denom": denom, "amount": amount}
                         for denom, amount in state.iter_balances(view, address)]}


def query_supply(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``denom``. Returns the total supply, or None if the denom does not exist.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("denom",), optional=())
    denom = _denom_param(params, "denom")
    if not state.has_denom(view, denom):
        return None
    return {"denom": denom, "amount": state.get_supply(view, denom)}


def query_denoms(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: optional ``start_after`` (a denom) and ``limit`` (1..500, default 100).

    Returns denominations in key order (shorter ids first, then alphabetical) and
    ``next_start_after`` when more may follow.

    Raises:
        InvalidQueryError: naming the parameter that is unknown or malformed.
    """
    check_query_params(params, required=(), optional=("limit", "start_after"))
    start_after = _denom_param(params, "start_after") if "start_after" in params else None
    limit = params.get("limit", DEFAULT_LIMIT)
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise InvalidQueryError(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    found = list(islice(state.iter_denoms(view, start_after), limit + 1))
    more = len(found) > limit
    found = found[:limit]
    return {"denoms": [record.to_value() for record in found],
            "next_start_after": found[-1].denom if more else None}


def query_escrow(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``owner`` and ``escrow_id``. Returns the escrow's non-zero balances, by denom key
    order (empty when the escrow holds nothing).

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("escrow_id", "owner"), optional=())
    owner = _escrow_name_param(params, "owner")
    escrow_id = _escrow_name_param(params, "escrow_id")
    return {"owner": owner, "escrow_id": escrow_id,
            "balances": [{"denom": denom, "amount": amount}
                         for denom, amount in state.iter_escrow_balances(view, owner,
                                                                         escrow_id)]}


def query_params(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Return the module params.

    Raises:
        InvalidQueryError: a parameter was given (this query takes none).
    """
    check_query_params(params, required=(), optional=())
    return state.get_params(view).to_value()


def _account_param(params: dict[str, Any]) -> str:
    if ("did" in params) == ("address" in params):
        raise InvalidQueryError("give exactly one of 'address' or 'did'", field="address")
    if "did" in params:
        did = params["did"]
        address = address_from_did(did) if isinstance(did, str) else None
        if address is None:
            raise InvalidQueryError(f"did must be a did:city DID, got {did!r}", field="did")
        return address
    address = params["address"]
    if not isinstance(address, str) or not is_address(address):
        raise InvalidQueryError(f"address must be 40 lowercase hex characters, got {address!r}",
                                field="address")
    return address


def _denom_param(params: dict[str, Any], name: str) -> str:
    denom = params[name]
    if not isinstance(denom, str) or not is_denom(denom):
        raise InvalidQueryError(f"{name} must be a denom id ([a-z][a-z0-9]{{2,15}}), "
                                f"got {denom!r}", field=name)
    return denom


def _escrow_name_param(params: dict[str, Any], name: str) -> str:
    value = params[name]
    if not isinstance(value, str) or not is_escrow_name(value):
        raise InvalidQueryError(f"{name} must be 1 to {MAX_ESCROW_NAME} printable ASCII "
                                f"characters, got {value!r}", field=name)
    return value
