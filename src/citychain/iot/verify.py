"""Verify one stored reading: its content hashes to its id, the id is a leaf of its batch's
Merkle root, that root is anchored on chain (proven against a header signed by validators
trusted from genesis), the anchor lists the device and covers the timestamp, and the key that was
the device's key when the batch was anchored (``/identity/key_at`` at the anchor's height, proven
too) signed the reading, so a later key rotation does not unmake an honest reading.

Three provers: ``RpcProver`` (a solo node's RPC, trusting a citychain genesis.json),
``CometbftProver`` (a CometBFT node's RPC through :class:`~citychain.client.network.NetworkClient`:
each answer at height H checked against header H+1, its commit and validator set, trusted from the
network's CometBFT genesis.json) and ``SdkProver`` (the Python SDK's ``Client`` built with
``trusted_genesis``, any driver). A node that cannot give a proof raises
:class:`ProofUnavailableError`, a proof that does not check out :class:`ReadingVerificationError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from citychain.app.genesis import Genesis
from citychain.client.api import Client
from citychain.client.cometbft import LightVerificationError
from citychain.client.network import (
    MissingProofError,
    NetworkClient,
    NotVerifiableError,
    QueryRefusedError,
)
from citychain.client.rpc import NodeClient
from citychain.client.verify import VerificationError, decode_reads, verify_query_answer
from citychain.core.crypto import verify_signature
from citychain.core.simple_merkle import inclusion_proof, verify_inclusion
from citychain.iot.reading import Reading
from citychain.iot.store import Batch, ReadingStore
from citychain.modules.oracle.api import compute_batch_id
from citychain.node.assemble import default_modules


class ReadingVerificationError(Exception):
    """The reading does not verify (the message says which step failed)."""


class ProofUnavailableError(ReadingVerificationError):
    """The node could not give a proof of a chain read (it refused the query, sent no proof or
    no signed header, has no block yet, or the header committing the answer did not come), so
    nothing can be called verified."""


class Prover(Protocol):
    """Answers queries (oracle's unless ``module`` says) proven against trusted validators."""

    chain_id: str

    def proven(self, name: str, params: dict[str, Any],
               module: str = "oracle") -> tuple[Any, int]:
        """Return the verified answer of ``/<module>/<name>`` and its height.

        Raises:
            ReadingVerificationError: the answer does not verify.
        """
        ...


@dataclass(frozen=True)
class ReadingProof:
    """A verified reading: where it sits in which anchored batch, proven at ``height``."""

    reading_id: bytes
    reading: Reading
    batch: Batch
    index: int
    aunts: tuple[bytes, ...]
    anchor: dict[str, Any]
    height: int

    def to_value(self) -> dict[str, Any]:
        return {"reading_id": self.reading_id.hex(),
                "reading": {**self.reading.unsigned_value(), "sig": self.reading.sig.hex()},
                "batch_id": self.batch.batch_id.hex(),
                "merkle_root": self.batch.merkle_root.hex(), "index": self.index,
                "total": len(self.batch.leaves), "aunts": [a.hex() for a in self.aunts],
                "anchor": self.anchor, "proven_height": self.height, "verified": True}


def verify_reading(store: ReadingStore, reading_id: bytes, prover: Prover) -> ReadingProof:
    """Check reading ``reading_id`` end to end (see the module docstring).

    Raises:
        ReadingVerificationError: unknown reading, tampered content, not in a batch, batch
            not anchored, anchor fields or signature do not match, or a proof fails.
    """
    stored = store.get_reading(reading_id)
    if stored is None:
        raise ReadingVerificationError(f"no reading {reading_id.hex()} in the store")
    reading = stored.reading
    if reading.reading_id != reading_id:
        raise ReadingVerificationError(
            "the stored reading does not hash to its id (its content was altered)")
    if stored.batch_id is None:
        raise ReadingVerificationError(f"reading {reading_id.hex()} is not in a batch yet "
                                       f"(status {stored.status})")
    batch = store.get_batch(stored.batch_id)
    if batch is None:
        raise ReadingVerificationError(f"batch {stored.batch_id.hex()} is missing")
    if reading_id not in batch.leaves:
        raise ReadingVerificationError("the reading is not a leaf of its batch")
    index = batch.leaves.index(reading_id)
    aunts = tuple(inclusion_proof(list(batch.leaves), index))
    if not verify_inclusion(batch.merkle_root, reading_id, index, len(batch.leaves),
                            list(aunts)):
        raise ReadingVerificationError("the inclusion proof does not match the batch's root")
    anchor, height = prover.proven("anchor", {"merkle_root": batch.merkle_root.hex()})
    if anchor is None:
        raise ReadingVerificationError(
            f"root {batch.merkle_root.hex()} is not anchored on chain (at height {height})")
    expected_id = compute_batch_id(batch.merkle_root, batch.devices, batch.first_reading_ms,
                                   batch.last_reading_ms, batch.reading_count,
                                   batch.previous_batch_id)
    if anchor["batch_id"] != expected_id.hex() or anchor["reading_count"] != len(batch.leaves):
        raise ReadingVerificationError("the anchor's fields differ from the stored batch")
    if reading.device not in anchor["devices"]:
        raise ReadingVerificationError("the anchor does not list the reading's device")
    if not anchor["first_reading_ms"] <= reading.ts_ms <= anchor["last_reading_ms"]:
        raise ReadingVerificationError("the reading's time lies outside the anchored range")
    key, _ = prover.proven("key_at", {"did": reading.device, "at_height": anchor["height"]},
                           module="identity")
    pubkey = bytes.fromhex(key["pubkey"]) if key and key["pubkey"] else b""
    if not verify_signature(pubkey, reading.sign_bytes(prover.chain_id), reading.sig):
        raise ReadingVerificationError(
            f"the device's key on chain at the anchor's height {anchor['height']} did not sign "
            "this reading")
    return ReadingProof(reading_id, reading, batch, index, aunts, anchor, height)


class RpcProver:
    """Proven oracle and identity queries through a solo node's RPC, trusting ``genesis`` (a
    citychain genesis.json obtained out of band)."""

    def __init__(self, node_url: str, genesis: Path) -> None:
        parsed = Genesis.from_json(genesis.read_text())
        self.chain_id = parsed.chain_id
        self._trusted = parsed.validator_pubkeys()
        self._client = NodeClient(node_url)
        self._queries = {m.name: m.queries for m in default_modules()
                         if m.name in ("identity", "oracle")}

    def close(self) -> None:
        self._client.close()

    def proven(self, name: str, params: dict[str, Any],
               module: str = "oracle") -> tuple[Any, int]:
        """The verified answer of ``/<module>/<name>`` (oracle or identity) and its height.

        Raises:
            ProofUnavailableError: the node refused the query or sent no proof or header
                (a CometBFT node sends none: use :class:`CometbftProver`).
            ReadingVerificationError: the proof does not verify.
            KeyError: ``module`` is neither oracle nor identity.
        """
        path = f"/{module}/{name}"
        query = self._queries[module][name]
        answer = self._client.query(path, params, prove=True)
        if not answer.ok:
            raise ProofUnavailableError(f"the node refused {path}: {answer.log}")
        if answer.proof is None or answer.signed_header is None:
            raise ProofUnavailableError(
                f"the node sent no proof or no signed header for {path} (a solo node "
                "with no block yet, or a CometBFT node: prove through CometbftProver)")
        try:
            value = verify_query_answer(query, params, answer.value,
                                        decode_reads(answer.proof), answer.signed_header,
                                        self.chain_id, self._trusted, answer.height)
        except VerificationError as exc:
            raise ReadingVerificationError(f"proof of {path} failed: {exc}") from None
        return value, answer.height


class CometbftProver:
    """Proven queries through a CometBFT node: ``network`` (a
    :class:`~citychain.client.network.NetworkClient` whose light client trusts the network's
    CometBFT genesis, obtained out of band) checks each answer's reads against the app hash of
    header H+1 and that header against its commit and validator set."""

    def __init__(self, network: NetworkClient) -> None:
        self.chain_id = network.chain_id
        self._network = network

    @classmethod
    def connect(cls, node_url: str, genesis: Mapping[str, Any]) -> CometbftProver:
        """A prover of the CometBFT node at ``node_url`` trusting ``genesis`` (the network's
        CometBFT genesis.json, parsed).

        Raises:
            MalformedAnswerError: the genesis document has no chain id or validators.
        """
        return cls(NetworkClient.connect(node_url, genesis, default_modules()))

    def close(self) -> None:
        self._network.close()

    def proven(self, name: str, params: dict[str, Any],
               module: str = "oracle") -> tuple[Any, int]:
        """The verified answer of ``/<module>/<name>`` and the height it was read at.

        Raises:
            ProofUnavailableError: the node refused the query, sent no proof, or the header
                committing the answer did not come in time.
            ReadingVerificationError: a header, commit, proof or the recomputed answer does
                not verify (the message names the reason).
            RpcError: the node could not be asked.
        """
        path = f"/{module}/{name}"
        try:
            verified = self._network.verify_query(path, params)
        except (QueryRefusedError, NotVerifiableError, TimeoutError) as exc:
            raise ProofUnavailableError(f"the node cannot prove {path}: {exc}") from None
        except MissingProofError as exc:
            raise ProofUnavailableError(f"the node sent no proof of {path}: {exc}") from None
        except LightVerificationError as exc:
            raise ReadingVerificationError(
                f"proof of {path} failed ({exc.reason}): {exc}") from None
        return verified.value, verified.height


class SdkProver:
    """Proven queries through the HTTP gateway with the SDK (``client`` must have been built
    with ``trusted_genesis``)."""

    def __init__(self, client: Client) -> None:
        verifier = client.verifier
        if verifier is None:
            raise ValueError("the client has no trusted genesis: it cannot verify")
        self.chain_id = verifier.chain_id
        self._client = client

    def proven(self, name: str, params: dict[str, Any],
               module: str = "oracle") -> tuple[Any, int]:
        try:
            result = self._client.query(module, name, verify=True, **params)
        except VerificationError as exc:
            raise ReadingVerificationError(f"proof of /{module}/{name} failed: {exc}") from None
        if not result.verified:
            raise ReadingVerificationError(f"/{module}/{name} was not verified")
        return result.value, result.height
