"""Identity queries: plain-data answers read only through view.get / view.iterate.

``account``, ``key_history``, ``key_at`` and ``params`` read by ``get`` only, so a client can
verify them key by key; ``role_holders`` scans a range.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from citychain.core.crypto import address_from_did, did_from_address, is_address
from citychain.core.errors import InvalidQueryError
from citychain.core.queries import check_query_params
from citychain.core.state import ReadView
from citychain.modules.identity import state
from citychain.modules.identity.types import ROLES, Account

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def query_account(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``did`` or ``address``. Returns the account, or None if it does not exist.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=(), optional=("address", "did"))
    address = account_param(params)
    account = state.get_account(view, address)
    if account is None:
        return None
    return account_value(account, state.get_sequence(view, address))


def query_key_history(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``did`` or ``address``, optional ``start`` (entry index) and ``limit``.

    Returns the account's keys in force from each height (entry 0 is the initial key), and
    ``next_start`` when more entries follow; None if the account does not exist.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=(), optional=("address", "did", "limit", "start"))
    address = account_param(params)
    start = int_param(params, "start", default=0, minimum=0, maximum=2**32 - 1)
    limit = limit_param(params)
    account = state.get_account(view, address)
    if account is None:
        return None
    stop = min(account.key_count, start + limit)
    entries = []
    for index in range(start, stop):
        record = state.get_key_record(view, address, index)
        if record is not None:
            entries.append({"index": index, "height": record.height,
                            "pubkey": record.pubkey.hex()})
    return {"did": account.did, "address": address, "keys": entries,
            "next_start": stop if stop < account.key_count else None}


def query_key_at(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``did`` or ``address``, and ``at_height``.

    Returns the key in force at block ``at_height`` (the key history entry with the greatest
    height not above it) as ``{did, address, index, height, pubkey}``; None if the account does
    not exist or ``at_height`` comes before its first key. A signature made when the chain
    stood at ``at_height`` is checked against this key, even after later rotations.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("at_height",), optional=("address", "did"))
    address = account_param(params)
    at_height = int_param(params, "at_height", default=0, minimum=0, maximum=2**63 - 1)
    account = state.get_account(view, address)
    if account is None:
        return None
    found = state.get_key_record_at(view, address, account.key_count, at_height)
    if found is None:
        return None
    index, record = found
    return {"did": account.did, "address": address, "index": index, "height": record.height,
            "pubkey": record.pubkey.hex()}


def query_role_holders(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``role``, optional ``start_after`` (address or DID) and ``limit``.

    Returns the holders' DIDs in address order and ``next_start_after`` (an address) when more
    may follow.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("role",), optional=("limit", "start_after"))
    role = params["role"]
    if role not in ROLES:
        raise InvalidQueryError(f"role must be one of {', '.join(ROLES)}", field="role")
    start_after = None
    if "start_after" in params:
        start_after = address_reference(params["start_after"], "start_after")
    limit = limit_param(params)
    holders = list(islice(state.iter_role_holders(view, role, start_after), limit + 1))
    more = len(holders) > limit
    holders = holders[:limit]
    return {"role": role, "holders": [did_from_address(a) for a in holders],
            "next_start_after": holders[-1] if more else None}


def query_params(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Return the module params.

    Raises:
        InvalidQueryError: a parameter was given (this query takes none).
    """
    check_query_params(params, required=(), optional=())
    return state.get_params(view).to_value()


def account_value(account: Account, sequence: int) -> dict[str, Any]:
    """Return an account as plain data (the ``account`` query's answer)."""
    value: dict[str, Any] = {
        "did": account.did,
        "address": account.address,
        "pubkey": account.pubkey.hex(),
        "sequence": sequence,
        "roles": list(account.roles),
        "status": account.status,
        "created_height": account.created_height,
        "key_count": account.key_count,
        "suspension": None,
    }
    if account.suspension is not None:
        value["suspension"] = {"reason": account.suspension.reason,
                               "height": account.suspension.height,
                               "by": did_from_address(account.suspension.by)}
    return value




def address_reference(value: Any, field: str) -> str:
    """Return the address named by ``value`` (an address or a did:city DID).

    Raises:
        InvalidQueryError: ``value`` is neither.
    """
    if isinstance(value, str):
        if is_address(value):
            return value
        address = address_from_did(value)
        if address is not None:
            return address
    raise InvalidQueryError(f"{field} must be an address (40 lowercase hex characters) or a "
                            f"did:city DID, got {value!r}", field=field)


def account_param(params: dict[str, Any]) -> str:
    """Return the address named by exactly one of the ``did`` / ``address`` parameters.

    Raises:
        InvalidQueryError: neither or both given, or malformed.
    """
    if ("did" in params) == ("address" in params):
        raise InvalidQueryError("give exactly one of 'did' or 'address'", field="did")
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


def int_param(params: dict[str, Any], name: str, *, default: int, minimum: int,
              maximum: int) -> int:
    """Return an optional integer parameter within [minimum, maximum].

    Raises:
        InvalidQueryError: not an integer or out of range.
    """
    value = params.get(name, default)
    if type(value) is not int or not minimum <= value <= maximum:
        raise InvalidQueryError(f"{name} must be an integer from {minimum} to {maximum}",
                                field=name)
    return value


def limit_param(params: dict[str, Any]) -> int:
    """Return the ``limit`` parameter (default 100, at most 500).

    Raises:
        InvalidQueryError: not an integer from 1 to 500.
    """
    return int_param(params, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
