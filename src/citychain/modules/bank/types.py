"""Bank state records: denomination metadata and integer amounts (balances, supply)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from citychain.core import codec

DENOM_PATTERN = re.compile(r"[a-z][a-z0-9]{2,15}")
MAX_DISPLAY_NAME = 64
MAX_DECIMALS = 18
# Amounts, balances and supplies stay below 2**63 (they fit a signed 64-bit integer everywhere).
MAX_AMOUNT = 2**63 - 1
# An escrow's owner (a module name) and id are 1..64 bytes of printable ASCII.
MAX_ESCROW_NAME = 64


@dataclass(frozen=True, slots=True)
class Denom:
    """A denomination. ``creator`` is the treasury address that created it ("" at genesis)."""

    denom: str
    display_name: str
    decimals: int
    creator: str = ""
    created_height: int = 0

    def to_value(self) -> dict[str, str | int]:
        return {"denom": self.denom, "display_name": self.display_name,
                "decimals": self.decimals, "creator": self.creator,
                "created_height": self.created_height}

    def to_bytes(self) -> bytes:
        """Return the canonical encoding (the denom id is in the key, not repeated here)."""
        return codec.encode({"display_name": self.display_name, "decimals": self.decimals,
                             "creator": self.creator, "created_height": self.created_height})

    @classmethod
    def from_bytes(cls, denom: str, data: bytes) -> Denom:
        """Decode a stored record. Raises DecodeError/NonCanonicalError on corrupt bytes."""
        value = codec.decode(data)
        return cls(denom, value["display_name"], value["decimals"], value["creator"],
                   value["created_height"])


def is_denom(text: str) -> bool:
    """Return whether ``text`` is a well-formed denom id ([a-z][a-z0-9]{2,15})."""
    # fullmatch: with match and "$", "ucity\n" would pass as a look-alike of "ucity".
    return DENOM_PATTERN.fullmatch(text) is not None


def is_escrow_name(text: str) -> bool:
    """Return whether ``text`` can name an escrow's owner or id (1..64 printable ASCII)."""
    return (isinstance(text, str) and 1 <= len(text) <= MAX_ESCROW_NAME and text.isascii()
            and text.isprintable())


def validate_escrow_name(text: str, name: str) -> None:
    """Raise ValueError unless ``text`` is an escrow owner or id (modules pass these, not users,
    so a bad one is a programming error, not a chain error)."""
    if not is_escrow_name(text):
        raise ValueError(f"escrow {name} must be 1 to {MAX_ESCROW_NAME} printable ASCII "
                         f"characters, got {text!r}")


def encode_amount(amount: int) -> bytes:
    """Return the canonical encoding of a non-negative amount."""
    return codec.encode(amount)


def decode_amount(data: bytes) -> int:
    """Decode a stored amount. Raises DecodeError/NonCanonicalError on corrupt bytes."""
    value = codec.decode(data)
    if type(value) is not int:
        raise TypeError("stored amount is not an integer")
    return value
