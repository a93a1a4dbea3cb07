"""The validators module's registration record for the application."""

from __future__ import annotations

from citychain.core.module import Module
from citychain.modules.validators import blocks, genesis, handlers, queries
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
    init_genesis=genesis.init_genesis,
    export_genesis=genesis.export_genesis,
    end_block=blocks.process_end_block,
    validator_updates=blocks.process_validator_updates,
    genesis_validators=blocks.genesis_validators,
)
