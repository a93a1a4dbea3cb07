"""The SDK's contracts surface: terms from templates, create a contract, read it (verified when
the client verifies), judge it now, walk and export its audit trail.

Each operation is written once as a generator of requests over the client's own operations
(see :mod:`citychain.client.api`); :class:`Contracts` runs them on a :class:`Client`,
:class:`AsyncContracts` on an :class:`AsyncClient`. The audit export document is built here by
:func:`audit_export_document`, which the gateway's export route uses too, so an export made by
the gateway and one made by the SDK are the same JSON for the same height.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, overload

from citychain.client.api import AsyncClient, Client, Op, QueryResult, SubmittedTx, Wait
from citychain.client.errors import GatewayUnavailableError, NotFoundError, Problem
from citychain.client.wallet import Wallet
from citychain.core.errors import InvalidMessageError
from citychain.modules.contracts.events import CONTRACT_CREATED
from citychain.modules.contracts.messages import MsgCreateContract
from citychain.modules.contracts.templates import TEMPLATES

__all__ = [
    "AUDIT_EXPORT_FORMAT",
    "AUDIT_PAGE_LIMIT",
    "MAX_EXPORT_ENTRIES",
    "AsyncContracts",
    "Contracts",
    "CreatedContract",
    "audit_export_document",
    "contract_id_of",
    "create_contract",
    "terms_from_template",
]

MODULE = "contracts"
AUDIT_EXPORT_FORMAT = "citychain.contracts.audit-export.v1"
AUDIT_PAGE_LIMIT = 500
"""The largest page the audit query gives (its ``limit`` bound)."""
MAX_EXPORT_ENTRIES = 50_000
"""An export stops after this many entries and says so (``truncated``, ``next_after``)."""


# ------------------------------------------------------------------------------ pure
def terms_from_template(name: str, /, **params: Any) -> str:
    """The terms (JSON text for MsgCreateContract) template ``name`` builds from ``params``,
    checked as the chain will check them. No network.

    Raises:
        InvalidMessageError: no such template (``field`` is ``template``), or a parameter is
            missing, unknown or of the wrong type, or the terms fail their checks (``field``
            names the parameter or the terms path).
        ConditionInvalidError: a built condition is refused (a bad feed id, say).
    """
    template = TEMPLATES.get(name)
    if template is None:
        raise InvalidMessageError(f"no contract template {name!r}; templates: "
                                  f"{', '.join(sorted(TEMPLATES))}", field="template")
    return template.terms(params)


def contract_id_of(submitted: SubmittedTx) -> int:
    """The id of the contract a committed MsgCreateContract created (its contract_created
    event).

    Raises:
        ValueError: the tx did not commit successfully or created no contract.
    """
    if submitted.result is None or not submitted.result.ok:
        raise ValueError(f"tx {submitted.hash} did not commit successfully")
    for event in submitted.result.events:
        if event.type == CONTRACT_CREATED and event.attributes.get("contract_id", "").isdigit():
            return int(event.attributes["contract_id"])
    raise ValueError(f"tx {submitted.hash} has no {CONTRACT_CREATED} event")


def audit_export_document(chain_id: str, height: int, contract: Mapping[str, Any],
                          entries: list[dict[str, Any]],
                          next_after: int | None) -> dict[str, Any]:
    """The audit export: the contract record and its audit trail as of block ``height``, in
    one JSON document. ``truncated`` with ``next_after`` when the trail went past
    :data:`MAX_EXPORT_ENTRIES` (continue with the audit query from there)."""
    return {"format": AUDIT_EXPORT_FORMAT, "chain_id": chain_id,
            "contract_id": int(contract["contract_id"]), "height": height,
            "contract": dict(contract), "entry_count": len(entries), "entries": entries,
            "truncated": next_after is not None, "next_after": next_after}


def _not_found(contract_id: int) -> NotFoundError:
    return NotFoundError(Problem(404, 3, "api", "not_found", f"no contract {contract_id}",
                                 field="contract_id"))


def _page(answer: QueryResult) -> tuple[list[dict[str, Any]], int | None]:
    value = answer.value
    try:
        entries = [dict(entry) for entry in value["entries"]]
        after = value["next_after"]
        return entries, None if after is None else int(after)
    except (KeyError, TypeError, ValueError) as exc:
        raise GatewayUnavailableError(f"the gateway's audit answer is not what the API "
                                      f"documents: {exc!r}", status=200) from None


@dataclass(frozen=True)
class CreatedContract:
    """A contract just created: its id and the committed tx."""

    contract_id: int
    tx: SubmittedTx


# ------------------------------------------------------------------------------ operations
class _ContractOps:
    """The contracts operations as generators of requests over a client's operations."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self.ops = client._ops

    def create_op(self, wallet: Wallet, terms: str, memo: str,
                  wait: Wait) -> Op[CreatedContract]:
        message = MsgCreateContract(terms=terms)
        message.validate_basic()
        submitted = yield from self.ops.submit_op(message, wallet, memo=memo, sequence=None,
                                                  wait=wait, raise_on_failure=True)
        return CreatedContract(contract_id_of(submitted), submitted)

    def contract_op(self, contract_id: int, height: int,
                    verify: bool | None) -> Op[QueryResult]:
        answer = yield from self.ops.query_op(MODULE, "contract", {"contract_id": contract_id},
                                              height, verify)
        if answer.value is None:
            raise _not_found(contract_id)
        return answer

    def inspect_op(self, contract_id: int, at_height: int | None,
                   at_time: int | None) -> Op[dict[str, Any]]:
        answer = yield from self.ops.query_op(MODULE, "inspect", {
            "contract_id": contract_id, "at_height": at_height, "at_time": at_time}, 0, False)
        if answer.value is None:
            raise _not_found(contract_id)
        return dict(answer.value)

    def audit_page_op(self, contract_id: int, after: int | None, limit: int,
                      height: int) -> Op[tuple[QueryResult, list[dict[str, Any]], int | None]]:
        answer = yield from self.ops.query_op(MODULE, "audit", {
            "contract_id": contract_id, "after": after, "limit": limit}, height, False)
        if answer.value is None:
            raise _not_found(contract_id)
        entries, next_after = _page(answer)
        return answer, entries, next_after

    def export_op(self, contract_id: int, verify: bool | None) -> Op[dict[str, Any]]:
        chain_id = yield from self.ops.chain_id_op()
        record = yield from self.contract_op(contract_id, 0, verify)
        entries: list[dict[str, Any]] = []
        after: int | None = None
        while True:
            limit = min(AUDIT_PAGE_LIMIT, MAX_EXPORT_ENTRIES - len(entries))
            _, page, after = yield from self.audit_page_op(contract_id, after, limit,
                                                           record.height)
            entries.extend(page)
            if after is None or len(entries) >= MAX_EXPORT_ENTRIES:
                break
        return audit_export_document(chain_id, record.height, record.value, entries, after)


