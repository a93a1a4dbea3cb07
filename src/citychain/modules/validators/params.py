"""Validators module parameters: defaults, canonical encoding and validation of the genesis form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core import codec
from citychain.core.errors import InvalidGenesisError

MAX_VOTING_PERIOD_BLOCKS = 10_000_000


@dataclass(frozen=True, slots=True)
class Params:
    """``voting_period_blocks``: how many blocks after the one that created it a proposal stays
    open for approvals (expiry height = created height + voting_period_blocks)."""

    voting_period_blocks: int = 100

    def to_value(self) -> dict[str, Any]:
        return {"voting_period_blocks": self.voting_period_blocks}

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_bytes(cls, data: bytes) -> Params:
        """Decode stored params. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(voting_period_blocks=value["voting_period_blocks"])

    @classmethod
    def from_genesis(cls, value: Any, path: str) -> Params:
        """Build params from their genesis form; missing fields take their defaults.

        Raises:
            InvalidGenesisError: ``value`` is not a map, has an unknown field or a bad value.
        """
        if not isinstance(value, dict):
            raise InvalidGenesisError(f"{path} must be a map", field=path)
        for name in sorted(value):
            if name != "voting_period_blocks":
                raise InvalidGenesisError(f"{path} has unknown parameter {name!r}",
                                          field=f"{path}.{name}")
        period = value.get("voting_period_blocks", DEFAULT_PARAMS.voting_period_blocks)
        if type(period) is not int or not 1 <= period <= MAX_VOTING_PERIOD_BLOCKS:
            raise InvalidGenesisError(f"{path}.voting_period_blocks must be an integer from 1 "
                                      f"to {MAX_VOTING_PERIOD_BLOCKS}",
                                      field=f"{path}.voting_period_blocks")
        return cls(voting_period_blocks=period)


DEFAULT_PARAMS = Params()
