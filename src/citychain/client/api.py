"""Clients of the HTTP gateway: :class:`Client` (sync, httpx.Client) and :class:`AsyncClient`.

Built with ``trusted_genesis=`` (the chain's genesis document or its path, obtained out of band:
never from the gateway being checked), a client asks every query with ``prove=true`` and checks
the answer with :class:`~citychain.client.light.LightVerifier`, raising a
:class:`~citychain.client.errors.VerificationError` on any mismatch. Without it, answers are the
gateway's word, unverified. Every problem+json answer becomes an exception of the tree in
:mod:`citychain.client.errors`.

Each operation is written once, as a generator that yields the HTTP requests it needs and receives
their JSON; the sync and async clients only differ in how they send them.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from citychain.client.builders import TxBuilder, known_modules
from citychain.client.errors import (
    ApiError,
    CommitTimeoutError,
    GatewayUnavailableError,
    InvalidRequestError,
    NotFoundError,
    Problem,
    QueryRejectedError,
    RateLimitedError,
    TxFailedError,
    TxRejectedError,
)
from citychain.client.events import ChainEvent, aiter_events, event_filter, iter_events
from citychain.client.light import LightVerifier
from citychain.client.wallet import Wallet
from citychain.core.crypto import address_from_did
from citychain.core.messages import Msg
from citychain.core.module import Module

__all__ = [
    "Account",
    "AsyncClient",
    "Block",
    "Client",
    "CommittedTx",
    "QueryResult",
    "Status",
    "SubmittedTx",
    "TxEvent",
    "TxResult",
]

T = TypeVar("T")
Wait = Literal["check", "commit"]
DEFAULT_TIMEOUT = 45.0
"""Seconds per request: more than the gateway's default commit timeout (30 s)."""


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Status:
    chain_id: str
    driver: str
    latest_height: int
    latest_block_hash: str
    latest_app_hash: str
    latest_block_time: str
    mempool_size: int


