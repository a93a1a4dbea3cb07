"""Identity module parameters: defaults, canonical encoding and validation of the genesis form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core import codec
from citychain.core.errors import InvalidGenesisError


@dataclass(frozen=True, slots=True)
class Params:
    """``self_registration_enabled``: whether a new key may create its own identity
    (MsgCreateIdentity). A closed network sets it false and lists every account in genesis."""

    self_registration_enabled: bool = True

    def to_value(self) -> dict[str, Any]:
        return {"self_registration_enabled": self.self_registration_enabled}

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_bytes(cls, data: bytes) -> Params:
        """Decode stored params. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(self_registration_enabled=value["self_registration_enabled"])

    @classmethod
    def from_genesis(cls, value: Any, path: str) -> Params:
        """Build params from their genesis form; missing fields take their defaults.

        Raises:
            InvalidGenesisError: ``value`` is not a map, has an unknown field or a wrong type.
        """
        if not isinstance(value, dict):
            raise InvalidGenesisError(f"{path} must be a map", field=path)
        known = ("self_registration_enabled",)
        for name in sorted(value):
            if name not in known:
                raise InvalidGenesisError(f"{path} has unknown parameter {name!r}",
                                          field=f"{path}.{name}")
        enabled = value.get("self_registration_enabled", DEFAULT_PARAMS.self_registration_enabled)
        if type(enabled) is not bool:
            raise InvalidGenesisError(f"{path}.self_registration_enabled must be a boolean",
                                      field=f"{path}.self_registration_enabled")
        return cls(self_registration_enabled=enabled)


DEFAULT_PARAMS = Params()
