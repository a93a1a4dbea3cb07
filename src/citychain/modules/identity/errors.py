"""Identity errors: codespace "identity", one stable code per class (listed in the spec page).

``field`` names the message field at fault; ``"sender"`` means the transaction's sender.
"""

from __future__ import annotations

from citychain.core.errors import ChainError


class IdentityError(ChainError):
    codespace = "identity"


class IdentityNotFoundError(IdentityError):
    code = 1
    description = "no identity exists for the DID or address"


class IdentityAlreadyExistsError(IdentityError):
    code = 2
    description = "an identity already exists at this address"


class SenderKeyMismatchError(IdentityError):
    code = 3
    description = "the public key does not derive the transaction sender's address"


class KeyAlreadyBoundError(IdentityError):
    code = 4
    description = "the public key is or was the key of an identity"


class KeyPossessionInvalidError(IdentityError):
    code = 5
    description = "the new key's signature does not prove possession of the new key"


class RoleGrantNotAllowedError(IdentityError):
    code = 6
    description = "the sender holds no role that may grant or revoke this role"


class RoleAlreadyHeldError(IdentityError):
    code = 7
    description = "the identity already holds the role"


class RoleNotHeldError(IdentityError):
    code = 8
    description = "the identity does not hold the role"


class IdentitySuspendedError(IdentityError):
    code = 9
    description = "the identity is suspended"


class IdentityNotSuspendedError(IdentityError):
    code = 10
    description = "the identity is not suspended"


class SenderSuspendedError(IdentityError):
    code = 11
    description = "the sender is suspended and can exercise no role"


class SuspensionNotAllowedError(IdentityError):
    code = 12
    description = "this identity may not be suspended by the sender"


class LastRoleHolderError(IdentityError):
    code = 13
    description = "the role would be left without any holder"


class SelfRegistrationDisabledError(IdentityError):
    code = 14
    description = "self-registration of identities is disabled by the module params"


class RoleUnknownError(IdentityError):
    code = 15
    description = "the role is not one of the defined roles"