@dataclass(frozen=True)
class TxEvent:
    type: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class TxResult:
    """A check or execution result: ``code`` 0 is success; else ``codespace``/``code`` name the
    chain error and ``field`` the offending field."""

    code: int
    codespace: str
    log: str
    field: str
    events: tuple[TxEvent, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class SubmittedTx:
    """What submitting gave: the check result and, when waited for, the block and execution
    result (``result.code`` non-zero: committed but failed; its sequence was used)."""

    hash: str
    check: TxResult
    height: int | None = None
    result: TxResult | None = None

    @property
    def committed(self) -> bool:
        return self.height is not None and self.result is not None

    @property
    def ok(self) -> bool:
        """Committed and executed successfully."""
        return self.result is not None and self.result.ok


@dataclass(frozen=True)
class CommittedTx:
    hash: str
    height: int
    index: int
    tx: bytes = field(repr=False)
    result: TxResult
    verified: bool
    """The tx's inclusion in block ``height`` was proven (its result code is not)."""


@dataclass(frozen=True)
class Block:
    height: int
    hash: str
    time: str
    proposer: str
    app_hash: str
    num_txs: int
    tx_hashes: tuple[str, ...]


@dataclass(frozen=True)
class QueryResult:
    """A query's answer as JSON data (bytes as hex) at ``height``; ``verified`` when it was
    proven against the trusted genesis."""

    module: str
    name: str
    height: int
    value: Any
    verified: bool


@dataclass(frozen=True)
class Account:
    """An identity's account (None if it has none) and balances (denom -> amount).

    Verified: the account record and each listed balance are proven at ``height``; that the list
    of denoms is complete cannot be proven (it is a range read)."""

    address: str
    did: str
    height: int
    account: dict[str, Any] | None
    balances: dict[str, int]
    verified: bool

    @property
    def sequence(self) -> int:
        """The sequence number the account's next tx must carry (0 for a new key)."""
        return int((self.account or {}).get("sequence") or 0)


# ------------------------------------------------------------------------------ requests
@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    submit: bool = False
    """A submit: a 422 is a refused tx, a 504 a commit timeout."""


Op = Generator[_Request, Any, T]


def _malformed(what: str, exc: BaseException | str) -> GatewayUnavailableError:
    return GatewayUnavailableError(f"the gateway's {what} answer is not what the API documents: "
                                   f"{exc!r}", status=200)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _error_for(request: _Request, response: httpx.Response) -> Exception:
    """The exception for a non-2xx answer."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict) or "code" not in body:
        body = {"detail": response.text[:200], "title": response.reason_phrase}
    problem = Problem.from_value(body, response.status_code)
    status = response.status_code
    if status == 400:
        return InvalidRequestError(problem)
    if status == 404:
        return NotFoundError(problem)
    if status == 422:
        return TxRejectedError(problem) if request.submit else QueryRejectedError(problem)
    if status == 429:
        return RateLimitedError(problem, _retry_after(response))
    if status in (502, 503, 504):
        kind = CommitTimeoutError if status == 504 and request.submit else \
            GatewayUnavailableError
        return kind(f"{status} {problem.codespace}:{problem.code} {problem.title}: "
                    f"{problem.detail}", status=status, problem=problem)
    return ApiError(problem)


def error_for_response(path: str, response: httpx.Response) -> Exception:
    """The exception of the tree for a non-2xx answer of a GET ``path`` (its body read)."""
    return _error_for(_Request("GET", path), response)


def _read(request: _Request, response: httpx.Response) -> Any:
    if not response.is_success:
        raise _error_for(request, response)
    try:
        return response.json()
    except ValueError:
        raise _malformed(request.path, "not JSON") from None


def _transport_error(exc: httpx.HTTPError, base_url: str) -> GatewayUnavailableError:
    return GatewayUnavailableError(f"cannot use the gateway at {base_url}: "
                                   f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------ parsing
def _result(value: Any) -> TxResult:
    events = tuple(TxEvent(str(e["type"]), {str(k): str(v) for k, v in e["attributes"]})
                   for e in value.get("events") or [])
    return TxResult(int(value["code"]), str(value["codespace"]), str(value["log"]),
                    str(value["field"]), events)


def _block(value: Any) -> Block:
    return Block(int(value["height"]), str(value["hash"]), str(value["time"]),
                 str(value["proposer"]), str(value["app_hash"]), int(value["num_txs"]),
                 tuple(str(h) for h in value["tx_hashes"]))


def _parse(what: str, parse: Callable[[Any], T], value: Any) -> T:
    try:
        return parse(value)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _malformed(what, exc) from None


def _address(ref: str) -> str:
    """The address a reference (address or DID) names.

    Raises:
        ValueError: ``ref`` is neither an address nor a did:city DID.
    """
    address = address_from_did(ref) if ref.startswith("did:") else ref.lower()
    if address is None or len(address) != 40 or address.strip("0123456789abcdef"):
        raise ValueError(f"{ref!r} is not an address or a did:city DID")
    return address


# ------------------------------------------------------------------------------ operations
class _Operations:
    """Everything both clients do, as generators of requests (see the module docstring)."""

    def __init__(self, base_url: str, trusted_genesis: Mapping[str, Any] | str | Path | None,
                 modules: Sequence[Module] | None, skipping: bool) -> None:
        self.base_url = base_url.rstrip("/")
        self.modules = list(modules) if modules is not None else known_modules()
        self.verifier: LightVerifier | None = None
        if trusted_genesis is not None:
            self.verifier = LightVerifier(trusted_genesis, modules=self.modules,
                                          skipping=skipping)
        self._chain_id: str | None = self.verifier.chain_id if self.verifier else None
        self._next_sequence: dict[str, int] = {}

    @property
    def verifies(self) -> bool:
        """Whether answers are verified by default (a trusted genesis was given)."""
        return self.verifier is not None

    def _verify(self, verify: bool | None) -> LightVerifier | None:
        if verify is None:
            return self.verifier
        if verify and self.verifier is None:
            raise ValueError("verify=True needs a client built with trusted_genesis=")
        return self.verifier if verify else None

    # -- chain
    def status_op(self) -> Op[Status]:
        body = yield _Request("GET", "/v1/status")
        return _parse("status", lambda v: Status(
            str(v["chain_id"]), str(v["driver"]), int(v["latest_height"]),
            str(v["latest_block_hash"]), str(v["latest_app_hash"]), str(v["latest_block_time"]),
            int(v["mempool_size"])), body)

    def genesis_op(self) -> Op[dict[str, Any]]:
        body = yield _Request("GET", "/v1/genesis")
        if not isinstance(body, dict):
            raise _malformed("genesis", "not an object")
        return body

    def chain_id_op(self) -> Op[str]:
        if self._chain_id is None:
            self._chain_id = (yield from self.status_op()).chain_id
        return self._chain_id

    def block_op(self, height: int | Literal["latest"]) -> Op[Block]:
        body = yield _Request("GET", f"/v1/blocks/{height}")
        return _parse("block", _block, body)

    def blocks_page_op(self, cursor: str | None, limit: int) -> Op[tuple[list[Block], str | None]]:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        body = yield _Request("GET", "/v1/blocks", params=params)
        return _parse("blocks", lambda v: ([_block(b) for b in v["items"]],
                                           None if v["next_cursor"] is None
                                           else str(v["next_cursor"])), body)

    def light_op(self, height: int) -> Op[dict[str, Any]]:
        body = yield _Request("GET", f"/v1/light/{height}")
        if not isinstance(body, dict):
            raise _malformed("light", "not an object")
        return body

    # -- queries
    def query_op(self, module: str, name: str, params: Mapping[str, Any], height: int,
                 verify: bool | None) -> Op[QueryResult]:
        verifier = self._verify(verify)
        wire = {k: v for k, v in sorted(params.items()) if v is not None}
        if height:
            wire["height"] = height
        if verifier is not None:
            wire["prove"] = "true"
        body = yield _Request("GET", f"/v1/query/{quote(module, safe='')}/"
                                     f"{quote(name, safe='')}", params=wire)
        if not isinstance(body, dict):
            raise _malformed("query", "not an object")
        if verifier is not None:
            verifier.verify_query(module, name, params, body, height=height)
        return _parse("query", lambda v: QueryResult(module, name, int(v["height"]), v["value"],
                                                     verifier is not None), body)

    def balance_op(self, ref: str, denom: str, height: int,
                   verify: bool | None) -> Op[int]:
        answer = yield from self.query_op("bank", "balance", {"address": _address(ref),
                                                              "denom": denom}, height, verify)
        return int(_parse("balance", lambda v: v["amount"], answer.value))

    def account_op(self, ref: str, verify: bool | None) -> Op[Account]:
        address = _address(ref)
        verifier = self._verify(verify)
        listed = yield _Request("GET", f"/v1/accounts/{address}")
        balances: dict[str, int] = _parse("account", lambda v: {
            str(b["denom"]): int(b["amount"]) for b in v["balances"]}, listed)
        if verifier is None:
            return _parse("account", lambda v: Account(
                str(v["address"]), str(v["did"]), int(v["height"]), v["account"], balances,
                False), listed)
        proven = yield from self.query_op("identity", "account", {"address": address}, 0, True)
        for denom in sorted(balances):
            balances[denom] = yield from self.balance_op(address, denom, proven.height, True)
        return Account(address, f"did:city:{address}", proven.height, proven.value,
                       {d: a for d, a in balances.items() if a}, True)

    def validators_op(self, verify: bool | None) -> Op[list[dict[str, Any]]]:
        verifier = self._verify(verify)
        body = yield _Request("GET", "/v1/validators")
        listed: list[dict[str, Any]] = _parse("validators",
                                              lambda v: list(v["value"]["validators"]), body)
        if verifier is None:
            return listed
        proven: list[dict[str, Any]] = []
        height = 0
        for item in listed:
            pubkey = _parse("validators", lambda v: str(v["pubkey"]), item)
            answer = yield from self.query_op("validators", "validator", {"pubkey": pubkey},
                                              height, True)
            height = answer.height
            if answer.value is not None:
                proven.append(answer.value)
        return proven

    # -- txs
    def tx_op(self, hash_hex: str, verify: bool | None) -> Op[CommittedTx]:
        verifier = self._verify(verify)
        wanted = hash_hex.lower()
        if len(wanted) != 64 or wanted.strip("0123456789abcdef"):
            raise ValueError(f"a tx hash is 64 hex characters, got {hash_hex!r}")
        body = yield _Request("GET", f"/v1/txs/{wanted}",
                              params={"prove": "true"} if verifier else None)
        if not isinstance(body, dict):
            raise _malformed("tx", "not an object")
        if verifier is not None:
            verifier.verify_tx(wanted, body)
        return _parse("tx", lambda v: CommittedTx(
            str(v["hash"]), int(v["height"]), int(v["index"]), base64.b64decode(v["tx"]),
            _result(v["result"]), verifier is not None), body)

    def submit_op(self, tx: bytes | Msg | Sequence[Msg], wallet: Wallet | None, *, memo: str,
                  sequence: int | None, wait: Wait, raise_on_failure: bool) -> Op[SubmittedTx]:
        signed_by: tuple[str, int] | None = None
        if isinstance(tx, (bytes, bytearray)):
            raw = bytes(tx)
        else:
            messages = [tx] if isinstance(tx, Msg) else list(tx)
            if wallet is None:
                raise ValueError("submitting messages needs a wallet to sign them")
            chain_id = yield from self.chain_id_op()
            if sequence is None:  # not trust-critical: a wrong one only gets the tx refused
                account = yield from self.query_op("identity", "account",
                                                   {"address": wallet.address}, 0, False)
                found = int((account.value or {}).get("sequence") or 0)
                sequence = max(found, self._next_sequence.get(wallet.address, 0))
            raw = TxBuilder(chain_id, self.modules).sign(wallet, sequence, *messages, memo=memo)
            signed_by = (wallet.address, sequence)
        body = yield _Request("POST", "/v1/txs", json={
            "tx": base64.b64encode(raw).decode(), "wait": wait}, submit=True)
        submitted: SubmittedTx = _parse("submit", lambda v: SubmittedTx(
            str(v["hash"]), _result(v["check"]),
            None if v.get("height") is None else int(v["height"]),
            None if v.get("result") is None else _result(v["result"])), body)
        if signed_by is not None and submitted.check.ok:
            address, used = signed_by
            self._next_sequence[address] = max(self._next_sequence.get(address, 0), used + 1)
        if raise_on_failure and submitted.result is not None and not submitted.result.ok:
            result = submitted.result
            raise TxFailedError(submitted.hash, submitted.height or 0, result.code,
                                result.codespace, result.log, result.field)
        return submitted


def _advance(op: Op[Any], body: Any) -> tuple[bool, Any]:
    """Resume ``op`` with ``body`` (None to start it): (False, its next request) or (True, its
    result)."""
    try:
        return False, op.send(body)
    except StopIteration as stop:
        return True, stop.value


# ------------------------------------------------------------------------------ sync
class Client:
    """A synchronous client of one gateway (see the module docstring).

    ``trusted_genesis``: a genesis dict or JSON path obtained out of band; with it every query
    and (by default) every ``tx()`` is verified. ``skipping``: on CometBFT, verify headers with
    CometBFT's skipping verification instead of one by one (see
    :class:`~citychain.client.light.LightVerifier`). ``transport``: an httpx transport (tests,
    proxies). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, base_url: str, *,
                 trusted_genesis: Mapping[str, Any] | str | Path | None = None,
                 modules: Sequence[Module] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None,
                 headers: Mapping[str, str] | None = None, skipping: bool = False) -> None:
        self._ops = _Operations(base_url, trusted_genesis, modules, skipping)
        self._http = httpx.Client(base_url=self._ops.base_url, timeout=timeout,
                                  transport=transport, headers=dict(headers or {}))
        if self._ops.verifier is not None:
            self._ops.verifier.fetch_light = lambda height: self._run(self._ops.light_op(height))

    @property
    def base_url(self) -> str:
        return self._ops.base_url

    @property
    def verifies(self) -> bool:
        """Whether answers are verified (the client has a trusted genesis)."""
        return self._ops.verifies

    @property
    def verifier(self) -> LightVerifier | None:
        return self._ops.verifier

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, request: _Request) -> Any:
        try:
            response = self._http.request(request.method, request.path, params=request.params,
                                          json=request.json)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from None
        return _read(request, response)

    def _run(self, op: Op[T]) -> T:
        done, step = _advance(op, None)
        while not done:
            done, step = _advance(op, self._send(step))
        result: T = step
        return result

    # -- chain
    def status(self) -> Status:
        """The chain id, driver, latest height and hashes, mempool size.

        Raises:
            GatewayUnavailableError: the gateway or its node cannot be used.
            RateLimitedError: over the rate limit.
        """
        return self._run(self._ops.status_op())

    def genesis(self) -> dict[str, Any]:
        """The node's genesis document (for a verifying client, get it out of band instead).

        Raises:
            GatewayUnavailableError, RateLimitedError: as :meth:`status`.
        """
        return self._run(self._ops.genesis_op())

    def chain_id(self) -> str:
        """The trusted genesis's chain id, else the gateway's.

        Raises:
            GatewayUnavailableError, RateLimitedError: as :meth:`status`.
        """
        return self._run(self._ops.chain_id_op())

    def block(self, height: int | Literal["latest"] = "latest") -> Block:
        """One committed block.

        Raises:
            NotFoundError: above the tip. InvalidRequestError: not a height.
            GatewayUnavailableError, RateLimitedError: as :meth:`status`.
        """
        return self._run(self._ops.block_op(height))

    def blocks(self, *, limit: int = 20, cursor: str | None = None) -> Iterator[Block]:
        """Committed blocks newest first, fetching page after page (``limit`` per page) until
        the first block; stop iterating whenever you like.

        Raises:
            InvalidRequestError: a bad cursor or limit.
            GatewayUnavailableError, RateLimitedError: as :meth:`status`.
        """
        while True:
            page, cursor = self._run(self._ops.blocks_page_op(cursor, limit))
            yield from page
            if cursor is None:
                return

    def events(self, *, module: str | Sequence[str] | None = None,
               type: str | Sequence[str] | None = None, account: str | None = None,
               from_height: int | None = None, after: str | None = None,
               reconnect: bool = True, max_retries: int | None = None) -> Iterator[ChainEvent]:
        """Follow the chain's events (filters: module(s), event type(s), an account's address or
        DID); start ``after`` an event id, at ``from_height``, or (neither) at the next block.
        Reconnects after a drop from the last event received: each event once, in order.

        Raises:
            InvalidRequestError: a bad filter or start (``field`` names it).
            GatewayUnavailableError: the stream cannot be (re)opened (after ``max_retries``
                consecutive failures; None: keep trying).
        """
        return iter_events(self._http, event_filter(module, type, account, from_height, after),
                           reconnect=reconnect, max_retries=max_retries)

    # -- reads
    def query(self, module: str, name: str, /, *, height: int = 0, verify: bool | None = None,
              **params: Any) -> QueryResult:
        """Run query ``module/name`` with ``params`` at ``height`` (0: latest). Verified when
        the client has a trusted genesis (``verify=False`` to skip, ``True`` to insist).

        Raises:
            InvalidRequestError: a bad parameter (``field`` names it), or a proof asked for a
                query that reads a range (``api:2``).
            NotFoundError: no such query. QueryRejectedError: the chain refused it.
            VerificationError: (a typed subclass) the answer does not verify.
            ValueError: ``verify=True`` without a trusted genesis.
            GatewayUnavailableError, RateLimitedError: as :meth:`status`.
        """
        return self._run(self._ops.query_op(module, name, params, height, verify))

    def account(self, ref: str, *, verify: bool | None = None) -> Account:
        """The account and balances of an address or DID (verified: see :class:`Account`).

        Raises:
            ValueError: ``ref`` is not an address or DID.
            VerificationError, GatewayUnavailableError, RateLimitedError: as :meth:`query`.
        """
        return self._run(self._ops.account_op(ref, verify))

    def balance(self, ref: str, denom: str, *, height: int = 0,
                verify: bool | None = None) -> int:
        """The balance of ``denom`` (smallest unit) held by an address or DID.

        Raises:
            ValueError: ``ref`` is not an address or DID.
            InvalidRequestError, VerificationError, GatewayUnavailableError, RateLimitedError:
                as :meth:`query`.
        """
        return self._run(self._ops.balance_op(ref, denom, height, verify))

    def validators(self, *, verify: bool | None = None) -> list[dict[str, Any]]:
        """The validator set as the validators module holds it. Verified: each listed validator
        is proven (that the list is complete cannot be: it is a range read).

        Raises:
            VerificationError, GatewayUnavailableError, RateLimitedError: as :meth:`query`.
        """
        return self._run(self._ops.validators_op(verify))

    # -- txs
    def tx(self, hash_hex: str, *, verify: bool | None = None) -> CommittedTx:
        """A committed tx; verified (inclusion in its block) when the client has a trusted
        genesis.

        Raises:
            ValueError: not a 64-hex hash, or ``verify=True`` without a trusted genesis.
            NotFoundError: no committed tx with that hash.
            VerificationError, GatewayUnavailableError, RateLimitedError: as :meth:`query`.
        """
        return self._run(self._ops.tx_op(hash_hex, verify))

    def submit(self, tx: bytes | Msg | Sequence[Msg], wallet: Wallet | None = None, *,
               memo: str = "", sequence: int | None = None, wait: Wait = "commit",
               raise_on_failure: bool = False) -> SubmittedTx:
        """Submit a signed tx (bytes), or sign ``tx`` (messages) with ``wallet`` first at the
        account's next sequence (fetched, verified when the client verifies, unless given).
        Waits until the block commits unless ``wait="check"``. The sequence is read unverified
        (a wrong one only gets the tx refused) and remembered for the next tx of the wallet.

        Raises:
            ValueError: messages without a wallet.
            InvalidMessageError: a message fails its stateless validation.
            TxRejectedError: the node refused the tx at check (422; ``code``/``field``).
            TxFailedError: with ``raise_on_failure``, the tx committed with a non-zero code.
            CommitTimeoutError: not committed in the gateway's time (it may still commit).
            InvalidRequestError, GatewayUnavailableError, RateLimitedError: as :meth:`query`.
        """
        return self._run(self._ops.submit_op(tx, wallet, memo=memo, sequence=sequence,
                                             wait=wait, raise_on_failure=raise_on_failure))


