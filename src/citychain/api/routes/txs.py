"""Transaction routes: submit a signed tx (answer at check or at commit) and read one back."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from citychain.api.gateway import Gateway, gateway_of
from citychain.api.node import NodeAnswerError
from citychain.api.problems import Problem, chain_problem
from citychain.api.routes.common import PROBLEMS, node_problems
from citychain.api.schemas import LightBlock, ResultAnswer, SubmitTx, TxAnswer, TxSubmitted

router = APIRouter(tags=["txs"], responses={**PROBLEMS, 504: {
    "model": PROBLEMS[400]["model"], "description": "the tx did not commit in time"}})

GatewayDep = Annotated[Gateway, Depends(gateway_of)]


@router.post("/v1/txs", response_model=TxSubmitted, summary="Submit a signed transaction",
             description="A tx the node refuses at check is a 422 problem naming the chain "
                         "error and field. A tx that executed but failed is committed (its "
                         "sequence is used): the answer's `result.code` is non-zero.")
async def submit_tx(body: SubmitTx, gateway: GatewayDep) -> TxSubmitted:
    try:
        raw = base64.b64decode(body.tx, validate=True)
    except (binascii.Error, ValueError):
        raise Problem.api("invalid_request", "tx is not valid base64", field="tx") from None
    if not raw:
        raise Problem.api("invalid_request", "tx is empty", field="tx")
    commit = body.wait == "commit"
    timeout = gateway.settings.commit_timeout
    try:
        with node_problems():
            outcome = await asyncio.wait_for(gateway.node.broadcast(raw, commit=commit),
                                             timeout + 5 if commit else None)
    except TimeoutError:
        raise Problem.api("commit_timeout", f"tx did not commit within {timeout} s; it may "
                          "still commit") from None
    except Problem as problem:
        if "timed out" in problem.detail:
            raise Problem.api("commit_timeout", problem.detail) from None
        raise
    gateway.metrics.observe_check(outcome.check["codespace"], outcome.check["code"])
    if outcome.check["code"] != 0:
        check = outcome.check
        raise chain_problem(check["codespace"], check["code"], check["log"], check["field"])
    return TxSubmitted(hash=outcome.hash, check=ResultAnswer(**outcome.check),
                       height=outcome.height,
                       result=ResultAnswer(**outcome.result) if outcome.result else None)


@router.get("/v1/txs/{hash}", response_model=TxAnswer, summary="A committed transaction")
async def get_tx(
    gateway: GatewayDep,
    hash: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{64}$", description="the tx hash (hex)",
                              examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15"
                                        "b0f00a08"])],
    prove: Annotated[bool, Query(description="include the inclusion proof and the header "
                                             "that commits it")] = False,
) -> TxAnswer:
    with node_problems(f"tx {hash}"):
        try:
            answer = await gateway.node.tx(hash.lower(), prove=prove)
        except NodeAnswerError as exc:
            if "not committed" in str(exc) or "not found" in str(exc):
                raise Problem.api("not_found", f"tx {hash} is not committed",
                                  field="hash") from None
            raise
        light = None
        if prove:
            light = LightBlock(**await gateway.node.light_block(answer["height"]))
    return TxAnswer(hash=answer["hash"], height=answer["height"], index=answer["index"],
                    tx=answer["tx"], result=ResultAnswer(**answer["result"]),
                    proof=answer.get("proof"), light=light)
