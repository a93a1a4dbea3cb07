"""Bank module parameters: defaults, canonical encoding and validation of the genesis form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core import codec
from citychain.core.errors import InvalidGenesisError


@dataclass(frozen=True, slots=True)
class Params:
    """``transfers_enabled``: whether MsgTransfer (and api.transfer) may move coins. Minting and
    burning by the treasury stay possible while transfers are paused."""

    transfers_enabled: bool = True

    def to_value(self) -> dict[str, Any]:
        return {"transfers_enabled": self.transfers_enabled}

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_bytes(cls, data: bytes) -> Params:
        """Decode stored params. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(transfers_enabled=value["transfers_enabled"])

    @classmethod
    def from_genesis(cls, value: Any, path: str) -> Params:
        """Build params from their genesis form; missing fields take their defaults.

        Raises:
            InvalidGenesisError: ``value`` is not a map, has an unknown field or a wrong type.
        """
        if not isinstance(value, dict):
            raise InvalidGenesisError(f"{path} must be a map", field=path)
        for name in sorted(value):
            if name != "transfers_enabled":
                raise InvalidGenesisError(f"{path} has unknown parameter {name!r}",
                                          field=f"{path}.{name}")
        enabled = value.get("transfers_enabled", DEFAULT_PARAMS.transfers_enabled)
        if type(enabled) is not bool:
            raise InvalidGenesisError(f"{path}.transfers_enabled must be a boolean",
                                      field=f"{path}.transfers_enabled")
        return cls(transfers_enabled=enabled)


DEFAULT_PARAMS = Params()
