"""Oracle store keys (module prefix 0x04); the layout is documented in docs/spec/oracle.md."""

from __future__ import annotations

from citychain.core.keyspace import address_part, make_key, text_part, uint_part

PREFIX = b"\x04"
PARAMS_KEY = PREFIX + b"\x00"
DEVICE_PREFIX = PREFIX + b"\x01"
OWNER_DEVICE_PREFIX = PREFIX + b"\x02"
ANCHOR_PREFIX = PREFIX + b"\x03"
ROOT_PREFIX = PREFIX + b"\x04"
DEVICE_ANCHOR_PREFIX = PREFIX + b"\x05"
FEED_PREFIX = PREFIX + b"\x06"
FEED_LATEST_PREFIX = PREFIX + b"\x07"
FEED_HISTORY_PREFIX = PREFIX + b"\x08"

ADDRESS_BYTES = 20
HASH_BYTES = 32
TIME_WIDTH = 8


def device_key(address: str) -> bytes:
    """0x04 0x01 | address(20)."""
    return DEVICE_PREFIX + address_part(address)


def address_from_device_key(key: bytes) -> str:
    return key[len(DEVICE_PREFIX):].hex()


def owner_devices_prefix(owner: str) -> bytes:
    """0x04 0x02 | owner(20): every device an operator owns."""
    return OWNER_DEVICE_PREFIX + address_part(owner)


def owner_device_key(owner: str, device: str) -> bytes:
    """0x04 0x02 | owner(20) | device(20)."""
    return make_key(OWNER_DEVICE_PREFIX, address_part(owner), address_part(device))


def anchor_key(batch_id: bytes) -> bytes:
    """0x04 0x03 | batch_id(32)."""
    return ANCHOR_PREFIX + batch_id


def root_key(merkle_root: bytes) -> bytes:
    """0x04 0x04 | merkle_root(32): the batch that anchored this root."""
    return ROOT_PREFIX + merkle_root


def device_anchors_prefix(device: str) -> bytes:
    """0x04 0x05 | device(20): every batch that lists the device."""
    return DEVICE_ANCHOR_PREFIX + address_part(device)


def device_anchor_key(device: str, first_reading_ms: int, batch_id: bytes) -> bytes:
    """0x04 0x05 | device(20) | first_reading_ms (uint64) | batch_id(32)."""
    return make_key(DEVICE_ANCHOR_PREFIX, address_part(device),
                    uint_part(first_reading_ms, TIME_WIDTH), batch_id)


def split_device_anchor_key(key: bytes, prefix: bytes) -> tuple[int, bytes]:
    """Return (first_reading_ms, batch_id) of a key under ``device_anchors_prefix``."""
    time_end = len(prefix) + TIME_WIDTH
    return int.from_bytes(key[len(prefix):time_end], "big"), key[time_end:]


def feed_key(feed_id: str) -> bytes:
    """0x04 0x06 | len(feed_id) | feed_id."""
    return make_key(FEED_PREFIX, text_part(feed_id))


def feed_id_from_key(key: bytes, prefix: bytes) -> str:
    """Return the length-prefixed feed id that follows ``prefix`` in ``key``."""
    length = key[len(prefix)]
    start = len(prefix) + 1
    return key[start:start + length].decode()


def feed_latest_key(feed_id: str) -> bytes:
    """0x04 0x07 | len(feed_id) | feed_id: the feed's latest value."""
    return make_key(FEED_LATEST_PREFIX, text_part(feed_id))


def feed_history_prefix(feed_id: str) -> bytes:
    """0x04 0x08 | len(feed_id) | feed_id: every value of the feed."""
    return make_key(FEED_HISTORY_PREFIX, text_part(feed_id))


def feed_history_key(feed_id: str, window_end_ms: int) -> bytes:
    """0x04 0x08 | len(feed_id) | feed_id | window_end_ms (uint64)."""
    return make_key(FEED_HISTORY_PREFIX, text_part(feed_id), uint_part(window_end_ms, TIME_WIDTH))
