"""Validators errors: codespace "validators", one stable code per class (listed in the spec page).

``field`` names the message field at fault; ``"sender"`` means the transaction's sender.
"""

from __future__ import annotations

from citychain.core.errors import ChainError


class ValidatorsError(ChainError):
    codespace = "validators"


class ValidatorNotFoundError(ValidatorsError):
    code = 1
    description = "the public key is not in the validator set"


class ValidatorAlreadyExistsError(ValidatorsError):
    code = 2
    description = "the public key is already in the validator set"


class OrganisationNotFoundError(ValidatorsError):
    code = 3
    description = "the organisation has no identity"


class OrganisationNotEligibleError(ValidatorsError):
    code = 4
    description = "the organisation does not hold the validator-org role (or is suspended)"


class ValidatorSetEmptyError(ValidatorsError):
    code = 5
    description = "the change would leave the validator set empty"


class PowerChangeTooLargeError(ValidatorsError):
    code = 6
    description = "the change would move 1/3 or more of the total power in one block"


class TotalPowerTooLargeError(ValidatorsError):
    code = 7
    description = "the total power would pass CometBFT's maximum (2**63 - 1) // 8"


class PowerUnchangedError(ValidatorsError):
    code = 8
    description = "set-power names the power the validator already has"


class ProposalPendingError(ValidatorsError):
    code = 9
    description = "another open or passed proposal already targets this public key"


class ProposalNotFoundError(ValidatorsError):
    code = 10
    description = "no proposal has this id"


class ProposalNotOpenError(ValidatorsError):
    code = 11
    description = "the proposal is no longer open for approvals"


class AlreadyApprovedError(ValidatorsError):
    code = 12
    description = "the organisation has already approved the proposal"


class NotValidatorOperatorError(ValidatorsError):
    code = 13
    description = "the sender operates no validator in the current set"


class ValidatorSetUnmanagedError(ValidatorsError):
    code = 14
    description = "genesis listed no validators in this module, so the set is not governed here"
