"""Every gateway answer that is not a success maps to one exception of the SDK's tree, carrying
the problem's status, codespace, code, field and detail (answers served by httpx.MockTransport)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from citychain.client import (
    ApiError,
    AsyncClient,
    CitychainError,
    Client,
    CommitTimeoutError,
    GatewayUnavailableError,
    InvalidRequestError,
    NotFoundError,
    QueryRejectedError,
    RateLimitedError,
    TxRejectedError,
    VerificationError,
    WalletError,
)
from citychain.client.cometbft import LightVerificationError

TX = b"\x01signed"


def problem(status: int, codespace: str, code: int, field: str = "") -> dict[str, Any]:
    return {"type": f"urn:citychain:error:{codespace}:{code}", "title": "t", "status": status,
            "detail": f"detail {status}", "code": code, "codespace": codespace,
            "field": field, "instance": "/v1/x"}


def serving(status: int, body: Any, headers: dict[str, str] | None = None) -> Client:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={
            "content-type": "application/problem+json", **(headers or {})})

    return Client("http://gateway.test", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(("status", "codespace", "code", "read_error", "submit_error"), [
    (400, "api", 1, InvalidRequestError, InvalidRequestError),
    (400, "api", 2, InvalidRequestError, InvalidRequestError),
    (404, "api", 3, NotFoundError, NotFoundError),
    (422, "bank", 2, QueryRejectedError, TxRejectedError),
    (405, "api", 8, ApiError, ApiError),
])
def test_problems_map_to_api_errors(status: int, codespace: str, code: int,
                                    read_error: type[ApiError],
                                    submit_error: type[ApiError]) -> None:
    body = problem(status, codespace, code, field="amount")
    with serving(status, body) as client, pytest.raises(read_error) as read:
        client.query("bank", "balance", address="ab" * 20, denom="ucity")
    with serving(status, body) as client, pytest.raises(submit_error) as submit:
        client.submit(TX)
    for caught in (read.value, submit.value):
        assert type(caught) is (read_error if caught is read.value else submit_error)
        assert (caught.status, caught.codespace, caught.code, caught.field, caught.detail) == (
            status, codespace, code, "amount", f"detail {status}")
        assert caught.problem.type == f"urn:citychain:error:{codespace}:{code}"


def test_rate_limited_reads_retry_after() -> None:
    with serving(429, problem(429, "api", 4), {"Retry-After": "3"}) as client, \
            pytest.raises(RateLimitedError) as caught:
        client.status()
    assert caught.value.retry_after == 3.0 and caught.value.code == 4
    with serving(429, problem(429, "api", 4)) as client, \
            pytest.raises(RateLimitedError) as without:
        client.status()
    assert without.value.retry_after is None


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_unavailable_statuses(status: int) -> None:
    with serving(status, problem(status, "api", status - 497)) as client, \
            pytest.raises(GatewayUnavailableError) as read:
        client.status()
    assert type(read.value) is GatewayUnavailableError and read.value.status == status
    assert read.value.problem is not None and read.value.problem.code == status - 497
    with serving(status, problem(status, "api", 7)) as client, \
            pytest.raises(GatewayUnavailableError) as submit:
        client.submit(TX)
    assert isinstance(submit.value, CommitTimeoutError) == (status == 504)


def test_answers_that_are_not_the_api() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy</html>")

    with Client("http://gateway.test", transport=httpx.MockTransport(html)) as client, \
            pytest.raises(GatewayUnavailableError, match="not JSON"):
        client.status()
    with serving(200, {"chain_id": "x"}) as client, \
            pytest.raises(GatewayUnavailableError, match="status"):
        client.status()
    with serving(500, "oops") as client, pytest.raises(ApiError) as caught:
        client.status()
    assert caught.value.status == 500 and caught.value.detail == '"oops"'


def test_connection_refused_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with Client("http://gateway.test", transport=httpx.MockTransport(refuse)) as client, \
            pytest.raises(GatewayUnavailableError, match="ConnectError") as caught:
        client.status()
    assert caught.value.status is None

    async def scenario() -> None:
        async with AsyncClient("http://gateway.test",
                               transport=httpx.MockTransport(refuse)) as client:
            await client.status()

    with pytest.raises(GatewayUnavailableError):
        asyncio.run(scenario())


def test_the_tree() -> None:
    for error in (ApiError, GatewayUnavailableError, VerificationError, WalletError):
        assert issubclass(error, CitychainError)
    for error in (InvalidRequestError, NotFoundError, TxRejectedError, QueryRejectedError,
                  RateLimitedError):
        assert issubclass(error, ApiError)
    assert issubclass(CommitTimeoutError, GatewayUnavailableError)
    assert issubclass(LightVerificationError, VerificationError)
    from citychain.client.verify import VerificationError as LegacyName

    assert LegacyName is VerificationError
