"""Bank messages: create a denomination, mint, burn, transfer. Accounts are named by DID."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg, validate_positive_amount, validate_text_field
from citychain.modules.bank.types import MAX_DECIMALS, MAX_DISPLAY_NAME, is_denom
from citychain.modules.identity.api import ROLE_TREASURY, validate_did_field


def validate_denom_field(value: str, field: str) -> None:
    """Raise InvalidMessageError unless ``value`` matches [a-z][a-z0-9]{2,15}."""
    if not is_denom(value):
        raise InvalidMessageError(
            f"{field} must be 3 to 16 characters of a-z and 0-9, starting with a letter; "
            f"got {value!r}", field=field)


@dataclass(frozen=True)
class MsgCreateDenom(Msg):
    """Create a denomination with no supply (treasury only)."""

    TYPE = "citychain.bank.v1.MsgCreateDenom"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_TREASURY

    denom: str
    display_name: str
    decimals: int

    def validate_basic(self) -> None:
        validate_denom_field(self.denom, "denom")
        validate_text_field(self.display_name, "display_name", max_length=MAX_DISPLAY_NAME)
        if not self.display_name.isprintable():
            raise InvalidMessageError("display_name must not contain control characters",
                                      field="display_name")
        if not 0 <= self.decimals <= MAX_DECIMALS:
            raise InvalidMessageError(f"decimals must be from 0 to {MAX_DECIMALS}, "
                                      f"got {self.decimals}", field="decimals")


@dataclass(frozen=True)
class MsgMint(Msg):
    """Create ``amount`` new coins in the balance of ``to`` (treasury only)."""

    TYPE = "citychain.bank.v1.MsgMint"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_TREASURY

    to: str
    denom: str
    amount: int

    def validate_basic(self) -> None:
        validate_did_field(self.to, "to")
        validate_denom_field(self.denom, "denom")
        validate_positive_amount(self.amount, "amount")


@dataclass(frozen=True)
class MsgBurn(Msg):
    """Destroy ``amount`` coins from the sender's own balance (treasury only)."""

    TYPE = "citychain.bank.v1.MsgBurn"
    REQUIRED_ROLE: ClassVar[str | None] = ROLE_TREASURY

    denom: str
    amount: int

    def validate_basic(self) -> None:
        validate_denom_field(self.denom, "denom")
        validate_positive_amount(self.amount, "amount")


@dataclass(frozen=True)
class MsgTransfer(Msg):
    """Move ``amount`` coins from the sender to ``to`` (an active identity)."""

    TYPE = "citychain.bank.v1.MsgTransfer"

    to: str
    denom: str
    amount: int

    def validate_basic(self) -> None:
        validate_did_field(self.to, "to")
        validate_denom_field(self.denom, "denom")
        validate_positive_amount(self.amount, "amount")


MESSAGES: tuple[type[Msg], ...] = (MsgCreateDenom, MsgMint, MsgBurn, MsgTransfer)
