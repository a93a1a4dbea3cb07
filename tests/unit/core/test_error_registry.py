"""Typed errors: stable (codespace, code) pairs, a registry that refuses reuse, plain-data form."""

from __future__ import annotations

import pytest

from citychain.core import errors
from citychain.core.errors import (
    ChainError,
    DecodeError,
    InvalidMessageError,
    TxTooLargeError,
    lookup_error,
    registered_errors,
)

# The (codespace, code) pairs are protocol: clients, ABCI results and stored tx results carry
# them. This table may only grow; a changed line breaks every client.
CORE_CODES = {
    "InternalError": 1,
    "DecodeError": 2,
    "NonCanonicalError": 3,
    "TxTooLargeError": 4,
    "InvalidTxError": 5,
    "UnknownMessageError": 6,
    "InvalidMessageError": 7,
    "SignatureInvalidError": 8,
    "WrongChainIdError": 9,
    "SequenceStaleError": 10,
    "SequenceFutureError": 11,
    "UnknownAccountError": 12,
    "AccountSuspendedError": 13,
    "RoleRequiredError": 14,
    "PubkeyMismatchError": 15,
    "UnknownQueryError": 16,
    "InvalidQueryError": 17,
    "HeightNotAvailableError": 18,
    "NotProvableError": 19,
    "InvalidGenesisError": 20,
    "MempoolFullError": 21,
    "DuplicateTxError": 22,
}


@pytest.mark.parametrize(("name", "code"), sorted(CORE_CODES.items(), key=lambda item: item[1]))
def test_core_codes_are_stable(name: str, code: int) -> None:
    cls = getattr(errors, name)
    assert (cls.codespace, cls.code) == ("core", code)
    assert lookup_error("core", code) is cls
    assert cls.description


def test_every_core_code_is_pinned() -> None:
    core = {cls.__name__: code for (space, code), cls in registered_errors().items()
            if space == "core" and cls.__module__ == errors.__name__}
    assert core == CORE_CODES


def test_invalid_duplicate_code_in_the_same_codespace() -> None:
    with pytest.raises(TypeError, match=r"error code core/2 of .*SecondDecodeError is already "
                                        r"used by citychain\.core\.errors\.DecodeError"):
        class SecondDecodeError(ChainError):
            codespace = "core"
            code = 2
    assert lookup_error("core", 2) is DecodeError


def test_invalid_duplicate_code_from_a_class_with_the_same_name_elsewhere() -> None:
    # Same class name, another module: still another meaning for the same code.
    namespace = {"__module__": "citychain.modules.elsewhere.errors", "codespace": "core",
                 "code": 2}
    with pytest.raises(TypeError, match=r"already used by citychain\.core\.errors\.DecodeError"):
        type("DecodeError", (ChainError,), namespace)
    assert lookup_error("core", 2) is DecodeError


def test_the_same_class_defined_again_keeps_its_code() -> None:
    # A module imported twice (importlib.reload) defines the same class again.
    namespace = {"__module__": __name__, "__qualname__": "ReloadedError",
                 "codespace": "test-reload", "code": 1}
    first = type("ReloadedError", (ChainError,), dict(namespace))
    second = type("ReloadedError", (ChainError,), dict(namespace))
    assert lookup_error("test-reload", 1) is second is not first


def test_codespace_base_without_code_is_not_registered() -> None:
    class ExampleError(ChainError):
        codespace = "test-example"

    class ExampleMissingError(ExampleError):
        code = 1

    class ExampleFullError(ExampleError):
        code = 2

    assert lookup_error("test-example", 1) is ExampleMissingError
    assert lookup_error("test-example", 2) is ExampleFullError
    assert ExampleError not in registered_errors().values()
    # a code is unique within its codespace only
    assert lookup_error("core", 1) is errors.InternalError


def test_registered_errors_is_a_copy() -> None:
    copy = registered_errors()
    copy.clear()
    assert lookup_error("core", 2) is DecodeError
    assert lookup_error("core", 9999) is None
    assert lookup_error("no-such-codespace", 1) is None


def test_to_dict_minimal() -> None:
    error = DecodeError("bytes are broken")
    assert error.to_dict() == {"codespace": "core", "code": 2, "message": "bytes are broken"}
    assert str(error) == error.message == "bytes are broken"
    assert error.field is None
    assert error.details == {}


def test_to_dict_with_field_and_details() -> None:
    error = TxTooLargeError("too big", field="tx", size=70000, limit=65536)
    assert error.to_dict() == {
        "codespace": "core", "code": 4, "message": "too big", "field": "tx",
        "details": {"limit": 65536, "size": 70000},
    }
    assert list(error.to_dict()["details"]) == ["limit", "size"]  # sorted


def test_to_dict_details_are_plain_data() -> None:
    error = InvalidMessageError("bad", field="owners", got=b"\x01\xff", items=[b"\x00", "a", 3],
                                pair=(b"\x02", 1))
    assert error.to_dict()["details"] == {"got": "01ff", "items": ["00", "a", 3],
                                          "pair": ["02", 1]}


def test_errors_are_exceptions_and_chain_errors() -> None:
    with pytest.raises(ChainError) as info:
        raise InvalidMessageError("amount must be positive", field="amount")
    assert isinstance(info.value, Exception)
    assert info.value.field == "amount"
