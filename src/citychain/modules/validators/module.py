"""The validators module's registration record for the application."""

from __future__ import annotations

from citychain.core.module import Module, QueryParam
from citychain.modules.validators import blocks, events, genesis, handlers, queries
from citychain.modules.validators.messages import (
    MsgApproveValidatorChange,
    MsgProposeValidatorChange,
)

NAME = "validators"

MODULE = Module(
    name=NAME,
    handlers={
        MsgProposeValidatorChange: handlers.handle_propose_validator_change,
        MsgApproveValidatorChange: handlers.handle_approve_validator_change,
    },
    queries={
        "validators": queries.query_validators,
        "validator": queries.query_validator,
        "proposal": queries.query_proposal,
        "proposals": queries.query_proposals,
        "params": queries.query_params,
    },
    provable_queries=frozenset({"validator", "proposal", "params"}),
    query_params={
        "validators": (),
        "validator": (QueryParam("pubkey", str, required=True,
                                 description="the validator's Ed25519 key (64 hex)",
                                 example="ab" * 32),),
        "proposal": (QueryParam("id", int, required=True, description="a proposal id",
                                example=1),),
        "proposals": (QueryParam("start_after", int, description="list proposals after this id",
                                 example=1),
                      QueryParam("limit", int, description="page size (1..500, default 100)",
                                 example=100)),
        "params": (),
    },
    event_types=frozenset({events.VALIDATOR_CHANGE_PROPOSED, events.VALIDATOR_CHANGE_APPROVED,
                           events.VALIDATOR_CHANGE_PASSED, events.VALIDATOR_CHANGE_LAPSED,
                           events.VALIDATOR_CHANGE_FAILED, events.VALIDATOR_SET_CHANGED}),
    init_genesis=genesis.init_genesis,
    export_genesis=genesis.export_genesis,
    end_block=blocks.process_end_block,
    validator_updates=blocks.process_validator_updates,
    genesis_validators=blocks.genesis_validators,
)
