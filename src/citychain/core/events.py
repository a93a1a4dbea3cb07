"""Events: what a transaction or block did, as a past-tense type and canonical string attributes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One event. ``type`` is past tense (``coins_transferred``); attributes keep their order."""

    type: str
    attributes: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, type_: str, **attributes: str | int) -> Event:
        """Build an event; integer attributes become decimal strings, keys are sorted."""
        return cls(type_, tuple((k, str(v)) for k, v in sorted(attributes.items())))

    def get(self, key: str) -> str | None:
        for name, value in self.attributes:
            if name == key:
                return value
        return None

    def to_value(self) -> dict[str, Any]:
        """Return the event as plain data (encodable and JSON-friendly)."""
        return {"type": self.type, "attributes": [[k, v] for k, v in self.attributes]}

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> Event:
        return cls(value["type"], tuple((str(k), str(v)) for k, v in value["attributes"]))
