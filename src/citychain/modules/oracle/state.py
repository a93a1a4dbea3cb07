"""Typed reads and writes of oracle state over a StateView (the only code that touches keys)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from citychain.core import codec
from citychain.core.query_index import QueryIndex
from citychain.core.state import ReadView, StateView, iterate_prefix, prefix_end
from citychain.modules.oracle import keys
from citychain.modules.oracle.params import DEFAULT_PARAMS, Params
from citychain.modules.oracle.types import (
    Anchor,
    Device,
    Feed,
    FeedValue,
    decode_uint,
    encode_uint,
)


def get_params(view: ReadView) -> Params:
    """Return the stored params (defaults before genesis wrote them)."""
    data = view.get(keys.PARAMS_KEY)
    return DEFAULT_PARAMS if data is None else Params.from_bytes(data)


def set_params(view: StateView, params: Params) -> None:
    view.set(keys.PARAMS_KEY, params.to_bytes())


# ------------------------------------------------------------------------------------ devices

def get_device(view: ReadView, address: str) -> Device | None:
    """Return the device registered at ``address``, or None."""
    data = view.get(keys.device_key(address))
    return None if data is None else _decode_device(address, data)


@lru_cache(maxsize=65_536)
def _decode_device(address: str, data: bytes) -> Device:
    # Each IoT anchor reads the record of every device it lists (up to 1,000); the record is
    # immutable and equal bytes decode to an equal record, so reuse the decoding (sized, like
    # identity's, for a city's working set of devices).
    return Device.from_bytes(address, data)


def set_device(view: StateView, device: Device) -> None:
    """Store the device record and its owner index entry (the owner never changes)."""
    view.set(keys.device_key(device.address), device.to_bytes())
    view.set(keys.owner_device_key(device.owner, device.address), b"")


def iter_devices(view: ReadView) -> Iterator[Device]:
    """Yield every device in address order."""
    for key, data in iterate_prefix(view, keys.DEVICE_PREFIX):
        yield Device.from_bytes(keys.address_from_device_key(key), data)


def iter_owner_devices(view: ReadView, owner: str,
                       start_after: str | None = None) -> Iterator[str]:
    """Yield the addresses of the devices ``owner`` registered, in address order."""
    prefix = keys.owner_devices_prefix(owner)
    start = prefix if start_after is None else keys.owner_device_key(owner, start_after) + b"\0"
    for key, _ in view.iterate(start, prefix_end(prefix)):
        yield key[len(prefix):].hex()


# ------------------------------------------------------------------------------------ anchors

def get_anchor(view: ReadView, batch_id: bytes) -> Anchor | None:
    """Return the anchored batch ``batch_id``, or None."""
    data = view.get(keys.anchor_key(batch_id))
    return None if data is None else Anchor.from_bytes(batch_id, data)


def get_batch_id_by_root(view: ReadView, merkle_root: bytes) -> bytes | None:
    """Return the id of the batch that anchored ``merkle_root``, or None."""
    data = view.get(keys.root_key(merkle_root))
    if data is None:
        return None
    value = codec.decode(data)
    if type(value) is not bytes:
        raise TypeError("stored batch id is not bytes")
    return value


def set_anchor(view: StateView, anchor: Anchor, *, device_keys: bool) -> None:
    """Store the anchor and its root index entry; with ``device_keys`` (the params' rule
    ``device_anchor_keys_in_state``) also one (device, first reading) key per device, which
    otherwise live only in the node's query index (``DEVICE_ANCHOR_INDEX``)."""
    data = anchor.to_bytes()
    view.set(keys.anchor_key(anchor.batch_id), data)
    view.set(keys.root_key(anchor.merkle_root), codec.encode(anchor.batch_id))
    if device_keys:
        for key, value in _device_anchor_entries(anchor):
            view.set(key, value)


def _device_anchor_entries(anchor: Anchor) -> list[tuple[bytes, bytes]]:
    last = encode_uint(anchor.last_reading_ms)
    return [(keys.device_anchor_key(device, anchor.first_reading_ms, anchor.batch_id), last)
            for device in anchor.devices]


