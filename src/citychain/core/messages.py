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


class Msg:
    """Base of every transaction message."""

    TYPE: ClassVar[str] = ""
    REQUIRED_ROLE: ClassVar[str | None] = None

    def validate_basic(self) -> None:
        """Stateless checks (formats, bounds, lengths). Raises InvalidMessageError."""

    def to_value(self) -> dict[str, Any]:
        """Return the message fields as plain data (canonically encodable)."""
        return {name: (list(value) if isinstance(value, tuple) else value)
                for name, value in ((f, getattr(self, f)) for f in _spec(type(self)).order)}

    @classmethod
    def from_value(cls, value: Any) -> Self:
        """Build a message from plain data, checking field names and types exactly.

        Raises:
            InvalidMessageError: a field is missing, unknown or of the wrong type.
            TypeError: the message class declares a field type messages cannot carry.
        """
        if not isinstance(value, dict):
            raise InvalidMessageError(f"{cls.TYPE}: message value must be a map")
        spec = _spec(cls)
        if value.keys() != spec.names:
            _raise_field_mismatch(cls.TYPE, spec, value)
        kwargs: dict[str, Any] = {}
        for name, scalar, item_type in spec.fields:
            raw = value[name]
            if scalar is not None:
                if type(raw) is not scalar:
                    raise InvalidMessageError(
                        f"{cls.TYPE}: field {name!r} must be {scalar.__name__}, "
                        f"got {type(raw).__name__}", field=name)
                kwargs[name] = raw
            else:
                if type(raw) is not list or any(type(item) is not item_type for item in raw):
                    raise InvalidMessageError(
                        f"{cls.TYPE}: field {name!r} must be a list of {item_type.__name__}",
                        field=name)
                kwargs[name] = tuple(raw)
        return cls(**kwargs)


class _Spec:
    """A message class's fields, resolved once: names, and per field its scalar type or, for a
    ``tuple[X, ...]`` field, its item type."""

    __slots__ = ("fields", "names", "order")

    def __init__(self, cls: type) -> None:
        hints = typing.get_type_hints(cls)
        fields: list[tuple[str, type | None, type]] = []
        for field in dataclasses.fields(cls):
            kind = hints[field.name]
            scalar = _SCALARS.get(kind)
            if scalar is not None:
                fields.append((field.name, scalar, scalar))
                continue
            args = typing.get_args(kind)
            if (typing.get_origin(kind) is not tuple or len(args) != 2 or args[1] is not Ellipsis
                    or args[0] not in _SCALARS):
                raise TypeError(f"unsupported message field type {kind!r} for "
                                f"{getattr(cls, 'TYPE', cls.__qualname__)}.{field.name}")
            fields.append((field.name, None, _SCALARS[args[0]]))
        self.fields = tuple(fields)
        self.order = tuple(name for name, _, _ in fields)
        self.names = frozenset(self.order)


_SPEC_CACHE: dict[type, _Spec] = {}


def _spec(cls: type) -> _Spec:
    spec = _SPEC_CACHE.get(cls)
    if spec is None:
        spec = _SPEC_CACHE[cls] = _Spec(cls)
    return spec


def _raise_field_mismatch(type_name: str, spec: _Spec, value: dict[Any, Any]) -> None:
    for key in sorted(value, key=str):
        if key not in spec.names:
            shown = str(key) if len(str(key)) <= 64 else str(key)[:64] + "..."
            raise InvalidMessageError(f"{type_name}: unknown field {shown!r}", field=shown)
    for name in spec.order:
        if name not in value:
            raise InvalidMessageError(f"{type_name}: missing field {name!r}", field=name)


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
