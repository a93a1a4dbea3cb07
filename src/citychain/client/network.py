"""Verified answers from a CometBFT citychain network: queries and txs checked against headers
signed by the validators the client trusts from genesis, never against the node's word.

A query at height H is answered over the state after block H, which header H+1 commits in its
``app_hash``: the client verifies header H+1 (see :mod:`citychain.client.cometbft`), checks each
``citychain/reads`` proof against that app hash, re-runs the module's pure query function over the
proven reads and compares. A tx is checked against ``data_hash`` of its block's header and its
result code against ``last_results_hash`` of the next header.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from citychain.client.cometbft import (
    Header,
    LightClient,
    LightVerificationError,
    MalformedAnswerError,
    RpcHeaderSource,
    TrustedBlock,
    WrongHeightError,
    results_hash,
)
from citychain.client.rpc import NodeClient
from citychain.client.verify import (
    ProvenView,
    VerificationError,
    decode_reads,
    verify_reads,
)
from citychain.core import codec
from citychain.core.errors import ChainError
from citychain.core.hashing import sha256
from citychain.core.module import Module, QueryHandler
from citychain.core.simple_merkle import verify_inclusion

__all__ = [
    "READS_PROOF_TYPE",
    "STORE_KEY_PATH",
    "AnswerMismatchError",
    "MissingProofError",
    "NetworkClient",
    "NotVerifiableError",
    "ProofMismatchError",
    "QueryRefusedError",
    "TxProofError",
    "VerifiedQuery",
    "VerifiedTx",
]

READS_PROOF_TYPE = "citychain/reads"
"""``ProofOp.type`` of a proven answer (as the ABCI server writes it)."""

STORE_KEY_PATH = "/store/key"


class MissingProofError(LightVerificationError):
    """The node sent no proof, or none for a key the query reads."""

    reason = "missing proof"


class ProofMismatchError(LightVerificationError):
    """A read's Merkle proof does not lead to the verified header's app hash."""

    reason = "proof does not match the app hash"


class AnswerMismatchError(LightVerificationError):
    """The answer differs from what the proven data says."""

    reason = "answer differs from the proven state"


class TxProofError(LightVerificationError):
    """The tx, its inclusion proof or its result does not match the verified headers."""

    reason = "tx is not proven by the block"


class QueryRefusedError(Exception):
    """The node refused the query (bad parameters, unknown path...); nothing to verify."""

    def __init__(self, code: int, codespace: str, log: str) -> None:
        super().__init__(f"the node refused the query: {codespace or 'abci'}:{code} {log}")
        self.code, self.codespace, self.log = code, codespace, log


class NotVerifiableError(Exception):
    """This client has no query function for the path, so cannot re-run it over proofs."""


@dataclass(frozen=True)
class VerifiedQuery:
    path: str
    params: dict[str, Any]
    height: int
    value: Any
    header: Header
    """Header ``height + 1``, whose app hash the reads were proven against."""


@dataclass(frozen=True)
class VerifiedTx:
    hash: str
    height: int
    index: int
    raw: bytes
    code: int
    """The result code (0 = executed), proven by the next header's ``last_results_hash``."""
    header: Header
    """Header ``height``, whose ``data_hash`` includes the tx."""


@contextmanager
def _as(error: type[LightVerificationError]) -> Iterator[None]:
    """Re-raise a plain VerificationError from client/verify.py as a typed one."""
    try:
        yield
    except LightVerificationError:
        raise
    except VerificationError as exc:
        raise error(str(exc)) from None


