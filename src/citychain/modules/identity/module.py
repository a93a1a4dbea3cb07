"""The identity module's registration record for the application."""

from __future__ import annotations

from citychain.core.module import Module, QueryParam
from citychain.modules.identity import events, genesis, handlers, queries
from citychain.modules.identity.messages import (
    MsgCreateIdentity,
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgRevokeRole,
    MsgRotateKey,
    MsgSuspendIdentity,
)

NAME = "identity"

ADDRESS = QueryParam("address", str, description="the account's address (40 hex)",
                     example="3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50")
DID = QueryParam("did", str, description="the account's DID (instead of address)",
                 example="did:city:" + "3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50")
LIMIT = QueryParam("limit", int, description="page size (1..500, default 100)", example=100)

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
        "key_at": queries.query_key_at,
        "role_holders": queries.query_role_holders,
        "params": queries.query_params,
    },
    provable_queries=frozenset({"account", "key_at", "key_history", "params"}),
    query_params={
        "account": (ADDRESS, DID),
        "key_history": (ADDRESS, DID, QueryParam("start", int, description="first entry index",
                                                 example=0), LIMIT),
        "key_at": (ADDRESS, DID, QueryParam("at_height", int, required=True,
                                            description="the block height the key was in force "
                                                        "at", example=120)),
        "role_holders": (QueryParam("role", str, required=True, description="a role name",
                                    example="citizen"),
                         QueryParam("start_after", str,
                                    description="list holders after this address or DID",
                                    example="3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50"), LIMIT),
        "params": (),
    },
    event_types=frozenset({events.IDENTITY_CREATED, events.KEY_ROTATED, events.ROLE_GRANTED,
                           events.ROLE_REVOKED, events.IDENTITY_SUSPENDED,
                           events.IDENTITY_REINSTATED}),
    init_genesis=genesis.init_genesis,
    export_genesis=genesis.export_genesis,
)
