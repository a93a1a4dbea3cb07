"""Contracts routes beyond the generated queries: the templates and the terms they build, and an
auditor's export of a contract's record and whole audit trail.

The contract, inspect, audit and by_party queries themselves are the generated
``/v1/query/contracts/<name>`` routes; the export reads through the same query path.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Response
from pydantic import BaseModel, ConfigDict

from citychain.api.gateway import Gateway, gateway_of
from citychain.api.problems import Problem, chain_problem
from citychain.api.routes.common import PROBLEMS
from citychain.api.routes.queries import run_query
from citychain.client.contracts import (
    AUDIT_PAGE_LIMIT,
    MAX_EXPORT_ENTRIES,
    audit_export_document,
)
from citychain.core.errors import ChainError
from citychain.modules.contracts.templates import TEMPLATES, Template, TemplateParam

__all__ = ["AuditExport", "TemplateAnswer", "TemplateParamAnswer", "TermsAnswer", "router"]

router = APIRouter(tags=["contracts"], responses=PROBLEMS)

GatewayDep = Annotated[Gateway, Depends(gateway_of)]
DID = "did:city:3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50"
PAYEE = "did:city:8b0c2d4e6f8a0b1c2d3e4f503f2a9c1b7e5d4a6f"
ESCROW_PARAMS = {"payer": DID, "payee": PAYEE, "amount": 250_000, "deadline": 1_798_761_600}
ESCROW_TERMS = {
    "check_every_blocks": 10, "denom": "ucity",
    "milestones": [{"amount": 250_000, "condition": '"payer" in attestations',
                    "deadline": 1_798_761_600, "name": "release"}],
    "parties": [{"did": DID, "role": "payer"}, {"did": PAYEE, "role": "payee"}],
    "template": "escrow", "terms_hash": "", "title": "Escrow"}


def _example(value: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [value]})


class TemplateParamAnswer(BaseModel):
    model_config = _example({"name": "amount", "kind": "int",
                             "description": "the escrowed amount (minor units)",
                             "default": None, "required": True})
    name: str
    kind: Literal["int", "str", "list"]
    description: str
    default: Any = None
    required: bool


class TemplateAnswer(BaseModel):
    model_config = _example({
        "name": "escrow", "summary": "Generic escrow: released to the payee when the condition "
        "holds", "params": [{"name": "amount", "kind": "int",
                             "description": "the escrowed amount (minor units)",
                             "default": None, "required": True}]})
    name: str
    summary: str
    params: list[TemplateParamAnswer]


class TermsAnswer(BaseModel):
    """The terms a template built: the JSON text to put in MsgCreateContract, and parsed."""

    model_config = _example({"terms": json.dumps(ESCROW_TERMS, sort_keys=True,
                                                 separators=(",", ":")),
                             "parsed": ESCROW_TERMS})
    terms: str
    parsed: dict[str, Any]


class AuditExport(BaseModel):
    """A contract's record and its audit trail as of block ``height``, for auditors."""

    model_config = _example({
        "format": "citychain.contracts.audit-export.v1", "chain_id": "citychain-demo",
        "contract_id": 7, "height": 120,
        "contract": {"contract_id": 7, "status": "active", "terms": ESCROW_TERMS},
        "entry_count": 1,
        "entries": [{"seq": 0, "height": 101, "time": 1767229200, "type": "contract_created",
                     "attributes": {"contract_id": "7", "creator": DID}}],
        "truncated": False, "next_after": None})
    format: str
    chain_id: str
    contract_id: int
    height: int
    contract: dict[str, Any]
    entry_count: int
    entries: list[dict[str, Any]]
    truncated: bool
    next_after: int | None


def _param_answer(param: TemplateParam) -> TemplateParamAnswer:
    kind: Literal["int", "str", "list"] = "int" if param.kind is int else (
        "list" if param.kind is list else "str")
    return TemplateParamAnswer(name=param.name, kind=kind, description=param.description,
                               default=param.default, required=param.required)


def _template_answer(template: Template) -> TemplateAnswer:
    return TemplateAnswer(name=template.name, summary=template.summary,
                          params=[_param_answer(p) for p in template.params])


@router.get("/v1/contracts/templates", response_model=list[TemplateAnswer],
            summary="The contract templates and their parameters")
async def list_templates() -> list[TemplateAnswer]:
    return [_template_answer(TEMPLATES[name]) for name in sorted(TEMPLATES)]


@router.post("/v1/contracts/templates/{name}/terms", response_model=TermsAnswer,
             summary="Build a template's terms from parameters (no tx, no chain access)",
             description="The terms are checked as the chain will check MsgCreateContract's; a "
                         "bad parameter is a 400 naming it (the chain error's codespace and "
                         "code).")
async def build_terms(
    name: Annotated[str, Path(description="a template's name", examples=["escrow"],
                              max_length=64)],
    params: Annotated[dict[str, Any], Body(description="the template's parameters by name",
                                           examples=[ESCROW_PARAMS])],
) -> TermsAnswer:
    template = TEMPLATES.get(name)
    if template is None:
        raise Problem.api("not_found", f"no contract template {name!r}; templates: "
                          f"{', '.join(sorted(TEMPLATES))}", field="name")
    try:
        terms = template.terms(params)
    except ChainError as exc:
        raise chain_problem(exc.codespace, exc.code, str(exc), exc.field or "",
                            status=400) from None
    return TermsAnswer(terms=terms, parsed=json.loads(terms))


@router.get("/v1/contracts/{contract_id}/audit/export", response_model=AuditExport,
            summary="A contract's record and whole audit trail, as one document for auditors",
            description=f"Reads the contract and every audit page (at most {MAX_EXPORT_ENTRIES} "
                        "entries; beyond, `truncated` and `next_after` say where to go on with "
                        "the audit query) at one height, through the node's query path. "
                        "Answered as an attachment (Content-Disposition).")
async def export_audit(
    gateway: GatewayDep,
    response: Response,
    contract_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="the contract's id",
                                     examples=[7])],
) -> AuditExport:
    record = await run_query(gateway, "contracts", "contract", {"contract_id": contract_id})
    if record.value is None:
        raise Problem.api("not_found", f"no contract {contract_id}", field="contract_id")
    entries: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"contract_id": contract_id,
                                  "limit": min(AUDIT_PAGE_LIMIT,
                                               MAX_EXPORT_ENTRIES - len(entries))}
        if after is not None:
            params["after"] = after
        page = await run_query(gateway, "contracts", "audit", params, height=record.height)
        if not isinstance(page.value, dict):
            raise Problem.api("node_error", f"contract {contract_id} has no audit trail at "
                              f"height {record.height}")
        entries.extend(page.value["entries"])
        after = page.value["next_after"]
        if after is None or len(entries) >= MAX_EXPORT_ENTRIES:
            break
    document = audit_export_document(gateway.node.chain_id, record.height, record.value,
                                     entries, after)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="contract-{contract_id}-audit-{record.height}.json"')
    return AuditExport(**document)