def _derive_device_anchors(key: bytes, data: bytes) -> list[tuple[bytes, bytes]]:
    return _device_anchor_entries(Anchor.from_bytes(key[len(keys.ANCHOR_PREFIX):], data))


DEVICE_ANCHOR_INDEX = QueryIndex(
    name="oracle.device_anchors", version=1, source=keys.ANCHOR_PREFIX,
    prefix=keys.DEVICE_ANCHOR_PREFIX, derive=_derive_device_anchors)
"""The batches listing each device: ``04 05 | device | first_reading_ms | batch_id`` ->
``last_reading_ms``, derived from every anchor record (read by ``iter_device_anchors``)."""


def iter_anchors(view: ReadView) -> Iterator[Anchor]:
    """Yield every anchor in batch id order."""
    for key, data in iterate_prefix(view, keys.ANCHOR_PREFIX):
        yield Anchor.from_bytes(key[len(keys.ANCHOR_PREFIX):], data)


def iter_device_anchors(view: ReadView, device: str, first_from_ms: int,
                        first_to_ms: int) -> Iterator[tuple[int, bytes, int]]:
    """Yield (first_reading_ms, batch_id, last_reading_ms) of the batches listing ``device``
    whose first reading lies in [first_from_ms, first_to_ms], in (first reading, id) order.

    Reads ``DEVICE_ANCHOR_INDEX``: ``view`` is a query's view (see core.query_index)."""
    prefix = keys.device_anchors_prefix(device)
    start = keys.device_anchor_key(device, first_from_ms, b"")
    end = prefix_end(keys.device_anchor_key(device, first_to_ms, b""))
    for key, data in view.iterate(start, end):
        first, batch_id = keys.split_device_anchor_key(key, prefix)
        yield first, batch_id, decode_uint(data)


# ------------------------------------------------------------------------------------ feeds

def get_feed(view: ReadView, feed_id: str) -> Feed | None:
    data = view.get(keys.feed_key(feed_id))
    return None if data is None else Feed.from_bytes(feed_id, data)


def set_feed(view: StateView, feed: Feed) -> None:
    view.set(keys.feed_key(feed.feed_id), feed.to_bytes())


def iter_feeds(view: ReadView) -> Iterator[Feed]:
    """Yield every feed in key order (shorter ids first, then bytewise)."""
    for key, data in iterate_prefix(view, keys.FEED_PREFIX):
        yield Feed.from_bytes(keys.feed_id_from_key(key, keys.FEED_PREFIX), data)


def get_latest_value(view: ReadView, feed_id: str) -> FeedValue | None:
    """Return the feed's value with the latest window end, or None before the first."""
    data = view.get(keys.feed_latest_key(feed_id))
    return None if data is None else FeedValue.from_bytes(feed_id, data)


def get_value_at(view: ReadView, feed_id: str, window_end_ms: int) -> FeedValue | None:
    """Return the feed's value whose window ends at ``window_end_ms``, or None."""
    data = view.get(keys.feed_history_key(feed_id, window_end_ms))
    return None if data is None else FeedValue.from_bytes(feed_id, data)


def add_value(view: StateView, value: FeedValue) -> None:
    """Store ``value`` in the feed's history and as its latest value (callers ensure its window
    ends after the previous latest)."""
    data = value.to_bytes()
    view.set(keys.feed_history_key(value.feed_id, value.window_end_ms), data)
    view.set(keys.feed_latest_key(value.feed_id), data)


def iter_values(view: ReadView, feed_id: str,
                start_after_ms: int | None = None) -> Iterator[FeedValue]:
    """Yield the feed's values by window end, after ``start_after_ms`` if given."""
    prefix = keys.feed_history_prefix(feed_id)
    start = (prefix if start_after_ms is None
             else prefix_end(keys.feed_history_key(feed_id, start_after_ms)))
    if start is None:
        return
    for _, data in view.iterate(start, prefix_end(prefix)):
        yield FeedValue.from_bytes(feed_id, data)
