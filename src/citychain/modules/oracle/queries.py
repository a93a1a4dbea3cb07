"""Oracle queries: plain-data answers read only through view.get / view.iterate.

``device``, ``anchor``, ``feed``, ``feed_value`` and ``params`` read by ``get`` only, so a
client can verify them key by key; ``devices``, ``device_records``, ``anchors_by_device`` and
``feed_history`` scan ranges.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any

from citychain.core.errors import InvalidQueryError
from citychain.core.queries import check_query_params
from citychain.core.state import ReadView
from citychain.modules.identity import api as identity
from citychain.modules.oracle import state
from citychain.modules.oracle.types import (
    MAX_INT,
    Anchor,
    Device,
    Feed,
    FeedValue,
    is_feed_id,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_RECORDS_LIMIT = 1000
"""Page bound of ``device_records``: 1 000 records encode to about 0.5 MB."""
_HASH_HEX = re.compile(r"[0-9a-f]{64}")
_CURSOR = re.compile(r"(0|[1-9][0-9]{0,18}):([0-9a-f]{64})")


def query_device(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``did`` or ``address``. Returns the device with its identity's current key and
    status (``active``, ``suspended``, or ``not_device`` when the role was revoked), or None.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=(), optional=("address", "did"))
    address = _account_param(params, "did", "address")
    device = state.get_device(view, address)
    if device is None:
        return None
    return device_value(view, device)


def query_devices(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``owner`` (DID or address), optional ``start_after`` (address or DID), ``limit``.

    Returns the DIDs of the devices the operator registered, in address order, and
    ``next_start_after`` (an address) when more may follow.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    owner, found, more = _owner_devices_page(view, params, MAX_LIMIT)
    return {"owner": identity.did_of(owner), "devices": [identity.did_of(a) for a in found],
            "next_start_after": found[-1] if more else None}


def query_device_records(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``owner`` (DID or address), optional ``start_after`` (address or DID), ``limit``
    (1 to 1 000, default 100).

    Returns the full records (as ``device`` answers them) of the devices the operator
    registered, in address order, and ``next_start_after`` (an address) when more may follow:
    a gateway reads all its devices in a few pages instead of one query per device.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    owner, found, more = _owner_devices_page(view, params, MAX_RECORDS_LIMIT)
    records = []
    for address in found:
        device = state.get_device(view, address)   # set_device writes both keys together
        if device is not None:
            records.append(device_value(view, device))
    return {"owner": identity.did_of(owner), "records": records,
            "next_start_after": found[-1] if more else None}


def _owner_devices_page(view: ReadView, params: dict[str, Any],
                        max_limit: int) -> tuple[str, list[str], bool]:
    """The ``devices`` and ``device_records`` params checked: (owner address, up to ``limit``
    device addresses after ``start_after`` in address order, whether more may follow)."""
    check_query_params(params, required=("owner",), optional=("limit", "start_after"))
    owner = _reference(params["owner"], "owner")
    start_after = (_reference(params["start_after"], "start_after")
                   if "start_after" in params else None)
    limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, max_limit)
    found = list(islice(state.iter_owner_devices(view, owner, start_after), limit + 1))
    return owner, found[:limit], len(found) > limit


def query_anchor(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``batch_id`` or ``merkle_root`` (64 hex); ``devices`` 1 (default) to list the
    batch's device DIDs, 0 to leave them out (a gateway confirming its anchors needs only the
    height, and a batch lists up to 1,000 devices). Returns the anchored batch, or None.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=(), optional=("batch_id", "devices", "merkle_root"))
    with_devices = _int_param(params, "devices", 1, 0, 1)
    if ("batch_id" in params) == ("merkle_root" in params):
        raise InvalidQueryError("give exactly one of 'batch_id' or 'merkle_root'",
                                field="batch_id")
    if "batch_id" in params:
        batch_id: bytes | None = _hash_param(params, "batch_id")
    else:
        batch_id = state.get_batch_id_by_root(view, _hash_param(params, "merkle_root"))
    if batch_id is None:
        return None
    anchor = state.get_anchor(view, batch_id)
    if anchor is None:
        return None
    return anchor_value(anchor, with_devices=bool(with_devices))


def query_anchors_by_device(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``did`` or ``address``; ``from_ms``; optional ``to_ms`` (default ``from_ms``),
    ``start_after`` (cursor ``first_ms:batch_id``) and ``limit``.

    Returns the batches listing the device whose readings overlap [from_ms, to_ms] (so
    ``from_ms`` alone asks "which batches cover the device at that time"), ordered by first
    reading then id, with ``next_start_after`` when more may follow. The scan starts
    ``params.max_batch_span_ms`` before ``from_ms``: no covering batch can start earlier.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("from_ms",),
                       optional=("address", "did", "limit", "start_after", "to_ms"))
    address = _account_param(params, "did", "address")
    from_ms = _int_param(params, "from_ms", 0, 0, MAX_INT)
    to_ms = _int_param(params, "to_ms", from_ms, from_ms, MAX_INT)
    limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    cursor: tuple[int, bytes] | None = None
    if "start_after" in params:
        raw = params["start_after"]
        match = _CURSOR.fullmatch(raw) if isinstance(raw, str) else None
        if match is None:
            raise InvalidQueryError("start_after must be FIRST_MS:BATCH_ID (as returned in "
                                    "next_start_after)", field="start_after")
        cursor = (int(match[1]), bytes.fromhex(match[2]))
    span = state.get_params(view).max_batch_span_ms
    found: list[dict[str, Any]] = []
    more = False
    for first, batch_id, last in state.iter_device_anchors(view, address,
                                                           max(0, from_ms - span), to_ms):
        if last < from_ms or (cursor is not None and (first, batch_id) <= cursor):
            continue
        if len(found) == limit:
            more = True
            break
        found.append({"batch_id": batch_id.hex(), "first_reading_ms": first,
                      "last_reading_ms": last})
    last_entry = found[-1] if found else None
    return {"did": identity.did_of(address), "from_ms": from_ms, "to_ms": to_ms,
            "anchors": found,
            "next_start_after": (f"{last_entry['first_reading_ms']}:{last_entry['batch_id']}"
                                 if more and last_entry is not None else None)}


def query_feed(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``feed_id``. Returns the feed's declaration, or None.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("feed_id",), optional=())
    feed = state.get_feed(view, _feed_param(params))
    return None if feed is None else feed_declaration_value(feed)


def query_feed_value(view: ReadView, params: dict[str, Any]) -> dict[str, Any] | None:
    """Params: ``feed_id``, optional ``window_end_ms``. Returns the latest value (or the one
    whose window ends at ``window_end_ms``), or None.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("feed_id",), optional=("window_end_ms",))
    feed_id = _feed_param(params)
    if "window_end_ms" in params:
        end = _int_param(params, "window_end_ms", 0, 0, MAX_INT)
        value = state.get_value_at(view, feed_id, end)
    else:
        value = state.get_latest_value(view, feed_id)
    return None if value is None else feed_value_value(value)