class NetworkClient:
    """Asks one CometBFT node and verifies every answer with a :class:`LightClient`."""

    def __init__(self, node: NodeClient, light: LightClient, modules: Sequence[Module], *,
                 wait_seconds: float = 15.0) -> None:
        self.node = node
        self.light = light
        self.modules = list(modules)
        self.wait_seconds = wait_seconds

    @classmethod
    def connect(cls, url: str, genesis: Mapping[str, Any], modules: Sequence[Module], *,
                skipping: bool = False, timeout: float = 60.0) -> NetworkClient:
        """A client of the node at ``url`` trusting ``genesis`` (the network's genesis.json,
        obtained out of band: never from the node being checked).

        Raises:
            MalformedAnswerError: the genesis document has no chain id or validators.
        """
        node = NodeClient(url, timeout=timeout)
        light = LightClient(RpcHeaderSource(node), TrustedBlock.genesis(genesis),
                            skipping=skipping)
        return cls(node, light, modules)

    def close(self) -> None:
        self.node.close()

    def __enter__(self) -> NetworkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def chain_id(self) -> str:
        return self.light.chain_id

    # -- queries
    def query_handler(self, path: str) -> QueryHandler | None:
        """The pure query function behind ``/<module>/<name>``."""
        _, module_name, name = [*path.split("/"), "", ""][:3]
        for module in self.modules:
            if module.name == module_name:
                return module.queries.get(name)
        return None

    def verify_query(self, path: str, params: dict[str, Any] | None = None,
                     height: int = 0) -> VerifiedQuery:
        """Run query ``path`` at ``height`` (0: the latest height whose state a header already
        commits) and return its value once it verifies.

        Raises:
            NotVerifiableError: no query function for ``path`` in this client.
            QueryRefusedError: the node refused the query.
            LightVerificationError: (a subclass naming the reason) a header, a proof or the
                recomputed answer does not verify.
            TimeoutError: header ``height + 1`` did not appear in time.
            RpcError: the node could not be asked.
        """
        params = dict(params or {})
        handler = self.query_handler(path)
        if handler is None:
            raise NotVerifiableError(f"no query function for {path} in this client")
        height, value, reads_blob = self._proven_query(path, codec.encode(params) if params
                                                       else b"", height)
        header = self._header_committing(height)
        with _as(MalformedAnswerError):
            reads = decode_reads(reads_blob)
        with _as(ProofMismatchError):
            proven = verify_reads(header.app_hash, reads)
        try:
            with _as(MissingProofError):
                recomputed = handler(ProvenView(proven), params)
        except ChainError as exc:
            raise AnswerMismatchError(f"the node answered, but the proven state makes the "
                                      f"query fail: {exc}") from None
        if codec.encode(recomputed) != value:
            raise AnswerMismatchError(f"the answer to {path} differs from the query re-run over "
                                      f"the proven state at height {height}")
        return VerifiedQuery(path, params, height, recomputed, header)

    def verify_key(self, key: bytes, height: int = 0) -> VerifiedQuery:
        """Read one raw store key at ``height``; the value is None when the proof shows it
        absent.

        Raises:
            as :meth:`verify_query`.
        """
        height, value, reads_blob = self._proven_query(STORE_KEY_PATH, key, height)
        header = self._header_committing(height)
        with _as(MalformedAnswerError):
            reads = decode_reads(reads_blob)
        if [read.key for read in reads] != [key]:
            raise MissingProofError(f"the node sent no proof for key {key.hex()} alone")
        with _as(ProofMismatchError):
            proven = verify_reads(header.app_hash, reads)[key]
        if (proven or b"") != value:
            raise AnswerMismatchError(f"the value of key {key.hex()} differs from the proven "
                                      "one")
        return VerifiedQuery(STORE_KEY_PATH, {"key": key.hex()}, height, proven, header)

    def _proven_query(self, path: str, data: bytes, height: int) -> tuple[int, bytes, bytes]:
        if height == 0:
            height = max(self._wait_for_height(2), 2) - 1
        response = self.node.call("abci_query", path=path, data=data.hex(), height=str(height),
                                  prove=True)["response"]
        try:
            code = int(response.get("code") or 0)
            if code != 0:
                raise QueryRefusedError(code, str(response.get("codespace") or ""),
                                        str(response.get("log") or ""))
            answered = int(response["height"])
            value = base64.b64decode(response.get("value") or "")
            ops = (response.get("proofOps") or {}).get("ops") or []
            blobs = [base64.b64decode(op.get("data") or "") for op in ops
                     if op.get("type") == READS_PROOF_TYPE]
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MalformedAnswerError(f"the query answer is malformed: {exc!r}") from None
        if answered != height:
            raise WrongHeightError(f"asked for height {height}, the answer is for {answered}")
        if len(ops) != 1 or len(blobs) != 1:
            raise MissingProofError(f"expected one {READS_PROOF_TYPE} proof, got "
                                    f"{[op.get('type') for op in ops]}")
        return height, value, blobs[0]

    # -- txs
    def verify_tx(self, hash_hex: str) -> VerifiedTx:
        """Fetch committed tx ``hash_hex`` and prove it is in its block and what its result
        code was.

        Raises:
            ValueError: ``hash_hex`` is not 64 hex characters.
            TxProofError: the tx bytes, inclusion proof or result do not match the headers.
            LightVerificationError: (a subclass) a header does not verify.
            TimeoutError: the next header did not appear in time.
            RpcError: the node could not be asked (or does not know the tx).
        """
        wanted = bytes.fromhex(hash_hex)
        if len(wanted) != 32:
            raise ValueError(f"a tx hash is 32 bytes, got {hash_hex!r}")
        answer = self.node.call("tx", hash=base64.b64encode(wanted).decode(), prove=True)
        try:
            raw = base64.b64decode(answer["tx"])
            height, index = int(answer["height"]), int(answer["index"])
            proof = answer["proof"]
            proven_data = base64.b64decode(proof["data"])
            total, proof_index = int(proof["proof"]["total"]), int(proof["proof"]["index"])
            aunts = [base64.b64decode(a) for a in proof["proof"]["aunts"] or []]
            claimed_code = int(answer["tx_result"].get("code") or 0)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MalformedAnswerError(f"the tx answer is malformed: {exc!r}") from None
        if sha256(raw) != wanted or proven_data != raw or proof_index != index:
            raise TxProofError("the node sent another tx than the one asked for")
        header = self.light.verified_header(height)
        if not verify_inclusion(header.data_hash, sha256(raw), index, total, aunts):
            raise TxProofError(f"the inclusion proof does not match data_hash of block {height}")
        code = self._proven_result_code(height, index)
        if code != claimed_code:
            raise TxProofError(f"the node claimed result code {claimed_code}; block {height + 1} "
                               f"commits code {code}")
        return VerifiedTx(hash_hex.lower(), height, index, raw, code, header)

    def _proven_result_code(self, height: int, index: int) -> int:
        results = self.node.call("block_results", height=str(height))
        try:
            answered = int(results["height"])
            tx_results = list(results.get("txs_results") or [])
            computed = results_hash(tx_results)
            code = int(tx_results[index].get("code") or 0)
        except (KeyError, TypeError, ValueError, IndexError, binascii.Error) as exc:
            raise MalformedAnswerError(f"the block_results answer is malformed: {exc!r}") from None
        if answered != height:
            raise WrongHeightError(f"asked for the results of {height}, got {answered}")
        if computed != self._header_committing(height).last_results_hash:
            raise TxProofError(f"the results of block {height} do not match the "
                               f"last_results_hash of block {height + 1}")
        return code

    # -- headers
    def _header_committing(self, height: int) -> Header:
        """Header ``height + 1``, verified: it commits the state and results of ``height``."""
        self._wait_for_height(height + 1)
        return self.light.verified_header(height + 1)

    def _wait_for_height(self, height: int) -> int:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            latest = self.light.source.latest_height()
            if latest >= height:
                return latest
            if time.monotonic() > deadline:
                raise TimeoutError(f"block {height} did not appear within {self.wait_seconds} s "
                                   f"(the node is at {latest})")
            time.sleep(0.1)
