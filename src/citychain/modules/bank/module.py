"""The bank module's registration record for the application."""

from __future__ import annotations

from citychain.core.module import Module, QueryParam
from citychain.modules.bank import events, genesis, handlers, queries
from citychain.modules.bank.messages import MsgBurn, MsgCreateDenom, MsgMint, MsgTransfer

NAME = "bank"

ADDRESS = QueryParam("address", str, description="the account's address (40 hex)",
                     example="3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50")
DID = QueryParam("did", str, description="the account's DID (instead of address)",
                 example="did:city:" + "3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50")
LIMIT = QueryParam("limit", int, description="page size (1..500, default 100)", example=100)
DENOM = QueryParam("denom", str, required=True, description="a denomination", example="ucity")
OWNER = QueryParam("owner", str, required=True,
                   description="the module that owns the escrow (1-64 printable ASCII)",
                   example="contracts")
ESCROW_ID = QueryParam("escrow_id", str, required=True,
                       description="the escrow's id within its owner (1-64 printable ASCII)",
                       example="c/17")

MODULE = Module(
    name=NAME,
    handlers={
        MsgCreateDenom: handlers.handle_create_denom,
        MsgMint: handlers.handle_mint,
        MsgBurn: handlers.handle_burn,
        MsgTransfer: handlers.handle_transfer,
    },
    queries={
        "balance": queries.query_balance,
        "balances": queries.query_balances,
        "supply": queries.query_supply,
        "denoms": queries.query_denoms,
        "params": queries.query_params,
        "escrow": queries.query_escrow,
    },
    provable_queries=frozenset({"balance", "supply", "params"}),
    query_params={
        "balance": (ADDRESS, DID, DENOM),
        "balances": (ADDRESS, DID),
        "supply": (DENOM,),
        "denoms": (QueryParam("start_after", str, description="list denoms after this one",
                              example="ucity"), LIMIT),
        "params": (),
        "escrow": (OWNER, ESCROW_ID),
    },
    event_types=events.EVENT_TYPES,
    init_genesis=genesis.init_genesis,
    export_genesis=genesis.export_genesis,
)
