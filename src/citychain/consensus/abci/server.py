"""The ABCI 2.0 socket server: CometBFT's four connections onto the application's method set.

CometBFT dials four connections (query, snapshot, mempool, consensus) and pipelines requests on
each, matching answers first-in first-out; a ``Flush`` request asks for everything before it to
be sent. This server answers every request in order on its own connection, writes answers as soon
as a read's worth of requests is handled (it never waits for the Flush), and runs the application
one request at a time on a single asyncio thread, which is the serialisation CometBFT's own Go
server gives its applications.

Failures are sorted three ways:

* an expected error in a transaction or query is an ordinary answer with a code (see ``codes``);
* an unexpected exception in CheckTx or Query is answered as the redacted internal error and
  logged: they do not touch consensus state, so the node keeps running;
* anything else (the application failing in Info, InitChain, a proposal, FinalizeBlock or Commit)
  is fatal: the server answers with ``exception`` (which makes CometBFT stop), closes every
  connection and stops, so the process exits and the restart handshake replays what is missing.
  A malformed byte stream or unknown request gets ``exception`` and closes only its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from google.protobuf.message import DecodeError as ProtobufDecodeError

from citychain.app.types import (
    RequestFinalizeBlock,
    RequestInitChain,
    ResponseCommit,
    ResponseFinalizeBlock,
    ResponseInfo,
    ResponseInitChain,
    ResponseQuery,
    TxResult,
)
from citychain.consensus.abci import convert
from citychain.consensus.abci.framing import FrameReader, FramingError, encode_frame
from citychain.consensus.abci.protos import abci
from citychain.core.errors import ChainError, InternalError

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:26658"
ABCI_VERSION = "2.0.0"
_T = TypeVar("_T")


class AbciApplication(Protocol):
    """What the server needs from the application (``citychain.app.application.Application``)."""

    def info(self) -> ResponseInfo: ...

    def init_chain(self, request: RequestInitChain) -> ResponseInitChain: ...

    def check_tx(self, raw: bytes, *, recheck: bool = False) -> TxResult: ...

    def prepare_proposal(self, txs: Sequence[bytes], max_tx_bytes: int) -> list[bytes]: ...

    def process_proposal(self, txs: Sequence[bytes]) -> bool: ...

    def finalize_block(self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock: ...

    def commit(self) -> ResponseCommit: ...

    def query(self, path: str, data: bytes = b"", height: int = 0,
              prove: bool = False) -> ResponseQuery: ...


class FatalAbciError(RuntimeError):
    """The application failed where the node cannot go on; the process must stop and replay."""


class AbciProtocolError(ValueError):
    """A peer sent something that is not an ABCI request; its connection is closed."""


def _redacted_internal() -> TxResult:
    return TxResult.from_error(InternalError("internal error; see the node's log"))


class RequestHandler:
    """Turns one decoded ``Request`` into its ``Response`` by calling the application.

    Raises (from :meth:`handle`):
        FatalAbciError: the application failed on a consensus, info or init path.
        AbciProtocolError: the request is empty or of an unknown kind.
    """

    def __init__(self, app: AbciApplication) -> None:
        self.app = app
        self._methods: dict[str, Callable[[Any], Any]] = {
            "echo": self.echo, "flush": self.flush, "info": self.info,
            "init_chain": self.init_chain, "query": self.query, "check_tx": self.check_tx,
            "commit": self.commit, "list_snapshots": self.list_snapshots,
            "offer_snapshot": self.offer_snapshot,
            "load_snapshot_chunk": self.load_snapshot_chunk,
            "apply_snapshot_chunk": self.apply_snapshot_chunk,
            "prepare_proposal": self.prepare_proposal,
            "process_proposal": self.process_proposal, "extend_vote": self.extend_vote,
            "verify_vote_extension": self.verify_vote_extension,
            "finalize_block": self.finalize_block,
        }

    def handle(self, request: Any) -> Any:
        kind = request.WhichOneof("value")
        method = self._methods.get(kind) if kind is not None else None
        if method is None:
            raise AbciProtocolError(f"unknown or empty ABCI request ({kind or 'no value'})")
        return method(getattr(request, kind))

    # ------------------------------------------------------------ every connection
    def echo(self, request: Any) -> Any:
        return abci.Response(echo=abci.ResponseEcho(message=request.message))

    def flush(self, _request: Any) -> Any:
        return abci.Response(flush=abci.ResponseFlush())

    # ------------------------------------------------------------ info / query
    def info(self, request: Any) -> Any:
        if request.abci_version and request.abci_version != ABCI_VERSION:
            log.warning("CometBFT speaks ABCI %s; this server implements %s",
                        request.abci_version, ABCI_VERSION)
        info = self._fatal_on_error("Info", self.app.info)
        log.debug("Info: CometBFT %s asks; app at height %d, app hash %s", request.version,
                 info.last_block_height, info.last_block_app_hash.hex())
        return abci.Response(info=abci.ResponseInfo(
            data=info.data, version=info.version, app_version=info.app_version,
            last_block_height=info.last_block_height,
            last_block_app_hash=info.last_block_app_hash))

    def query(self, request: Any) -> Any:
        try:
            answer = self.app.query(request.path, bytes(request.data), int(request.height),
                                    bool(request.prove))
        except Exception:  # a bug in a query must not stop the node; queries change nothing
            log.exception("unexpected error in query %s", request.path)
            internal = _redacted_internal()
            answer = ResponseQuery(code=internal.code, codespace=internal.codespace,
                                   log=internal.log)
        response = abci.Response()
        convert.fill_query(response.query, answer, prove=bool(request.prove))
        return response

    # ------------------------------------------------------------ mempool
    def check_tx(self, request: Any) -> Any:
        recheck = request.type == abci.RECHECK
        try:
            result = self.app.check_tx(bytes(request.tx), recheck=recheck)
        except Exception:  # the check state is a branch: refusing the tx is always safe
            log.exception("unexpected error in check_tx")
            result = _redacted_internal()
        response = abci.Response()
        convert.fill_tx_result(response.check_tx, result)
        return response

    # ------------------------------------------------------------ consensus
    def init_chain(self, request: Any) -> Any:
        ours = self._fatal_on_error("InitChain", lambda: convert.init_chain_from_pb(request))
        answer = self._fatal_on_error("InitChain", lambda: self.app.init_chain(ours))
        log.info("InitChain: chain %s from height %d with %d validators; genesis app hash %s",
                 ours.chain_id, ours.initial_height, len(ours.validators),
                 answer.app_hash.hex())
        response = abci.Response(init_chain=abci.ResponseInitChain(app_hash=answer.app_hash))
        convert.add_validators(response.init_chain.validators, answer.validators)
        return response

    def prepare_proposal(self, request: Any) -> Any:
        txs = self._fatal_on_error("PrepareProposal", lambda: self.app.prepare_proposal(
            [bytes(tx) for tx in request.txs], int(request.max_tx_bytes)))
        return abci.Response(prepare_proposal=abci.ResponsePrepareProposal(txs=txs))

    def process_proposal(self, request: Any) -> Any:
        accepted = self._fatal_on_error("ProcessProposal", lambda: self.app.process_proposal(
            [bytes(tx) for tx in request.txs]))
        status = (abci.ResponseProcessProposal.ACCEPT if accepted
                  else abci.ResponseProcessProposal.REJECT)
        if not accepted:
            log.warning("ProcessProposal: rejected the proposal for height %d", request.height)
        return abci.Response(process_proposal=abci.ResponseProcessProposal(status=status))

    def extend_vote(self, _request: Any) -> Any:
        return abci.Response(extend_vote=abci.ResponseExtendVote(vote_extension=b""))

    def verify_vote_extension(self, _request: Any) -> Any:
        return abci.Response(verify_vote_extension=abci.ResponseVerifyVoteExtension(
            status=abci.ResponseVerifyVoteExtension.ACCEPT))

    def finalize_block(self, request: Any) -> Any:
        if request.height < 1:
            raise FatalAbciError(f"FinalizeBlock: height {request.height} is not a block height "
                                 "(CometBFT starts at 1; abci-cli's finalize_block sends 0)")
        ours = convert.finalize_block_from_pb(request)
        done = self._fatal_on_error("FinalizeBlock", lambda: self.app.finalize_block(ours))
        log.debug("FinalizeBlock: height %d, %d txs, app hash %s", ours.height,
                  len(ours.txs), done.app_hash.hex())
        response = abci.Response(finalize_block=abci.ResponseFinalizeBlock(
            app_hash=done.app_hash))
        finalized = response.finalize_block
        convert.add_events(finalized.events, done.events)
        for result in done.tx_results:
            convert.fill_tx_result(finalized.tx_results.add(), result)
        convert.add_validators(finalized.validator_updates, done.validator_updates)
        return response

    def commit(self, _request: Any) -> Any:
        done = self._fatal_on_error("Commit", self.app.commit)
        return abci.Response(commit=abci.ResponseCommit(retain_height=done.retain_height))

    # ------------------------------------------------------------ state sync: not offered
    def list_snapshots(self, _request: Any) -> Any:
        return abci.Response(list_snapshots=abci.ResponseListSnapshots())

    def offer_snapshot(self, _request: Any) -> Any:
        return abci.Response(offer_snapshot=abci.ResponseOfferSnapshot(
            result=abci.ResponseOfferSnapshot.ABORT))

    def load_snapshot_chunk(self, _request: Any) -> Any:
        return abci.Response(load_snapshot_chunk=abci.ResponseLoadSnapshotChunk())

    def apply_snapshot_chunk(self, _request: Any) -> Any:
        return abci.Response(apply_snapshot_chunk=abci.ResponseApplySnapshotChunk(
            result=abci.ResponseApplySnapshotChunk.ABORT))

    @staticmethod
    def _fatal_on_error(method: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except FatalAbciError:
            raise
        except ChainError as exc:
            raise FatalAbciError(f"{method}: {exc.codespace}/{exc.code}: {exc.message}") from exc
        except Exception as exc:
            raise FatalAbciError(f"{method}: {type(exc).__name__}: {exc}") from exc


def exception_response(message: str) -> Any:
    return abci.Response(exception=abci.ResponseException(error=message))


class _Connection(asyncio.Protocol):
    """One CometBFT connection: frames in, answers out, in order."""

    def __init__(self, server: AbciServer, number: int) -> None:
        self.server = server
        self.number = number
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):  # pragma: no cover - stream servers only
            raise TypeError("the ABCI server needs a stream transport")
        self.transport = transport
        self.server._connections.add(self)
        log.info("connection %d opened (%s)", self.number, transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        log.info("connection %d closed after %d requests%s", self.number, self.requests,
                 f": {exc}" if exc else "")

    def pause_writing(self) -> None:  # the peer reads slowly: stop taking new requests
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        out = bytearray()
        try:
            for body in self.reader.feed(data):
                self.requests += 1
                try:
                    request = abci.Request.FromString(body)
                except ProtobufDecodeError as exc:
                    raise AbciProtocolError(f"request is not an ABCI Request: {exc}") from None
                out += encode_frame(self.server.handler.handle(request).SerializeToString())
        except (FramingError, AbciProtocolError) as exc:
            log.error("connection %d: %s; closing it", self.number, exc)
            out += encode_frame(exception_response(str(exc)).SerializeToString())
            transport.write(out)
            transport.close()
            return
        except FatalAbciError as exc:
            log.critical("fatal: %s; stopping the ABCI server", exc, exc_info=exc.__cause__)
            out += encode_frame(exception_response(str(exc)).SerializeToString())
            transport.write(out)
            self.server._fail(exc)
            return
        if out:
            transport.write(out)


class AbciServer:
    """Listens on ``tcp://host:port`` or ``unix:///path`` and serves CometBFT's connections.

    Use inside a running event loop: ``await start()``, then ``await wait_stopped()``;
    ``stop()`` ends it (call it from the loop's thread). ``fatal`` holds the error that stopped
    it, if one did.
    """

    def __init__(self, app: AbciApplication, address: str = DEFAULT_ADDRESS) -> None:
        self.handler = RequestHandler(app)
        self.address = address
        self.fatal: FatalAbciError | None = None
        self._connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._stopped: asyncio.Event | None = None
        self._unix_path: str | None = None
        self._count = 0

    def _new_connection(self) -> _Connection:
        self._count += 1
        return _Connection(self, self._count)

    async def start(self) -> str:
        """Start listening; return the bound address (a tcp port of 0 is replaced by the real one).

        Raises:
            ValueError: the address is not ``tcp://host:port`` or ``unix://path``.
            OSError: the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        scheme, _, rest = self.address.partition("://")
        if not rest:
            scheme, rest = "tcp", self.address
        if scheme == "tcp":
            host, _, port = rest.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"ABCI address {self.address!r} is not tcp://host:port")
            self._server = await loop.create_server(self._new_connection, host.strip("[]"),
                                                    int(port))
            bound = self._server.sockets[0].getsockname()
            self.address = f"tcp://{host}:{bound[1]}"
        elif scheme == "unix":
            _remove_stale_socket(rest)
            self._server = await loop.create_unix_server(self._new_connection, rest)
            self._unix_path = rest
        else:
            raise ValueError(f"ABCI address {self.address!r}: scheme must be tcp or unix")
        log.info("ABCI server listening on %s", self.address)
        return self.address

    def stop(self) -> None:
        """Stop listening and close every connection (answers already written are still sent)."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        if self._unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._unix_path)
            self._unix_path = None
        if self._stopped is not None:
            self._stopped.set()

    def _fail(self, error: FatalAbciError) -> None:
        if self.fatal is None:
            self.fatal = error
        self.stop()

    async def wait_stopped(self) -> None:
        """Return once :meth:`stop` ran (or a fatal error stopped the server)."""
        if self._stopped is None:
            raise RuntimeError("the ABCI server was not started")
        await self._stopped.wait()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _remove_stale_socket(path: str) -> None:
    """Remove a unix socket file left by a process that died, refusing to touch a live one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ValueError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(f"another process is serving on {path}")


def serve(app: AbciApplication, address: str = DEFAULT_ADDRESS, *,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``app`` to CometBFT on ``address`` until SIGINT/SIGTERM or a fatal error.

    ``on_ready`` is called with the bound address once the server listens. Signals are only
    handled when called from the main thread.

    Raises:
        FatalAbciError: the application failed on a consensus path (exit and let replay fix it).
        OSError, ValueError: the address cannot be bound or parsed.
    """
    asyncio.run(_serve(app, address, on_ready))


async def _serve(app: AbciApplication, address: str,
                 on_ready: Callable[[str], None] | None) -> None:
    server = AbciServer(app, address)
    bound = await server.start()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
            handled.append(signum)
    try:
        if on_ready is not None:
            on_ready(bound)
        await server.wait_stopped()
    finally:
        server.stop()
        for signum in handled:
            loop.remove_signal_handler(signum)
    if server.fatal is not None:
        raise server.fatal