def query_feed_history(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Params: ``feed_id``, optional ``start_after`` (a window end in ms) and ``limit``.

    Returns values by window end and ``next_start_after`` when more may follow.

    Raises:
        InvalidQueryError: naming the parameter that is missing, unknown or malformed.
    """
    check_query_params(params, required=("feed_id",), optional=("limit", "start_after"))
    feed_id = _feed_param(params)
    start_after = (_int_param(params, "start_after", 0, 0, MAX_INT)
                   if "start_after" in params else None)
    limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    found = list(islice(state.iter_values(view, feed_id, start_after), limit + 1))
    more = len(found) > limit
    found = found[:limit]
    return {"feed_id": feed_id, "values": [feed_value_value(v) for v in found],
            "next_start_after": found[-1].window_end_ms if more else None}


def query_params(view: ReadView, params: dict[str, Any]) -> dict[str, Any]:
    """Return the module params.

    Raises:
        InvalidQueryError: a parameter was given (this query takes none).
    """
    check_query_params(params, required=(), optional=())
    return state.get_params(view).to_value()


# ------------------------------------------------------------------------------------ answers

def device_value(view: ReadView, device: Device) -> dict[str, Any]:
    """Return a device as plain data, with its identity's current key and status."""
    account = identity.get_account(view, device.address)
    if account is None:
        status, pubkey = "no_identity", ""
    else:
        pubkey = account.pubkey.hex()
        status = ("suspended" if account.suspended
                  else "active" if identity.ROLE_DEVICE in account.roles else "not_device")
    return {
        "did": identity.did_of(device.address),
        "owner": identity.did_of(device.owner),
        "device_type": device.device_type,
        "location": device.location.to_value(),
        "streams": [stream.to_value() for stream in device.streams],
        "registered_height": device.registered_height,
        "updated_height": device.updated_height,
        "status": device.status,
        "decommissioned_height": device.decommissioned_height,
        "identity_status": status,
        "pubkey": pubkey,
    }


def anchor_value(anchor: Anchor, *, with_devices: bool = True) -> dict[str, Any]:
    """Return an anchor as plain data (DIDs and hex); without the device list unless
    ``with_devices`` (``device_count`` is always there)."""
    value = {
        "batch_id": anchor.batch_id.hex(),
        "merkle_root": anchor.merkle_root.hex(),
        "device_count": len(anchor.devices),
        "first_reading_ms": anchor.first_reading_ms,
        "last_reading_ms": anchor.last_reading_ms,
        "reading_count": anchor.reading_count,
        "previous_batch_id": anchor.previous_batch_id.hex(),
        "operator": identity.did_of(anchor.operator),
        "submitter": identity.did_of(anchor.submitter),
        "height": anchor.height,
        "time_ns": anchor.time_ns,
    }
    if with_devices:
        value["devices"] = [identity.did_of(address) for address in anchor.devices]
    return value


def feed_declaration_value(feed: Feed) -> dict[str, Any]:
    """Return a feed's declaration as plain data."""
    return {"feed_id": feed.feed_id, "publisher": identity.did_of(feed.publisher),
            "description": feed.description, "unit": feed.unit, "scale": feed.scale,
            "aggregation": feed.aggregation, "coverage": list(feed.coverage),
            "created_height": feed.created_height}


def feed_value_value(value: FeedValue) -> dict[str, Any]:
    """Return a feed value as plain data."""
    return {"feed_id": value.feed_id, "value": value.value, "scale": value.scale,
            "window_start_ms": value.window_start_ms, "window_end_ms": value.window_end_ms,
            "source_batch_ids": [batch_id.hex() for batch_id in value.source_batch_ids],
            "height": value.height, "time_ns": value.time_ns}


# ------------------------------------------------------------------------------------ params

def _reference(value: Any, field: str) -> str:
    address = identity.address_of(value) if isinstance(value, str) else None
    if address is None:
        raise InvalidQueryError(f"{field} must be an address (40 lowercase hex characters) or a "
                                f"did:city DID, got {value!r}", field=field)
    return address


def _account_param(params: dict[str, Any], did_name: str, address_name: str) -> str:
    if (did_name in params) == (address_name in params):
        raise InvalidQueryError(f"give exactly one of {did_name!r} or {address_name!r}",
                                field=did_name)
    if did_name in params:
        did = params[did_name]
        if not isinstance(did, str) or not did.startswith("did:"):
            raise InvalidQueryError(f"{did_name} must be a did:city DID, got {did!r}",
                                    field=did_name)
        return _reference(did, did_name)
    address = params[address_name]
    if not isinstance(address, str) or address.startswith("did:"):
        raise InvalidQueryError(f"{address_name} must be 40 lowercase hex characters, got "
                                f"{address!r}", field=address_name)
    return _reference(address, address_name)


def _int_param(params: dict[str, Any], name: str, default: int, minimum: int,
               maximum: int) -> int:
    value = params.get(name, default)
    if type(value) is not int or not minimum <= value <= maximum:
        raise InvalidQueryError(f"{name} must be an integer from {minimum} to {maximum}",
                                field=name)
    return value


def _hash_param(params: dict[str, Any], name: str) -> bytes:
    value = params[name]
    if not isinstance(value, str) or _HASH_HEX.fullmatch(value) is None:
        raise InvalidQueryError(f"{name} must be 64 lowercase hex characters", field=name)
    return bytes.fromhex(value)


def _feed_param(params: dict[str, Any]) -> str:
    feed_id = params["feed_id"]
    if not isinstance(feed_id, str) or not is_feed_id(feed_id):
        raise InvalidQueryError(f"feed_id must match [a-z][a-z0-9_.-]{{2,63}}, got {feed_id!r}",
                                field="feed_id")
    return feed_id
