"""The bank module's registration record for the application."""

from __future__ import annotations

from citychain.core.module import Module
from citychain.modules.bank import genesis, handlers, queries
from citychain.modules.bank.messages import MsgBurn, MsgCreateDenom, MsgMint, MsgTransfer

NAME = "bank"

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
    },
    provable_queries=frozenset({"balance", "supply", "params"}),
    init_genesis=genesis.init_genesis,
    export_genesis=genesis.export_genesis,
)
