"""The identity module's registration record for the application."""

from __future__ import annotations

from citychain.core.module import Module
from citychain.modules.identity import genesis, handlers, queries
from citychain.modules.identity.messages import (
    MsgCreateIdentity,
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgRevokeRole,
    MsgRotateKey,
    MsgSuspendIdentity,
)

NAME = "identity"

MODULE = Module(
    name=NAME,
    handlers={
        MsgCreateIdentity: handlers.handle_create_identity,
        MsgRotateKey: handlers.handle_rotate_key,
        MsgGrantRole: handlers.handle_grant_role,
        MsgRevokeRole: handlers.handle_revoke_role,
        MsgSuspendIdentity: handlers.handle_suspend_identity,
        MsgReinstateIdentity: handlers.handle_reinstate_identity,
    },
    queries={
        "account": queries.query_account,
        "key_history": queries.query_key_history,
        "role_holders": queries.query_role_holders,
        "params": queries.query_params,
    },
    provable_queries=frozenset({"account", "key_history", "params"}),
    init_genesis=genesis.init_genesis,
    export_genesis=genesis.export_genesis,
)