# ------------------------------------------------------------------------------ clients
class Contracts:
    """The contracts operations on a :class:`Client`: ``Contracts(client).contract(7)``."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._ops = _ContractOps(client)

    def create(self, wallet: Wallet, terms: str, *, memo: str = "",
               wait: Wait = "commit") -> CreatedContract:
        """Sign and submit MsgCreateContract with ``terms``; the sender becomes a party that
        has signed. Returns the new contract's id (from its contract_created event).

        Raises:
            InvalidMessageError, ConditionInvalidError: the terms fail their checks.
            TxRejectedError: refused at check. TxFailedError: committed with an error (not a
                party, an unknown DID or denom, a past deadline...: ``codespace``/``code``).
            CommitTimeoutError, GatewayUnavailableError, RateLimitedError: as
                :meth:`Client.submit`.
        """
        return self._client._run(self._ops.create_op(wallet, terms, memo, wait))

    def contract(self, contract_id: int, *, height: int = 0,
                 verify: bool | None = None) -> QueryResult:
        """The contract record (terms, status, escrow and bond balances, every milestone's
        state, the newest amendment); proven key by key when the client verifies
        (``verify=True`` to insist, ``False`` to skip).

        Raises:
            NotFoundError: no such contract (proven absent when verified).
            InvalidRequestError: a bad id. VerificationError: the answer does not verify.
            ValueError, GatewayUnavailableError, RateLimitedError: as :meth:`Client.query`.
        """
        return self._client._run(self._ops.contract_op(contract_id, height, verify))

    def inspect(self, contract_id: int, *, at_height: int | None = None,
                at_time: int | None = None) -> dict[str, Any]:
        """Every open milestone judged as end-block would at block ``at_height`` and time
        ``at_time`` (UNIX s; default: the contract's last check): outcome, why, feeds and
        attestations used, hold left, payout (and each milestone's recorded outcome). Not
        provable (it reads ranges): the gateway's word.

        Raises:
            NotFoundError: no such contract. InvalidRequestError: a bad parameter.
            GatewayUnavailableError, RateLimitedError: as :meth:`Client.query`.
        """
        return self._client._run(self._ops.inspect_op(contract_id, at_height, at_time))

    def audit_trail(self, contract_id: int, *, after: int | None = None,
                    page_size: int = 100) -> Iterator[dict[str, Any]]:
        """The contract's audit trail in order (after sequence number ``after``), fetching page
        after page at the height of the first one; stop iterating whenever you like.

        Raises:
            NotFoundError: no such contract. InvalidRequestError: a bad ``page_size``.
            GatewayUnavailableError, RateLimitedError: as :meth:`Client.query`.
        """
        height = 0
        while True:
            answer, entries, after = self._client._run(
                self._ops.audit_page_op(contract_id, after, page_size, height))
            height = answer.height
            yield from entries
            if after is None:
                return

    def export_audit(self, contract_id: int, *, verify: bool | None = None) -> dict[str, Any]:
        """The audit export document (see :func:`audit_export_document`): the contract record
        (verified when the client verifies) and its whole trail at that record's height, the
        same document ``GET /v1/contracts/{id}/audit/export`` gives.

        Raises:
            NotFoundError, VerificationError, GatewayUnavailableError, RateLimitedError: as
                :meth:`contract`.
        """
        return self._client._run(self._ops.export_op(contract_id, verify))


class AsyncContracts:
    """The contracts operations on an :class:`AsyncClient`; as :class:`Contracts`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._ops = _ContractOps(client)

    async def create(self, wallet: Wallet, terms: str, *, memo: str = "",
                     wait: Wait = "commit") -> CreatedContract:
        """As :meth:`Contracts.create`."""
        return await self._client._run(self._ops.create_op(wallet, terms, memo, wait))

    async def contract(self, contract_id: int, *, height: int = 0,
                       verify: bool | None = None) -> QueryResult:
        """As :meth:`Contracts.contract`."""
        return await self._client._run(self._ops.contract_op(contract_id, height, verify))

    async def inspect(self, contract_id: int, *, at_height: int | None = None,
                      at_time: int | None = None) -> dict[str, Any]:
        """As :meth:`Contracts.inspect`."""
        return await self._client._run(self._ops.inspect_op(contract_id, at_height, at_time))

    async def audit_trail(self, contract_id: int, *, after: int | None = None,
                          page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """As :meth:`Contracts.audit_trail` (an async iterator)."""
        height = 0
        while True:
            answer, entries, after = await self._client._run(
                self._ops.audit_page_op(contract_id, after, page_size, height))
            height = answer.height
            for entry in entries:
                yield entry
            if after is None:
                return

    async def export_audit(self, contract_id: int, *,
                           verify: bool | None = None) -> dict[str, Any]:
        """As :meth:`Contracts.export_audit`."""
        return await self._client._run(self._ops.export_op(contract_id, verify))


@overload
def create_contract(client: Client, wallet: Wallet, terms: str, *, memo: str = "",
                    wait: Wait = "commit") -> CreatedContract: ...
@overload
def create_contract(client: AsyncClient, wallet: Wallet, terms: str, *, memo: str = "",
                    wait: Wait = "commit") -> Awaitable[CreatedContract]: ...
def create_contract(client: Client | AsyncClient, wallet: Wallet, terms: str, *,
                    memo: str = "",
                    wait: Wait = "commit") -> CreatedContract | Awaitable[CreatedContract]:
    """Create a contract with ``terms`` signed by ``wallet`` (awaitable with an
    :class:`AsyncClient`); see :meth:`Contracts.create`.

    Raises:
        As :meth:`Contracts.create`.
    """
    if isinstance(client, AsyncClient):
        return AsyncContracts(client).create(wallet, terms, memo=memo, wait=wait)
    return Contracts(client).create(wallet, terms, memo=memo, wait=wait)
