"""The generated ABCI 2.0 protobuf modules (CometBFT v0.38), with a clear error when missing.

They are produced by ``scripts/gen_abci_protos.py`` into the git-ignored ``_gen`` package and are
never committed; importing this module before generating them raises an ImportError that says so.
"""

from __future__ import annotations

try:
    from citychain.consensus.abci._gen.tendermint.abci import types_pb2 as abci
    from citychain.consensus.abci._gen.tendermint.crypto import keys_pb2 as crypto_keys
    from citychain.consensus.abci._gen.tendermint.crypto import proof_pb2 as crypto_proof
except ImportError as exc:  # pragma: no cover - depends on the build step having run
    raise ImportError(
        "the ABCI protobuf classes are not generated; run "
        "`python scripts/gen_abci_protos.py` (needs Go and `pip install -e '.[abci]'`)"
    ) from exc

__all__ = ["abci", "crypto_keys", "crypto_proof"]
