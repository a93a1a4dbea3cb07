"""The signature floor: an ABCI application that only decodes and signature-checks citychain txs.

    .venv/bin/python bench/verify_floor_app.py --address tcp://127.0.0.1:PORT

It is what every citychain validator must do at the least for each tx, and nothing more: CheckTx
decodes the tx (``citychain.core.tx.decode_tx``) and checks its Ed25519 signature (PyNaCl), as
citychain's CheckTx does before any state is read; the result is kept by tx hash, so
ProcessProposal and FinalizeBlock reuse it, as citychain's ``VerifiedTxCache`` does. It keeps
no accounts, no sequence numbers and no Merkle state: its app hash is a hash chain of the block
hashes. ``bench/network_throughput.py --apps verify-floor`` runs it on the same testnet as the
two real apps; its rate bounds from above what any application that checks citychain's
signatures in Python can commit on the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections import OrderedDict
from collections.abc import Sequence

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
from citychain.consensus.abci.server import serve
from citychain.core.crypto import verify_signature
from citychain.core.errors import ChainError, SignatureInvalidError
from citychain.core.messages import MessageRegistry
from citychain.core.tx import decode_tx, tx_hash
from citychain.node.assemble import default_modules


class VerifyFloorApp:
    """Decode and verify each tx once per node; no state (see the module docstring)."""

    def __init__(self) -> None:
        self.registry = MessageRegistry()
        for module in default_modules():
            for msg_type in module.handlers:
                self.registry.register(msg_type)
        self.verified: OrderedDict[bytes, bool] = OrderedDict()
        self.height = 0
        self.app_hash = b""
        self._pending: tuple[int, bytes] | None = None

    def _verify(self, raw: bytes) -> bool:
        digest = tx_hash(raw)
        known = self.verified.get(digest)
        if known is not None:
            return known
        try:
            tx = decode_tx(raw, self.registry)
            ok = verify_signature(tx.pubkey, tx.sign_bytes, tx.signature)
        except ChainError:
            ok = False
        self.verified[digest] = ok
        if len(self.verified) > 200_000:
            self.verified.popitem(last=False)
        return ok

    def info(self) -> ResponseInfo:
        return ResponseInfo("verify-floor", "1", 1, self.height, self.app_hash)

    def init_chain(self, request: RequestInitChain) -> ResponseInitChain:
        return ResponseInitChain(app_hash=self.app_hash, validators=request.validators)

    def check_tx(self, raw: bytes, *, recheck: bool = False) -> TxResult:
        if self._verify(raw):
            return TxResult()
        return TxResult.from_error(SignatureInvalidError("bad signature", field="signature"))

    def prepare_proposal(self, txs: Sequence[bytes], max_tx_bytes: int) -> list[bytes]:
        chosen: list[bytes] = []
        total = 0
        for raw in txs:
            if total + len(raw) > max_tx_bytes:
                break
            if self._verify(raw):
                chosen.append(raw)
                total += len(raw)
        return chosen

    def process_proposal(self, txs: Sequence[bytes]) -> bool:
        return all(self._verify(raw) for raw in txs)

    def finalize_block(self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock:
        results = tuple(TxResult() if self._verify(raw) else TxResult.from_error(
            SignatureInvalidError("bad signature", field="signature")) for raw in request.txs)
        app_hash = hashlib.sha256(self.app_hash + request.height.to_bytes(8, "big") +
                                  request.hash).digest()
        self._pending = (request.height, app_hash)
        return ResponseFinalizeBlock(tx_results=results, events=(), app_hash=app_hash)

    def commit(self) -> ResponseCommit:
        if self._pending is not None:
            self.height, self.app_hash = self._pending
            self._pending = None
        return ResponseCommit()

    def query(self, path: str, data: bytes = b"", height: int = 0,
              prove: bool = False) -> ResponseQuery:
        return ResponseQuery(height=self.height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    serve(VerifyFloorApp(), args.address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
