"""A JSON-RPC 2.0 endpoint for the solo node, shaped like CometBFT's RPC (the subset we use).

Methods: status, genesis, broadcast_tx_sync, broadcast_tx_commit, abci_query, block,
block_results, tx.
Bytes travel as base64 (like CometBFT); proofs and signed headers travel as base64 of their
canonical encoding so a client verifies exactly the bytes that were signed. Loopback only by
default; the HTTP API gateway (FastAPI) is the public face.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from citychain.app.types import TxResult
from citychain.consensus.solo.node import SoloNode
from citychain.core import codec
from citychain.core.errors import ChainError
from citychain.core.simple_merkle import inclusion_proof
from citychain.core.tx import tx_hash

log = logging.getLogger(__name__)

MAX_BODY = 2 * 1024 * 1024
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
PARSE_ERROR = -32700
INTERNAL = -32603


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: Any, name: str) -> bytes:
    if not isinstance(text, str):
        raise RpcError(INVALID_PARAMS, f"{name} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise RpcError(INVALID_PARAMS, f"{name} is not valid base64") from None


def result_json(result: TxResult) -> dict[str, Any]:
    return {"code": result.code, "codespace": result.codespace, "log": result.log,
            "info": result.info, "data": b64(result.data),
            "events": [e.to_value() for e in result.events]}


class SoloRpc:
    """Dispatches JSON-RPC calls to a SoloNode."""

    def __init__(self, node: SoloNode, commit_timeout: float = 30.0) -> None:
        self.node = node
        self.commit_timeout = commit_timeout

    def call(self, method: str, params: dict[str, Any]) -> Any:
        handler = getattr(self, f"rpc_{method}", None)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"unknown method {method!r}")
        return handler(**params) if params else handler()

    def rpc_status(self) -> dict[str, Any]:
        header = self.node.last_header
        return {
            "node_info": {"network": self.node.genesis.chain_id, "moniker": "solo",
                          "validator_address": self.node.key.address},
            "sync_info": {
                "latest_block_height": str(header.height if header else 0),
                "latest_block_hash": header.hash().hex() if header else "",
                "latest_app_hash": header.app_hash.hex() if header else "",
                "latest_block_time_ns": str(header.time_ns if header else 0),
            },
            "mempool_size": self.node.mempool_count,
        }

    def rpc_genesis(self) -> dict[str, Any]:
        return {"genesis": self.node.genesis.to_json_value()}

    def rpc_broadcast_tx_sync(self, tx: str) -> dict[str, Any]:
        raw = unb64(tx, "tx")
        try:
            result = self.node.submit(raw)
        except ChainError as error:
            result = TxResult.from_error(error)
        return {**result_json(result), "hash": tx_hash(raw).hex()}

    def rpc_broadcast_tx_commit(self, tx: str) -> dict[str, Any]:
        raw = unb64(tx, "tx")
        hash_ = tx_hash(raw)
        check = self.rpc_broadcast_tx_sync(tx)
        if check["code"] != 0:
            return {"check_tx": check, "tx_result": None, "hash": hash_.hex(), "height": "0"}
        inclusion = self.node.wait_for_tx(hash_, self.commit_timeout)
        if inclusion is None:
            raise RpcError(INTERNAL, f"timed out after {self.commit_timeout} s waiting for "
                                     f"tx {hash_.hex()} to commit; it may still commit")
        return {"check_tx": check, "tx_result": result_json(inclusion.result),
                "hash": hash_.hex(), "height": str(inclusion.height)}

    def rpc_abci_query(self, path: str, data: str = "", height: int | str = 0,
                       prove: bool = False) -> dict[str, Any]:
        try:
            at = int(height)
        except ValueError:
            raise RpcError(INVALID_PARAMS, "height must be an integer") from None
        raw = bytes.fromhex(data) if data else b""
        response = self.node.app.query(path, raw, at, bool(prove))
        out: dict[str, Any] = {
            "code": response.code, "codespace": response.codespace, "log": response.log,
            "info": response.info, "key": b64(response.key), "value": b64(response.value),
            "height": str(response.height),
        }
        if prove and response.ok:
            out["proof"] = b64(codec.encode([
                {"key": r.key, "value": r.value, "proof": r.proof.to_value()}
                for r in response.reads]))
            stored = self.node.blocks.get(response.height)
            if stored is not None:
                out["signed_header"] = b64(codec.encode(stored.signed_header.to_value()))
        return {"response": out}

    def rpc_block(self, height: int | str = 0) -> dict[str, Any]:
        at = int(height) or self.node.app.last_height
        stored = self.node.blocks.get(at) if at <= self.node.app.last_height else None
        if stored is None:
            raise RpcError(INVALID_PARAMS, f"no committed block at height {at}")
        header = stored.signed_header.header
        return {
            "block_id": {"hash": header.hash().hex()},
            "signed_header": b64(codec.encode(stored.signed_header.to_value())),
            "header": {k: (v.hex() if isinstance(v, bytes) else v)
                       for k, v in header.to_value().items()},
            "txs": [b64(raw) for raw in stored.txs],
            "results": [b64(r) for r in stored.results],
        }

    def rpc_block_results(self, height: int | str = 0) -> dict[str, Any]:
        """Each tx's result and the block's own events, in CometBFT's shape."""
        try:
            at = int(height) or self.node.app.last_height
        except ValueError:
            raise RpcError(INVALID_PARAMS, "height must be an integer") from None
        stored = self.node.blocks.get(at) if 0 < at <= self.node.app.last_height else None
        if stored is None:
            raise RpcError(INVALID_PARAMS, f"no committed block at height {at}")
        return {"height": str(at),
                "txs_results": [result_json(TxResult.from_value(codec.decode(r)))
                                for r in stored.results],
                "finalize_block_events": [e.to_value() for e in stored.events]}

    def rpc_tx(self, hash: str, prove: bool = False) -> dict[str, Any]:
        try:
            hash_ = bytes.fromhex(hash)
        except ValueError:
            raise RpcError(INVALID_PARAMS, "hash must be hex") from None
        inclusion = self.node.find_tx(hash_)
        if inclusion is None:
            raise RpcError(INVALID_PARAMS, f"tx {hash} is not committed")
        stored = self.node.blocks.get(inclusion.height)
        if stored is None:
            raise RpcError(INTERNAL, "block vanished")
        raw = stored.txs[inclusion.position]
        out: dict[str, Any] = {"hash": hash, "height": str(inclusion.height),
                               "index": inclusion.position, "tx": b64(raw),
                               "tx_result": result_json(inclusion.result)}
        if prove:
            leaves = [tx_hash(t) for t in stored.txs]
            out["proof"] = {"root_hash": stored.signed_header.header.tx_root.hex(),
                            "index": inclusion.position, "total": len(leaves),
                            "aunts": [a.hex() for a in inclusion_proof(leaves,
                                                                       inclusion.position)]}
            out["signed_header"] = b64(codec.encode(stored.signed_header.to_value()))
        return out


