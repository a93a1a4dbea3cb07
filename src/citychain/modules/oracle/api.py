"""The oracle module's facade: the only surface other modules (contracts) and adapters call.

Functions take DIDs for devices and feed ids for feeds. A device's key and active status are
read through the identity module at every call, so a suspension or key rotation shows at once.
"""

from __future__ import annotations

from citychain.core.state import ReadView
from citychain.modules.identity import api as identity
from citychain.modules.oracle import state
from citychain.modules.oracle.types import (
    AGGREGATIONS,
    DEVICE_TYPES,
    Anchor,
    Device,
    Feed,
    FeedValue,
    compute_batch_id,
    is_feed_id,
)

__all__ = [
    "AGGREGATIONS",
    "DEVICE_TYPES",
    "Anchor",
    "Device",
    "Feed",
    "FeedValue",
    "compute_batch_id",
    "device_pubkey",
    "get_anchor",
    "get_device",
    "get_feed",
    "get_feed_value",
    "get_feed_value_at",
    "is_device_active",
]


def get_device(view: ReadView, did: str) -> Device | None:
    """Return the device registered under ``did`` (decommissioned ones too), or None."""
    address = _address(did)
    return None if address is None else state.get_device(view, address)


def is_device_active(view: ReadView, did: str) -> bool:
    """Return whether ``did`` is a registered, not decommissioned device whose identity is
    active and holds the device role (the gateway accepts its readings only then)."""
    device = get_device(view, did)
    return (device is not None and not device.decommissioned
            and identity.has_role(view, device.address, identity.ROLE_DEVICE))


def device_pubkey(view: ReadView, did: str) -> bytes | None:
    """Return the current Ed25519 key of a registered, not decommissioned device (its identity's
    key, whatever its suspension), or None."""
    device = get_device(view, did)
    if device is None or device.decommissioned:
        return None
    account = identity.get_account(view, device.address)
    return None if account is None else account.pubkey


def get_anchor(view: ReadView, batch_id: bytes) -> Anchor | None:
    """Return the anchored batch ``batch_id`` (32 bytes), or None."""
    return state.get_anchor(view, batch_id) if len(batch_id) == 32 else None


def get_feed(view: ReadView, feed_id: str) -> Feed | None:
    """Return the feed's declaration, or None."""
    return state.get_feed(view, feed_id) if is_feed_id(feed_id) else None


def get_feed_value(view: ReadView, feed_id: str) -> FeedValue | None:
    """Return the feed's latest value (latest window end), or None if it has none."""
    return state.get_latest_value(view, feed_id) if is_feed_id(feed_id) else None


def get_feed_value_at(view: ReadView, feed_id: str, window_end_ms: int) -> FeedValue | None:
    """Return the feed's value whose window ends at ``window_end_ms``, or None."""
    if not is_feed_id(feed_id) or not 0 <= window_end_ms < 2**64:
        return None
    return state.get_value_at(view, feed_id, window_end_ms)


def _address(did: str) -> str | None:
    return identity.address_of(did) if did.startswith("did:") else None
