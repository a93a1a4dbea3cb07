"""Typed chain errors: a stable (codespace, code) per error class, a registry refusing duplicates.

Every error a transaction, query or block can produce is a subclass of :class:`ChainError`.
The (codespace, code) pair is protocol: it is returned to clients through ABCI, HTTP and the CLI
and must never be reused for another meaning.
"""

from __future__ import annotations

from typing import Any, ClassVar

_REGISTRY: dict[tuple[str, int], type[ChainError]] = {}


class ChainError(Exception):
    """Base of every expected error. Subclasses set ``codespace`` and ``code``.

    ``field`` names the offending input field (dotted path) when there is one; extra keyword
    arguments are kept as typed details (``required``, ``available``...) for clients.
    """

    codespace: ClassVar[str] = "core"
    code: ClassVar[int] = 1
    description: ClassVar[str] = "error"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return  # an abstract codespace base such as ``BankError``
        key = (cls.codespace, cls.code)
        existing = _REGISTRY.get(key)
        # The same class defined again (a module re-imported) may take its code back; any other
        # class may not, even one with the same name in another module.
        if existing is not None and _full_name(existing) != _full_name(cls):
            raise TypeError(
                f"error code {cls.codespace}/{cls.code} of {_full_name(cls)} "
                f"is already used by {_full_name(existing)}"
            )
        _REGISTRY[key] = cls

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """Return the error as plain data for logs, the API and the CLI."""
        data: dict[str, Any] = {
            "codespace": self.codespace,
            "code": self.code,
            "message": self.message,
        }
        if self.field is not None:
            data["field"] = self.field
        if self.details:
            data["details"] = {k: _plain(v) for k, v in sorted(self.details.items())}
        return data


def _full_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def registered_errors() -> dict[tuple[str, int], type[ChainError]]:
    """Return a copy of the (codespace, code) -> error class registry."""
    return dict(_REGISTRY)


def lookup_error(codespace: str, code: int) -> type[ChainError] | None:
    """Return the error class registered for ``(codespace, code)``, if any."""
    return _REGISTRY.get((codespace, code))


class InternalError(ChainError):
    """An unexpected failure inside a transaction; the message is redacted."""

    codespace = "core"
    code = 1
    description = "internal error"


class DecodeError(ChainError):
    codespace = "core"
    code = 2
    description = "bytes are not a valid canonical encoding"


class NonCanonicalError(ChainError):
    codespace = "core"
    code = 3
    description = "bytes decode but are not in canonical form"


class TxTooLargeError(ChainError):
    codespace = "core"
    code = 4
    description = "transaction exceeds the maximum size"


class InvalidTxError(ChainError):
    codespace = "core"
    code = 5
    description = "transaction envelope is malformed"


class UnknownMessageError(ChainError):
    codespace = "core"
    code = 6
    description = "message type is not registered"


class InvalidMessageError(ChainError):
    codespace = "core"
    code = 7
    description = "message fails stateless validation"


class SignatureInvalidError(ChainError):
    codespace = "core"
    code = 8
    description = "signature does not verify"


class WrongChainIdError(ChainError):
    codespace = "core"
    code = 9
    description = "transaction was signed for another chain"


class SequenceStaleError(ChainError):
    codespace = "core"
    code = 10
    description = "sequence number already used"


class SequenceFutureError(ChainError):
    codespace = "core"
    code = 11
    description = "sequence number is ahead of the account"


class UnknownAccountError(ChainError):
    codespace = "core"
    code = 12
    description = "sender has no account"


class AccountSuspendedError(ChainError):
    codespace = "core"
    code = 13
    description = "sender account is suspended"


class RoleRequiredError(ChainError):
    codespace = "core"
    code = 14
    description = "sender lacks the role the message requires"


class PubkeyMismatchError(ChainError):
    codespace = "core"
    code = 15
    description = "public key in the transaction is not the account's key"


class UnknownQueryError(ChainError):
    codespace = "core"
    code = 16
    description = "query path is not registered"


class InvalidQueryError(ChainError):
    codespace = "core"
    code = 17
    description = "query parameters are invalid"


class HeightNotAvailableError(ChainError):
    codespace = "core"
    code = 18
    description = "the requested height is not retained"


class NotProvableError(ChainError):
    codespace = "core"
    code = 19
    description = "the query cannot be proven key by key"


class InvalidGenesisError(ChainError):
    codespace = "core"
    code = 20
    description = "genesis document is invalid"


class MempoolFullError(ChainError):
    codespace = "core"
    code = 21
    description = "mempool is full"


class DuplicateTxError(ChainError):
    codespace = "core"
    code = 22
    description = "transaction is already in the mempool or committed"
