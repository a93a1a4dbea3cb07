"""The validators module's facade: the only surface other modules call (read-only).

Organisations are DIDs, as in this module's records.
"""

from __future__ import annotations

from citychain.core.state import ReadView
from citychain.modules.validators import state
from citychain.modules.validators.types import MAX_TOTAL_POWER, Validator, compute_total_power

__all__ = [
    "MAX_TOTAL_POWER",
    "Validator",
    "get_total_power",
    "get_validator",
    "get_validators",
    "is_operator",
]


def get_validators(view: ReadView) -> tuple[Validator, ...]:
    """Return the current validator set in pubkey order."""
    return tuple(state.iter_validators(view))


def get_validator(view: ReadView, pubkey: bytes) -> Validator | None:
    """Return the validator with consensus key ``pubkey``, or None."""
    return state.get_validator(view, pubkey)


def get_total_power(view: ReadView) -> int:
    """Return the total power of the current set (0 when the set is not governed here)."""
    return compute_total_power(state.iter_validators(view))


def is_operator(view: ReadView, organisation: str) -> bool:
    """Return whether the organisation (a DID) operates at least one current validator."""
    return any(v.organisation == organisation for v in state.iter_validators(view))