# ------------------------------------------------------------------------------ async
class AsyncClient:
    """The asynchronous twin of :class:`Client` (httpx.AsyncClient); same methods, awaited.

    A CometBFT verification may need headers it has not seen: it runs in a worker thread that
    fetches them through this client's event loop.
    """

    def __init__(self, base_url: str, *,
                 trusted_genesis: Mapping[str, Any] | str | Path | None = None,
                 modules: Sequence[Module] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None,
                 headers: Mapping[str, str] | None = None, skipping: bool = False) -> None:
        self._ops = _Operations(base_url, trusted_genesis, modules, skipping)
        self._http = httpx.AsyncClient(base_url=self._ops.base_url, timeout=timeout,
                                       transport=transport, headers=dict(headers or {}))
        self._loop: asyncio.AbstractEventLoop | None = None
        if self._ops.verifier is not None:
            self._ops.verifier.fetch_light = self._fetch_light_from_thread

    @property
    def base_url(self) -> str:
        return self._ops.base_url

    @property
    def verifies(self) -> bool:
        return self._ops.verifies

    @property
    def verifier(self) -> LightVerifier | None:
        return self._ops.verifier

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, request: _Request) -> Any:
        try:
            response = await self._http.request(request.method, request.path,
                                                params=request.params, json=request.json)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from None
        return _read(request, response)

    def _fetch_light_from_thread(self, height: int) -> dict[str, Any]:
        if self._loop is None:
            raise RuntimeError("no running event loop to fetch headers with")
        future = asyncio.run_coroutine_threadsafe(self._run(self._ops.light_op(height),
                                                            threaded=False), self._loop)
        return future.result()

    async def _run(self, op: Op[T], *, threaded: bool = True) -> T:
        self._loop = asyncio.get_running_loop()
        in_thread = threaded and self._ops.verifier is not None and \
            self._ops.verifier.driver == "cometbft"
        done, step = _advance(op, None)
        while not done:
            body = await self._send(step)
            if in_thread:  # StopIteration cannot cross a future: _advance returns it instead
                done, step = await asyncio.to_thread(_advance, op, body)
            else:
                done, step = _advance(op, body)
        result: T = step
        return result

    async def status(self) -> Status:
        """As :meth:`Client.status`."""
        return await self._run(self._ops.status_op())

    async def genesis(self) -> dict[str, Any]:
        """As :meth:`Client.genesis`."""
        return await self._run(self._ops.genesis_op())

    async def chain_id(self) -> str:
        """As :meth:`Client.chain_id`."""
        return await self._run(self._ops.chain_id_op())

    async def block(self, height: int | Literal["latest"] = "latest") -> Block:
        """As :meth:`Client.block`."""
        return await self._run(self._ops.block_op(height))

    async def blocks(self, *, limit: int = 20,
                     cursor: str | None = None) -> AsyncIterator[Block]:
        """As :meth:`Client.blocks` (an async iterator)."""
        while True:
            page, cursor = await self._run(self._ops.blocks_page_op(cursor, limit))
            for block in page:
                yield block
            if cursor is None:
                return

    def events(self, *, module: str | Sequence[str] | None = None,
               type: str | Sequence[str] | None = None, account: str | None = None,
               from_height: int | None = None, after: str | None = None,
               reconnect: bool = True,
               max_retries: int | None = None) -> AsyncIterator[ChainEvent]:
        """As :meth:`Client.events`, as an async iterator."""
        return aiter_events(self._http, event_filter(module, type, account, from_height, after),
                            reconnect=reconnect, max_retries=max_retries)

    async def query(self, module: str, name: str, /, *, height: int = 0,
                    verify: bool | None = None, **params: Any) -> QueryResult:
        """As :meth:`Client.query`."""
        return await self._run(self._ops.query_op(module, name, params, height, verify))

    async def account(self, ref: str, *, verify: bool | None = None) -> Account:
        """As :meth:`Client.account`."""
        return await self._run(self._ops.account_op(ref, verify))

    async def balance(self, ref: str, denom: str, *, height: int = 0,
                      verify: bool | None = None) -> int:
        """As :meth:`Client.balance`."""
        return await self._run(self._ops.balance_op(ref, denom, height, verify))

    async def validators(self, *, verify: bool | None = None) -> list[dict[str, Any]]:
        """As :meth:`Client.validators`."""
        return await self._run(self._ops.validators_op(verify))

    async def tx(self, hash_hex: str, *, verify: bool | None = None) -> CommittedTx:
        """As :meth:`Client.tx`."""
        return await self._run(self._ops.tx_op(hash_hex, verify))

    async def submit(self, tx: bytes | Msg | Sequence[Msg], wallet: Wallet | None = None, *,
                     memo: str = "", sequence: int | None = None, wait: Wait = "commit",
                     raise_on_failure: bool = False) -> SubmittedTx:
        """As :meth:`Client.submit`."""
        return await self._run(self._ops.submit_op(
            tx, wallet, memo=memo, sequence=sequence, wait=wait,
            raise_on_failure=raise_on_failure))
