"""Contracts errors: codespace "contracts", one stable code per class (listed in the spec page).

``field`` names the message field at fault (``milestones[2].condition`` for one entry);
``"sender"`` means the transaction's sender.
"""

from __future__ import annotations

from citychain.core.errors import ChainError


class ContractsError(ChainError):
    codespace = "contracts"


class ConditionInvalidError(ContractsError):
    code = 1
    description = ("a condition does not parse, uses something outside the allowed CEL subset, "
                   "or exceeds the size or cost limits")


class ContractNotFoundError(ContractsError):
    code = 2
    description = "no contract has this id"


class NotPartyError(ContractsError):
    code = 3
    description = "the sender is not a party of the contract (in the required role)"


class ContractStatusError(ContractsError):
    code = 4
    description = "the contract's status does not allow this action"


class PartyInvalidError(ContractsError):
    code = 5
    description = "a party's DID has no active identity, or the parties break the role rules"


class AlreadySignedError(ContractsError):
    code = 6
    description = "this party has already signed (the contract or the amendment)"


class FundingExceededError(ContractsError):
    code = 7
    description = "the deposit is more than the contract still needs from this party"


class MilestoneNotFoundError(ContractsError):
    code = 8
    description = "the contract has no milestone with this index"


class MilestoneSettledError(ContractsError):
    code = 9
    description = "the milestone is already released, refunded or missed"


class AlreadyAttestedError(ContractsError):
    code = 10
    description = "this role has already attested this milestone"


class AmendmentNotFoundError(ContractsError):
    code = 11
    description = "the contract has no open amendment with this number"


class AmendmentOpenError(ContractsError):
    code = 12
    description = "the contract already has an open amendment"


class AmendmentInvalidError(ContractsError):
    code = 13
    description = "the amendment changes a settled milestone or needs more than is in escrow"


class DeadlineInvalidError(ContractsError):
    code = 14
    description = "a deadline or expiry is not after the current block time"


class ContractLimitExceededError(ContractsError):
    code = 15
    description = "more parties, milestones or attestations than the params allow"


class DenomNotFoundError(ContractsError):
    code = 16
    description = "the terms' denom has not been created in the bank module"
