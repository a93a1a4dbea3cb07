"""Query routes: one typed route per module query (``/v1/query/<module>/<name>``), with proofs on
request, plus the account and validator-set conveniences."""

from __future__ import annotations

import base64
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from citychain.api.gateway import Gateway, gateway_of
from citychain.api.node import NotFoundError, QueryResult
from citychain.api.problems import Problem, chain_problem
from citychain.api.routes.common import PROBLEMS, jsonable, node_problems
from citychain.api.schemas import AccountAnswer, LightBlock, QueryAnswer, QueryProof
from citychain.core import codec
from citychain.core.crypto import address_from_did, did_from_address
from citychain.core.errors import ChainError, InvalidQueryError
from citychain.core.module import Module, QueryParam

__all__ = ["build_router", "run_query"]

GatewayDep = Annotated[Gateway, Depends(gateway_of)]
COMMON_PARAMS = ("height", "prove")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Integer query parameters are bounded to int64 (what the canonical encoding and CometBFT's
query heights carry); the query functions check their own, narrower bounds."""


async def run_query(gateway: Gateway, module: str, name: str, params: dict[str, Any], *,
                    height: int = 0, prove: bool = False) -> QueryAnswer:
    """Ask the node and shape the answer; with ``prove`` attach reads and the header.

    Raises:
        Problem: the query is refused (400 for bad parameters, 422 otherwise), is not
            provable, or the node cannot answer.
    """
    declared = gateway.module(module)
    if declared is None or name not in declared.queries:
        raise Problem.api("not_found", f"no query {module}/{name}")
    if prove and name not in declared.provable_queries:
        raise Problem.api("not_provable", f"{module}/{name} reads a range of keys; its answer "
                          "cannot be proven key by key", field="prove")
    try:
        data = codec.encode(params) if params else b""
    except ChainError as exc:  # a value the canonical encoding refuses (bounds come first)
        field = (exc.field or "").removeprefix("value.")
        raise Problem.api("invalid_request", f"{field or 'a parameter'}: {exc}",
                          field=field) from None
    with node_problems():
        if prove and height == 0 and gateway.node.driver == "cometbft":
            # CometBFT's header H+1 commits the state after H: answer at the newest H whose
            # committing header exists.
            height = max((await gateway.node.status()).latest_height - 1, 1)
        result = await gateway.node.query(f"/{module}/{name}", data, height=height, prove=prove)
        if result.code != 0:
            status = 400 if (result.codespace, result.code) == (
                InvalidQueryError.codespace, InvalidQueryError.code) else 422
            raise chain_problem(result.codespace, result.code, result.log, result.field,
                                status=status)
        proof = await _proof(gateway, result) if prove else None
    try:
        value = codec.decode(result.value) if result.value else None
    except Exception as exc:
        raise Problem.api("node_error", f"the node's answer does not decode: {exc}") from None
    return QueryAnswer(module=module, query=name, height=result.height, value=jsonable(value),
                       proof=proof)


async def _proof(gateway: Gateway, result: QueryResult) -> QueryProof:
    if result.reads is None:
        raise Problem.api("node_error", "the node sent no proof")
    if gateway.node.driver == "solo":
        if result.solo_signed_header is None and result.height == 0:
            raise Problem.api("not_found", "prove: no block has committed yet, so no signed "
                              "header commits this state; retry after the first block",
                              field="prove")
        if result.solo_signed_header is None:
            raise Problem.api("node_error", "the node sent no signed header")
        light = LightBlock(driver="solo", height=result.height,
                           signed_header=base64.b64encode(result.solo_signed_header).decode())
    else:
        try:
            light = LightBlock(**await gateway.node.light_block(result.height + 1))
        except NotFoundError:
            raise Problem.api("not_found", f"height: header {result.height + 1}, which commits "
                              f"the state after block {result.height}, is not out yet; retry "
                              "in a block, or ask at a lower height", field="height") from None
    return QueryProof(height=result.height, value=base64.b64encode(result.value).decode(),
                      reads=base64.b64encode(result.reads).decode(), light=light)


def _parameter(param: QueryParam) -> inspect.Parameter:
    is_int = param.kind is int
    annotation: Any = Annotated[param.kind | None, Query(
        description=param.description + (" (required)" if param.required else ""),
        examples=[param.example] if param.example is not None else None,
        ge=INT64_MIN if is_int else None, le=INT64_MAX if is_int else None)]
    default = inspect.Parameter.empty if param.required else None  # required in OpenAPI too
    return inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


def _endpoint(module: Module, name: str,
              params: tuple[QueryParam, ...]) -> Callable[..., Awaitable[QueryAnswer]]:
    allowed = {p.name for p in params} | set(COMMON_PARAMS)

    async def endpoint(request: Request, gateway: GatewayDep, height: int = 0,
                       prove: bool = False, **values: Any) -> QueryAnswer:
        for given in sorted(request.query_params.keys()):
            if given not in allowed:
                raise Problem.api("invalid_request", f"unknown query parameter {given!r} for "
                                  f"{module.name}/{name}", field=given)
        for param in params:
            if param.required and values.get(param.name) is None:
                raise Problem.api("invalid_request", f"missing query parameter "
                                  f"{param.name!r}", field=param.name)
        chosen = {k: v for k, v in sorted(values.items()) if v is not None}
        return await run_query(gateway, module.name, name, chosen, height=height, prove=prove)

    base = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Request),
        inspect.Parameter("gateway", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=GatewayDep),
        inspect.Parameter("height", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=(
            Annotated[int, Query(ge=0, le=2**62, description="the state after this block (0: "
                                 "the latest)", examples=[0])])),
        inspect.Parameter("prove", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=(
            Annotated[bool, Query(description="attach Merkle proofs and the header that "
                                  "commits them")])),
    ]
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*base, *(_parameter(p) for p in params)])
    endpoint.__name__ = f"query_{module.name}_{name}"
    return endpoint


def build_router(modules: list[Module]) -> APIRouter:
    """One GET route per declared module query, plus accounts and validators."""
    router = APIRouter(responses=PROBLEMS)
    for module in modules:
        for name, handler in module.queries.items():
            params = tuple(module.query_params.get(name, ()))
            doc = inspect.getdoc(handler) or ""
            provable = name in module.provable_queries
            router.add_api_route(
                f"/v1/query/{module.name}/{name}", _endpoint(module, name, params),
                methods=["GET"], response_model=QueryAnswer, tags=[module.name],
                summary=f"{module.name}: {name}" + ("" if provable else " (not provable)"),
                description=doc.split("\n\nRaises:")[0])
    router.add_api_route("/v1/accounts/{account}", get_account, methods=["GET"],
                         response_model=AccountAnswer, tags=["accounts"],
                         summary="An identity's account and balances")
    router.add_api_route("/v1/validators", get_validators, methods=["GET"],
                         response_model=QueryAnswer, tags=["validators"],
                         summary="The validator set the validators module holds")
    return router


async def get_account(
    gateway: GatewayDep,
    account: Annotated[str, Path(description="an address (40 hex) or a did:city DID",
                                 examples=["did:city:3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50"],
                                 max_length=64)],
) -> AccountAnswer:
    address = address_from_did(account) if account.startswith("did:") else account.lower()
    if address is None or len(address) != 40 or any(c not in "0123456789abcdef"
                                                    for c in address):
        raise Problem.api("invalid_request", f"{account!r} is not an address or a did:city DID",
                          field="account")
    identity = await run_query(gateway, "identity", "account", {"address": address})
    balances = await run_query(gateway, "bank", "balances", {"address": address},
                               height=identity.height)
    return AccountAnswer(address=address, did=did_from_address(address), height=identity.height,
                         account=identity.value,
                         balances=(balances.value or {}).get("balances", []))


async def get_validators(gateway: GatewayDep) -> QueryAnswer:
    return await run_query(gateway, "validators", "validators", {})