class _Handler(BaseHTTPRequestHandler):
    """One connection. HTTP/1.1 keeps it open between requests (a gateway or client sends many);
    an idle connection is closed after ``timeout`` seconds, and every connection is closed after
    its current request once the server stops."""

    rpc: SoloRpc
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed ACK
    timeout = 30
    stopping: threading.Event

    def do_POST(self) -> None:
        if self.stopping.is_set():
            self.close_connection = True
            self.send_error(503, "the node is stopping")
            return
        length = int(self.headers.get("Content-Length") or 0)
        request_id: Any = None
        try:
            if length > MAX_BODY:
                raise RpcError(INVALID_PARAMS, f"request body over {MAX_BODY} bytes")
            try:
                request = json.loads(self.rfile.read(length))
            except json.JSONDecodeError as exc:
                raise RpcError(PARSE_ERROR, f"request is not JSON: {exc}") from None
            if not isinstance(request, dict):
                raise RpcError(PARSE_ERROR, "request must be a JSON object")
            request_id = request.get("id")
            params = request.get("params") or {}
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "params must be an object")
            try:
                result = self.rpc.call(str(request.get("method")), params)
            except TypeError as exc:
                raise RpcError(INVALID_PARAMS, f"bad parameters: {exc}") from None
            body = {"jsonrpc": "2.0", "id": request_id, "result": result}
        except RpcError as error:
            body = {"jsonrpc": "2.0", "id": request_id,
                    "error": {"code": error.code, "message": error.message, "data": error.data}}
        except Exception as exc:
            log.exception("rpc failure")
            body = {"jsonrpc": "2.0", "id": request_id,
                    "error": {"code": INTERNAL, "message": f"internal error: {exc}"}}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("rpc: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer (``BrokenPipeError``, reset) is routine: a line at
        debug level, not the traceback on stderr that ``socketserver`` prints by default."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.debug("rpc: client %s went away: %s", client_address, error)
        else:
            log.error("rpc: unexpected error serving %s", client_address, exc_info=error)


class RpcServer:
    """Serves SoloRpc over HTTP on a loopback address in a background thread."""

    def __init__(self, node: SoloNode, host: str = "127.0.0.1", port: int = 0) -> None:
        self._stopping = threading.Event()
        handler = type("BoundHandler", (_Handler,), {"rpc": SoloRpc(node),
                                                     "stopping": self._stopping})
        self._server = _Server((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="solo-rpc",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
