"""Contracts module parameters: defaults, canonical encoding and validation of the genesis form."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from citychain.core import codec
from citychain.core.genesis_fields import bounded_integers
from citychain.modules.contracts.conditions import ConditionLimits

# Hard caps, also enforced by the messages' validate_basic (a param may only lower them).
MAX_MILESTONES = 64
MAX_PERIODS = 1_000
MAX_CONDITION_BYTES = 4_096
MAX_CONDITION_NODES = 1_024
MAX_CONDITION_COST = 8_000
MAX_CONDITION_FEEDS = 16
MAX_DUE_PER_BLOCK = 100_000
MAX_CHECK_EVERY_BLOCKS = 100_000
MAX_TERMS_BYTES = 48 * 1024

# name -> (minimum, maximum) of every parameter.
_BOUNDS: dict[str, tuple[int, int]] = {
    "max_milestones": (1, MAX_MILESTONES),
    "max_periods": (1, MAX_PERIODS),
    "max_condition_bytes": (16, MAX_CONDITION_BYTES),
    "max_condition_nodes": (4, MAX_CONDITION_NODES),
    "max_condition_cost": (4, MAX_CONDITION_COST),
    "max_condition_feeds": (1, MAX_CONDITION_FEEDS),
    "max_due_per_block": (1, MAX_DUE_PER_BLOCK),
}


@dataclass(frozen=True, slots=True)
class Params:
    """``max_milestones``: milestones one contract may have; ``max_periods``: periods of one
    recurring milestone; ``max_condition_bytes/nodes/cost/feeds``: the limits every condition and
    amount expression is checked against at creation and amendment (see conditions.py for the
    cost model); ``max_due_per_block``: contracts end-block checks in one block (the rest wait
    for the next block, oldest first), which bounds a block's work."""

    max_milestones: int = 32
    max_periods: int = 520
    max_condition_bytes: int = 1_024
    max_condition_nodes: int = 256
    max_condition_cost: int = 2_000
    max_condition_feeds: int = 8
    max_due_per_block: int = 10_000

    def condition_limits(self) -> ConditionLimits:
        return ConditionLimits(max_bytes=self.max_condition_bytes,
                               max_nodes=self.max_condition_nodes,
                               max_cost=self.max_condition_cost,
                               max_feeds=self.max_condition_feeds)

    def to_value(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_bytes(cls, data: bytes) -> Params:
        """Decode stored params. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(**{name: value[name] for name in _BOUNDS})

    @classmethod
    def from_genesis(cls, value: Any, path: str) -> Params:
        """Build params from their genesis form; missing fields take their defaults.

        Raises:
            InvalidGenesisError: ``value`` is not a map, has an unknown field or a bad value.
        """
        return cls(**bounded_integers(value, path, _BOUNDS, DEFAULT_PARAMS))


DEFAULT_PARAMS = Params()


# The widest limits: what validate_basic checks (params may only narrow them).
HARD_LIMITS = ConditionLimits(max_bytes=MAX_CONDITION_BYTES, max_nodes=MAX_CONDITION_NODES,
                              max_cost=MAX_CONDITION_COST, max_feeds=MAX_CONDITION_FEEDS)
