"""What a module gives the application: handlers, queries, genesis and end-block work.

The application lists modules in a fixed order (never discovered). A module's handlers are pure
functions ``handle_<msg>(view, ctx, msg) -> None``; its queries are pure functions
``query_<name>(view, params) -> plain data`` that read state only through ``view.get`` /
``view.iterate``, so the same function can be re-run by a client over proven key/values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from citychain.core.context import BlockContext, TxContext
from citychain.core.events import Event
from citychain.core.messages import Msg
from citychain.core.query_index import QueryIndex
from citychain.core.state import ReadView, StateView

Handler = Callable[[StateView, TxContext, Any], None]
QueryHandler = Callable[[ReadView, dict[str, Any]], Any]
GenesisInit = Callable[[StateView, BlockContext, Any], None]
GenesisExport = Callable[[ReadView], Any]
EndBlock = Callable[[StateView, BlockContext], list[Event]]


@dataclass(frozen=True, slots=True)
class ValidatorUpdate:
    """A change to the consensus validator set (ABCI ValidatorUpdate): power 0 removes."""

    pubkey: bytes
    power: int


ValidatorUpdatesHook = Callable[[StateView, BlockContext], tuple[ValidatorUpdate, ...]]
GenesisValidators = Callable[[ReadView], tuple[ValidatorUpdate, ...]]


@dataclass(frozen=True, slots=True)
class QueryParam:
    """One parameter of a query, declared for typed API routes, SDK helpers and docs.

    ``kind`` is ``int`` or ``str``: query-string values are converted before the query runs, and
    the pure query function still checks everything itself.
    """

    name: str
    kind: type[int] | type[str]
    required: bool = False
    description: str = ""
    example: int | str | None = None


@dataclass(frozen=True)
class Module:
    """A module's registration record.

    ``handlers`` maps message classes to handlers; ``queries`` maps a query name (the path is
    ``/<module>/<name>``) to a query function; ``provable_queries`` lists the queries that read
    only by ``get`` and so can be proven key by key. ``validator_updates`` (called after every
    module's ``end_block``) returns the block's changes to the consensus validator set, and
    ``genesis_validators`` the set the chain starts with; at most one module provides them.
    ``query_params`` declares each query's parameters and ``event_types`` every event type the
    module emits (the gateway routes and filters by them; the state machine does not use them).
    ``query_indexes`` are node-local lookups its queries read and its handlers never do: each
    node derives them from committed state, outside the app hash (see core.query_index).
    """

    name: str
    handlers: Mapping[type[Msg], Handler]
    queries: Mapping[str, QueryHandler] = field(default_factory=dict)
    provable_queries: frozenset[str] = frozenset()
    query_params: Mapping[str, tuple[QueryParam, ...]] = field(default_factory=dict)
    event_types: frozenset[str] = frozenset()
    init_genesis: GenesisInit | None = None
    export_genesis: GenesisExport | None = None
    end_block: EndBlock | None = None
    validator_updates: ValidatorUpdatesHook | None = None
    genesis_validators: GenesisValidators | None = None
    query_indexes: tuple[QueryIndex, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What the ante handler needs to know about a sender."""

    address: str
    pubkey: bytes
    sequence: int
    suspended: bool
    roles: tuple[str, ...]


class AccountKeeper(Protocol):
    """The identity module's facade the application's ante handler uses."""

    def get_account(self, view: ReadView, address: str) -> AccountInfo | None:
        """Return the sender's account, or None if no account exists for ``address``."""

    def set_sequence(self, view: StateView, address: str, sequence: int) -> None:
        """Store the account's next expected sequence number."""
