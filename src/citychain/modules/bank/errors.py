"""Bank errors: codespace "bank", one stable code per class (listed in the spec page)."""

from __future__ import annotations

from citychain.core.errors import ChainError


class BankError(ChainError):
    codespace = "bank"


class DenomNotFoundError(BankError):
    code = 1
    description = "the denomination does not exist"


class DenomAlreadyExistsError(BankError):
    code = 2
    description = "a denomination with this id already exists"


class InsufficientFundsError(BankError):
    code = 3
    description = "the balance is smaller than the amount (details: required, available)"


class RecipientNotFoundError(BankError):
    code = 4
    description = "the recipient has no identity"


class RecipientSuspendedError(BankError):
    code = 5
    description = "the recipient's identity is suspended"


class SupplyOverflowError(BankError):
    code = 6
    description = "the total supply would reach 2**63"


class TransfersDisabledError(BankError):
    code = 7
    description = "transfers are paused by the module params"


class AmountInvalidError(BankError):
    code = 8
    description = "the amount is not a positive integer below 2**63"


class EscrowInsufficientError(BankError):
    code = 9
    description = "the escrow holds less than the amount (details: required, available)"
