"""Message base class: frozen dataclasses with a versioned type name and plain-data conversion.

A message is ``@dataclass(frozen=True)`` subclassing :class:`Msg`, with a class attribute
``TYPE = "citychain.<module>.v1.Msg<Verb><Noun>"``, fields of type ``int``, ``str``, ``bytes``,
``bool`` or ``tuple[str, ...]``, and a ``validate_basic()`` that raises
:class:`InvalidMessageError` naming the field. ``REQUIRED_ROLE`` (optional) is checked by the
application's ante handler before the message's handler runs.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar, Self

from citychain.core.crypto import is_address
from citychain.core.errors import InvalidMessageError

_SCALARS: dict[Any, type] = {int: int, str: str, bytes: bytes, bool: bool}
_FIELD_CACHE: dict[type, tuple[tuple[str, Any], ...]] = {}


class Msg:
    """Base of every transaction message."""

    TYPE: ClassVar[str] = ""
    REQUIRED_ROLE: ClassVar[str | None] = None

    def validate_basic(self) -> None:
        """Stateless checks (formats, bounds, lengths). Raises InvalidMessageError."""

    def to_value(self) -> dict[str, Any]:
        """Return the message fields as plain data (canonically encodable)."""
        return {name: (list(value) if isinstance(value, tuple) else value)
                for name, value in ((f, getattr(self, f)) for f, _ in _fields(type(self)))}

    @classmethod
    def from_value(cls, value: Any) -> Self:
        """Build a message from plain data, checking field names and types exactly.

        Raises:
            InvalidMessageError: a field is missing, unknown or of the wrong type.
        """
        if not isinstance(value, dict):
            raise InvalidMessageError(f"{cls.TYPE}: message value must be a map")
        fields = _fields(cls)
        names = {name for name, _ in fields}
        for key in sorted(value):
            if key not in names:
                raise InvalidMessageError(f"{cls.TYPE}: unknown field {key!r}", field=key)
        kwargs: dict[str, Any] = {}
        for name, kind in fields:
            if name not in value:
                raise InvalidMessageError(f"{cls.TYPE}: missing field {name!r}", field=name)
            kwargs[name] = _convert(cls.TYPE, name, kind, value[name])
        return cls(**kwargs)


def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    cached = _FIELD_CACHE.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
        _FIELD_CACHE[cls] = cached
    return cached


def _convert(type_name: str, name: str, kind: Any, raw: Any) -> Any:
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        if type(raw) is not scalar:
            raise InvalidMessageError(
                f"{type_name}: field {name!r} must be {scalar.__name__}, got {type(raw).__name__}",
                field=name)
        return raw
    if typing.get_origin(kind) is tuple:
        (item_kind, _ellipsis) = typing.get_args(kind)
        item_type = _SCALARS[item_kind]
        if type(raw) is not list or any(type(item) is not item_type for item in raw):
            raise InvalidMessageError(
                f"{type_name}: field {name!r} must be a list of {item_type.__name__}", field=name)
        return tuple(raw)
    raise TypeError(f"unsupported message field type {kind!r} for {type_name}.{name}")


def validate_address_field(value: str, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a well-formed address."""
    if not is_address(value):
        raise InvalidMessageError(
            f"{field} must be an address (40 lowercase hex characters), got {value!r}",
            field=field)


def validate_text_field(value: str, field: str, *, max_length: int, min_length: int = 1) -> None:
    """Raise InvalidMessageError unless ``value`` has between min and max characters."""
    if not min_length <= len(value) <= max_length:
        raise InvalidMessageError(
            f"{field} must have {min_length} to {max_length} characters, got {len(value)}",
            field=field)


def validate_positive_amount(value: int, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` is a positive integer below 2**63."""
    if value <= 0 or value >= 2**63:
        raise InvalidMessageError(f"{field} must be a positive integer below 2**63, got {value}",
                                  field=field)


class MessageRegistry:
    """Maps message type names to classes. Registration order is fixed by the application."""

    def __init__(self) -> None:
        self._by_type: dict[str, type[Msg]] = {}

    def register(self, cls: type[Msg]) -> None:
        if not cls.TYPE:
            raise TypeError(f"{cls.__qualname__} has no TYPE")
        if cls.TYPE in self._by_type:
            raise TypeError(f"message type {cls.TYPE} registered twice")
        self._by_type[cls.TYPE] = cls

    def get(self, type_name: str) -> type[Msg] | None:
        return self._by_type.get(type_name)

    def types(self) -> list[str]:
        return sorted(self._by_type)
