"""The one mapping between our typed errors and ABCI result codes.

An ABCI result is ``(code, codespace)`` with code 0 meaning success. Our errors already carry a
stable ``(codespace, code)`` pair with codes >= 1 that is unique per codespace (the registry in
:mod:`citychain.core.errors` refuses duplicates), so the mapping is the identity: ABCI ``code`` is
the error's code and ABCI ``codespace`` its codespace. Clients turn a result back into the error
class with :func:`error_class`. A result that would not survive the trip (code outside uint32, or a
failure claiming code 0) is reported as the redacted internal error instead of being mislabelled.
"""

from __future__ import annotations

from citychain.core.errors import ChainError, InternalError, lookup_error

CODE_OK = 0
MAX_CODE = 2**32 - 1


def abci_code(codespace: str, code: int) -> tuple[int, str]:
    """Return the ABCI ``(code, codespace)`` for one of our results; ``(0, "")`` stays success."""
    if code == CODE_OK and not codespace:
        return CODE_OK, ""
    if not CODE_OK < code <= MAX_CODE:
        return InternalError.code, InternalError.codespace
    return code, codespace


def abci_code_of(error: ChainError | type[ChainError]) -> tuple[int, str]:
    """Return the ABCI ``(code, codespace)`` of an error (class or instance)."""
    return abci_code(error.codespace, error.code)


def error_class(code: int, codespace: str) -> type[ChainError] | None:
    """Return the error class an ABCI result stands for; None for success or an unknown pair."""
    if code == CODE_OK:
        return None
    return lookup_error(codespace, code)
