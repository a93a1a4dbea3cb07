"""Checks every module's genesis parser shares: known and required fields, lists, bounded
integers. Each raises InvalidGenesisError naming the dotted path of the offending field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from citychain.core.errors import InvalidGenesisError

__all__ = ["bounded_integers", "check_fields", "genesis_integer", "genesis_list",
           "require_fields"]


def check_fields(value: dict[str, Any], known: tuple[str, ...], path: str) -> None:
    """Raise InvalidGenesisError naming the first (in sorted order) field not in ``known``."""
    for name in sorted(value):
        if name not in known:
            raise InvalidGenesisError(f"{path} has unknown field {name!r}",
                                      field=f"{path}.{name}")


def require_fields(value: dict[str, Any], names: tuple[str, ...], path: str) -> None:
    """Raise InvalidGenesisError naming the first of ``names`` missing from ``value``."""
    for name in names:
        if name not in value:
            raise InvalidGenesisError(f"{path} is missing {name}", field=f"{path}.{name}")


def genesis_list(section: dict[str, Any], name: str, path: str) -> list[Any]:
    """``section[name]`` (default empty); raise InvalidGenesisError unless it is a list."""
    value = section.get(name, [])
    if not isinstance(value, list):
        raise InvalidGenesisError(f"{path}.{name} must be a list", field=f"{path}.{name}")
    return value


def genesis_integer(raw: Any, path: str, minimum: int, maximum: int) -> int:
    """``raw`` if it is an int (not a bool) within bounds, else InvalidGenesisError."""
    if type(raw) is not int or not minimum <= raw <= maximum:
        raise InvalidGenesisError(f"{path} must be an integer from {minimum} to {maximum}",
                                  field=path)
    return raw


def bounded_integers(value: Any, path: str, bounds: Mapping[str, tuple[int, int]],
                     defaults: Any) -> dict[str, int]:
    """Check a map of integer parameters (a module's params in genesis) against ``bounds``
    (name -> (minimum, maximum)); a missing one takes ``defaults``'s attribute of that name.

    Raises:
        InvalidGenesisError: ``value`` is not a map, names an unknown parameter, or holds a
            value that is not an integer within its bounds.
    """
    if not isinstance(value, dict):
        raise InvalidGenesisError(f"{path} must be a map", field=path)
    for name in sorted(value):
        if name not in bounds:
            raise InvalidGenesisError(f"{path} has unknown parameter {name!r}",
                                      field=f"{path}.{name}")
    chosen: dict[str, int] = {}
    for name, (minimum, maximum) in bounds.items():
        raw = value.get(name, getattr(defaults, name))
        if type(raw) is not int or not minimum <= raw <= maximum:
            raise InvalidGenesisError(f"{path}.{name} must be an integer from {minimum} to "
                                      f"{maximum}", field=f"{path}.{name}")
        chosen[name] = raw
    return chosen
