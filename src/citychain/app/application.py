"""The citychain application: one object with the ABCI 2.0 method set, used by both drivers.

State handling follows CometBFT's application requirements: a *check* state (check_tx runs on a
branch of it, so a sender's later txs see earlier ones), a *deliver* state (finalize_block), and
query reads at committed heights. finalize_block computes the app hash without persisting;
commit persists state, height and app hash in one store transaction; info reports the last commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from citychain.app.ante import VerifiedTxCache, check_ante
from citychain.app.types import (
    ProvenRead,
    RequestFinalizeBlock,
    RequestInitChain,
    ResponseCommit,
    ResponseFinalizeBlock,
    ResponseInfo,
    ResponseInitChain,
    ResponseQuery,
    TxResult,
    ValidatorUpdate,
)
from citychain.core import codec
from citychain.core.context import BlockContext, TxContext
from citychain.core.errors import (
    ChainError,
    InternalError,
    InvalidGenesisError,
    InvalidQueryError,
    NotProvableError,
    UnknownAccountError,
    UnknownQueryError,
)
from citychain.core.events import Event
from citychain.core.messages import MessageRegistry, Msg
from citychain.core.module import AccountKeeper, Handler, Module, QueryHandler
from citychain.core.query_index import IndexedView
from citychain.core.state import ReadView, StateView, WorkingSet
from citychain.core.tx import MAX_TX_BYTES, Tx, tx_hash
from citychain.store import VersionedStore

log = logging.getLogger(__name__)

APP_VERSION = 1
META_CHAIN_ID = "chain_id"


class Application:
    """The state machine. Thread-safe: every ABCI method runs under one lock."""

    def __init__(self, store: VersionedStore, modules: Sequence[Module],
                 account_keeper: AccountKeeper, *, max_tx_bytes: int = MAX_TX_BYTES) -> None:
        self.store = store
        self.modules = tuple(modules)
        self.account_keeper = account_keeper
        self.max_tx_bytes = max_tx_bytes
        self.registry = MessageRegistry()
        self._handlers: dict[type[Msg], Handler] = {}
        self._queries: dict[str, tuple[QueryHandler, bool]] = {}
        for module in self.modules:
            for msg_type in module.handlers:
                self.registry.register(msg_type)
                self._handlers[msg_type] = module.handlers[msg_type]
            for name in sorted(module.queries):
                path = f"/{module.name}/{name}"
                self._queries[path] = (module.queries[name], name in module.provable_queries)
        self.verified = VerifiedTxCache(self.registry, max_tx_bytes=max_tx_bytes)
        indexes = tuple(index for module in self.modules for index in module.query_indexes)
        self._index_prefixes = tuple(index.prefix for index in indexes)
        rebuilt = store.attach_indexes(indexes, _log_rebuild)
        if rebuilt is not None and store.latest_height:
            log.info("query indexes rebuilt at height %d: %d entries", store.latest_height,
                     rebuilt)
        self._lock = threading.RLock()
        chain_id = store.get_meta(META_CHAIN_ID)
        self.chain_id: str = chain_id.decode() if chain_id is not None else ""
        self._genesis: WorkingSet | None = None
        self._deliver: WorkingSet | None = None
        self._deliver_height = 0
        self._check: StateView = store.begin()

    # ---------------------------------------------------------------- info / genesis
    @property
    def last_height(self) -> int:
        return self.store.latest_height

    @property
    def last_app_hash(self) -> bytes:
        return self.store.latest_root

    def info(self) -> ResponseInfo:
        with self._lock:
            return ResponseInfo(data="citychain", version=_package_version(),
                                app_version=APP_VERSION,
                                last_block_height=self.store.latest_height,
                                last_block_app_hash=self.store.latest_root)

    def init_chain(self, request: RequestInitChain) -> ResponseInitChain:
        """Run every module's genesis into a pending state; the first block commits it.

        Raises:
            InvalidGenesisError: a section is missing, unknown or invalid.
        """
        with self._lock:
            if self.store.latest_height != 0:
                raise InvalidGenesisError("init_chain called on a chain that already has blocks")
            app_state = request.app_state
            if not isinstance(app_state, dict):
                raise InvalidGenesisError("app_state must be a map of module sections",
                                          field="app_state")
            known = {module.name for module in self.modules}
            for name in sorted(app_state):
                if name not in known:
                    raise InvalidGenesisError(f"app_state has a section for unknown module "
                                              f"{name!r}", field=f"app_state.{name}")
            self.chain_id = request.chain_id
            working = self.store.begin()
            ctx = BlockContext(request.chain_id, request.initial_height - 1, request.time_ns)
            for module in self.modules:
                if module.init_genesis is not None:
                    module.init_genesis(working, ctx, app_state.get(module.name, {}))
            self._genesis = working
            self._check = working.branch()
            validators = request.validators
            for module in self.modules:
                if module.genesis_validators is not None:
                    validators = module.genesis_validators(working)
            return ResponseInitChain(app_hash=working.compute_root(), validators=validators)

    def export_genesis(self, height: int | None = None) -> dict[str, Any]:
        """Return every module's genesis section as of ``height`` (default: latest)."""
        with self._lock:
            view = self.store.reader(height)
            return {module.name: module.export_genesis(view) for module in self.modules
                    if module.export_genesis is not None}

    # ---------------------------------------------------------------- mempool
    def check_tx(self, raw: bytes, *, recheck: bool = False) -> TxResult:
        """Decide whether a transaction may enter the mempool.

        Decoding, the signature and the ante checks (chain id, account, key, suspension,
        sequence, role) run on a branch of the check state; on success the branch is kept (so the
        sender's next tx sees the new sequence), on failure nothing changes. Messages run only at
        execution, except a new account's identity creation.
        """
        with self._lock:
            branch = self._check.branch()
            block = BlockContext(self.chain_id, self.store.latest_height + 1, 0)
            result = self._run_tx(branch, block, raw, tx_hash(raw), check=True)
            if result.ok:
                branch.write()
            return result

    # ---------------------------------------------------------------- consensus
    def prepare_proposal(self, txs: Sequence[bytes], max_tx_bytes: int) -> list[bytes]:
        """Keep, in order, the txs that decode and verify, up to ``max_tx_bytes`` in total."""
        with self._lock:
            chosen: list[bytes] = []
            total = 0
            for raw in txs:
                if total + len(raw) > max_tx_bytes:
                    break
                try:
                    self.verified.decode_and_verify(raw, tx_hash(raw))
                except ChainError:
                    continue
                chosen.append(raw)
                total += len(raw)
            return chosen

    def process_proposal(self, txs: Sequence[bytes]) -> bool:
        """Accept a proposed block only if every tx decodes and its signature verifies."""
        with self._lock:
            for raw in txs:
                try:
                    self.verified.decode_and_verify(raw, tx_hash(raw))
                except ChainError:
                    return False
            return True

    def finalize_block(self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock:
        """Execute a decided block and return results and the new app hash (nothing persisted)."""
        with self._lock:
            if not self.chain_id:
                raise RuntimeError("finalize_block before init_chain")
            expected = self.store.latest_height + 1 if self.store.latest_height else None
            if expected is not None and request.height != expected:
                raise RuntimeError(f"finalize_block for height {request.height}, "
                                   f"expected {expected}")
            working = self._genesis if self._genesis is not None else self.store.begin()
            block = BlockContext(self.chain_id, request.height, request.time_ns,
                                 request.proposer)
            results = tuple(self._run_tx(working, block, raw, tx_hash(raw), check=False)
                            for raw in request.txs)
            events: list[Event] = []
            for module in self.modules:
                if module.end_block is not None:
                    branch = working.branch()
                    events.extend(module.end_block(branch, block))
                    branch.write()
            updates: tuple[ValidatorUpdate, ...] = ()
            for module in self.modules:
                if module.validator_updates is not None:
                    branch = working.branch()
                    updates += module.validator_updates(branch, block)
                    branch.write()
            self._deliver = working
            self._deliver_height = request.height
            return ResponseFinalizeBlock(tx_results=results, events=tuple(events),
                                         app_hash=working.compute_root(),
                                         validator_updates=updates)

    def commit(self) -> ResponseCommit:
        """Persist the finalized block's state atomically and reset the check state."""
        with self._lock:
            if self._deliver is None:
                raise RuntimeError("commit without finalize_block")
            self.store.commit(self._deliver, self._deliver_height,
                              meta={META_CHAIN_ID: self.chain_id.encode()})
            self._deliver = None
            self._genesis = None
            self._check = self.store.begin()
            return ResponseCommit(retain_height=0)

    # ---------------------------------------------------------------- execution
    def _run_tx(self, working: StateView, block: BlockContext, raw: bytes, hash_: bytes,
                *, check: bool) -> TxResult:
        try:
            tx = self.verified.decode_and_verify(raw, hash_)
        except ChainError as error:
            return TxResult.from_error(error)
        ante = working.branch()
        try:
            account = check_ante(ante, tx, self.chain_id, self.account_keeper)
        except ChainError as error:
            return TxResult.from_error(error)
        if account is not None:
            self.account_keeper.set_sequence(ante, tx.sender, account.sequence + 1)
            if check:
                # Like Cosmos SDK, check_tx stops after the ante checks: messages run once, at
                # execution. (A newcomer's identity creation does run, so the newcomer's next
                # tx is checked against an account that exists.)
                ante.write()
                return TxResult()
        ctx = TxContext(block, tx.sender, tx.hash)
        messages = ante.branch()
        try:
            self._run_messages(messages, ctx, tx)
            if account is None:
                self._open_new_account(messages, tx)
        except ChainError as error:
            if not check and account is not None:
                ante.write()  # a failed tx still uses its sequence number
            return TxResult.from_error(error)
        except Exception:  # a bug in a handler: deterministic on every node, so redact it
            log.exception("unexpected error in tx %s", tx.hash.hex())
            if not check and account is not None:
                ante.write()
            return TxResult.from_error(InternalError("internal error while executing the tx"))
        messages.write()
        ante.write()
        return TxResult(events=tuple(ctx.events))

    def _run_messages(self, view: StateView, ctx: TxContext, tx: Tx) -> None:
        for msg in tx.messages:
            self._handlers[type(msg)](view, ctx, msg)

    def _open_new_account(self, view: StateView, tx: Tx) -> None:
        if self.account_keeper.get_account(view, tx.sender) is None:
            raise UnknownAccountError(f"the transaction did not create account {tx.sender}",
                                      field="body.sender")
        self.account_keeper.set_sequence(view, tx.sender, 1)

    # ---------------------------------------------------------------- queries
    def query(self, path: str, data: bytes = b"", height: int = 0,
              prove: bool = False) -> ResponseQuery:
        """Answer a query at a committed height (0 = latest).

        Paths: ``/store/key`` (data = raw key) and ``/<module>/<name>`` (data = canonical
        encoding of the parameter map). With ``prove``, every key the query read comes back with
        its Merkle proof against the app hash at that height, so a client can verify the reads
        and re-run the query itself.
        """
        with self._lock:
            at = height or self.store.latest_height
            try:
                view = self._query_view(at)
                if path == "/store/key":
                    return self._query_key(data, at, prove)
                handler, provable = self._lookup_query(path)
                params = codec.decode(data) if data else {}
                if not isinstance(params, dict):
                    raise InvalidQueryError("query parameters must be a map", field="data")
                if prove and not provable:
                    raise NotProvableError(f"{path} reads ranges and cannot be proven key by "
                                           "key; query the keys it names instead", field="path")
                recorder = _RecordingView(view, self._index_prefixes) if prove else None
                result = handler(recorder if recorder is not None else view, params)
                value = codec.encode(result)
                reads: tuple[ProvenRead, ...] = ()
                if recorder is not None:
                    reads = tuple(self._proven_read(key, at) for key in recorder.read_keys())
                return ResponseQuery(value=value, height=at, reads=reads)
            except ChainError as error:
                return ResponseQuery.from_error(error, at)

    def _query_view(self, height: int) -> ReadView:
        """State at ``height``, with the query indexes' prefixes served from the index."""
        state = self.store.reader(height)
        if not self._index_prefixes:
            return state
        return IndexedView(state, self.store.index_reader(height), self._index_prefixes)

    def _lookup_query(self, path: str) -> tuple[QueryHandler, bool]:
        found = self._queries.get(path)
        if found is None:
            raise UnknownQueryError(f"unknown query path {path!r}; known: "
                                    f"{', '.join(sorted(self._queries))}", field="path")
        return found

    def _query_key(self, key: bytes, height: int, prove: bool) -> ResponseQuery:
        read = self._proven_read(key, height) if prove else None
        value = read.value if read is not None else self.store.reader(height).get(key)
        return ResponseQuery(key=key, value=value or b"", height=height,
                             info="" if value is not None else "absent",
                             reads=(read,) if read is not None else ())

    def _proven_read(self, key: bytes, height: int) -> ProvenRead:
        value, proof = self.store.prove(key, height)
        return ProvenRead(key=key, value=value, proof=proof)

    def query_paths(self) -> list[str]:
        return sorted(self._queries)

    def decode_tx(self, raw: bytes) -> Tx:
        """Decode and verify a transaction (for explorers and the CLI)."""
        return self.verified.decode_and_verify(raw, tx_hash(raw))


class _RecordingView:
    """A read-only view that remembers every key read; iteration and query index reads are
    refused (not provable)."""

    def __init__(self, inner: ReadView, index_prefixes: tuple[bytes, ...]) -> None:
        self._inner = inner
        self._index_prefixes = index_prefixes
        self._keys: dict[bytes, None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key.startswith(self._index_prefixes):
            raise NotProvableError("this query reads the node's query index, which is not in "
                                   "the authenticated state")
        self._keys[key] = None
        return self._inner.get(key)

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        raise NotProvableError("this query reads a range and cannot be proven key by key")

    def read_keys(self) -> list[bytes]:
        return list(self._keys)


def _log_rebuild(done: int, total: int) -> None:
    if done == total or done % (64 * 1024) == 0:
        log.info("rebuilding the query indexes: %d of %d source records", done, total)


def _package_version() -> str:
    from citychain import __version__

    return __version__

