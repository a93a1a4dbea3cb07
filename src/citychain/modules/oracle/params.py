"""Oracle module parameters: defaults, canonical encoding and validation of the genesis form."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from citychain.core import codec
from citychain.core.genesis_fields import bounded_integers

# Hard caps, also enforced by the messages' validate_basic (a param may only lower them).
# A batch of 1,000 DIDs is about 51 KB, within the 64 KiB transaction limit.
MAX_BATCH_DEVICES = 1_000
MAX_DEVICE_STREAMS = 64
MAX_FEED_SOURCES = 256
MAX_FEED_COVERAGE = 256
MAX_DURATION_MS = 366 * 24 * 3_600_000

# name -> (minimum, maximum) of every parameter.
_BOUNDS: dict[str, tuple[int, int]] = {
    "max_batch_devices": (1, MAX_BATCH_DEVICES),
    "max_batch_span_ms": (1, MAX_DURATION_MS),
    "max_timestamp_skew_ms": (0, MAX_DURATION_MS),
    "max_device_streams": (1, MAX_DEVICE_STREAMS),
    "max_feed_sources": (1, MAX_FEED_SOURCES),
    "max_feed_coverage": (1, MAX_FEED_COVERAGE),
    "device_anchor_keys_in_state": (0, 1),
}

# Chains whose stored params predate ``device_anchor_keys_in_state`` kept the (device, batch)
# pairs in state; reading their params must keep that rule, or their app hash would change.
_STORED_DEFAULTS = {"device_anchor_keys_in_state": 1}


@dataclass(frozen=True, slots=True)
class Params:
    """``max_batch_devices``: devices one anchor may list; ``max_batch_span_ms``: longest time
    from a batch's first to its last reading (it also bounds the ``anchors_by_device`` scan);
    ``max_timestamp_skew_ms``: how far past block time a reading or window end may lie;
    ``max_device_streams``: streams one device may declare; ``max_feed_sources``: source batches
    one feed value may name; ``max_feed_coverage``: districts or lines one feed may cover;
    ``device_anchor_keys_in_state``: 1 stores each (device, batch) pair of an anchor as a key of
    the authenticated state too (the rule of chains created before the node-local query index;
    it costs a tree insert per listed device), 0 (the default) keeps the pairs only in every
    node's query index, derived from the anchor records."""

    max_batch_devices: int = MAX_BATCH_DEVICES
    max_batch_span_ms: int = 3_600_000
    max_timestamp_skew_ms: int = 60_000
    max_device_streams: int = 16
    max_feed_sources: int = 64
    max_feed_coverage: int = 64
    device_anchor_keys_in_state: int = 0

    def to_value(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_bytes(cls, data: bytes) -> Params:
        """Decode stored params. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(**{name: value[name] if name in value else _STORED_DEFAULTS[name]
                      for name in _BOUNDS})

    @classmethod
    def from_genesis(cls, value: Any, path: str) -> Params:
        """Build params from their genesis form; missing fields take their defaults.

        Raises:
            InvalidGenesisError: ``value`` is not a map, has an unknown field or a bad value.
        """
        return cls(**bounded_integers(value, path, _BOUNDS, DEFAULT_PARAMS))


DEFAULT_PARAMS = Params()
