"""The contracts module's registration record for the application."""

from __future__ import annotations

from citychain.core.module import Module, QueryParam
from citychain.modules.contracts import blocks, events, genesis, handlers, queries
from citychain.modules.contracts.messages import (
    MsgApproveAmendment,
    MsgAttestMilestone,
    MsgCancelContract,
    MsgCreateContract,
    MsgFundContract,
    MsgProposeAmendment,
    MsgSignContract,
)

NAME = "contracts"

CONTRACT_ID = QueryParam("contract_id", int, required=True, description="the contract's id",
                         example=1)
LIMIT = QueryParam("limit", int, description="page size (1..500, default 100)", example=100)

MODULE = Module(
    name=NAME,
    handlers={
        MsgCreateContract: handlers.handle_create_contract,
        MsgSignContract: handlers.handle_sign_contract,
        MsgFundContract: handlers.handle_fund_contract,
        MsgCancelContract: handlers.handle_cancel_contract,
        MsgAttestMilestone: handlers.handle_attest_milestone,
        MsgProposeAmendment: handlers.handle_propose_amendment,
        MsgApproveAmendment: handlers.handle_approve_amendment,
    },
    queries={
        "contract": queries.query_contract,
        "inspect": queries.query_inspect,
        "audit": queries.query_audit,
        "by_party": queries.query_by_party,
        "params": queries.query_params,
    },
    provable_queries=frozenset({"contract", "params"}),
    query_params={
        "contract": (CONTRACT_ID,),
        "inspect": (CONTRACT_ID,
                    QueryParam("at_height", int, description="judge as at this block height "
                               "(default: the contract's last check)", example=120),
                    QueryParam("at_time", int, description="judge as at this block time, UNIX s "
                               "(default: the contract's last check)", example=1767229200)),
        "audit": (CONTRACT_ID,
                  QueryParam("after", int, description="list entries after this sequence "
                             "number (default: from the first)", example=9),
                  LIMIT),
        "by_party": (QueryParam("party", str, required=True,
                                description="the party's DID or address",
                                example="did:city:3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50"),
                     QueryParam("start_after", int, description="list contracts after this id",
                                example=10),
                     LIMIT),
        "params": (),
    },
    event_types=events.EVENT_TYPES,
    init_genesis=genesis.init_genesis,
    export_genesis=genesis.export_genesis,
    end_block=blocks.process_end_block,
)
