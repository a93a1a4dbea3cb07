"""Light verification of the gateway's proof bundles against a trusted genesis: trust no node.

A proven query answer (``GET /v1/query/...?prove=true``, docs/api.md "Proofs") carries
``proof.height``, ``proof.value`` (the canonical answer), ``proof.reads`` (every key the query
read with its Merkle proof) and ``proof.light``, what commits to the app hash:

- solo: the signed header of ``height`` (its app hash is the state after that block); it must be
  for the trusted chain and height and signed by a validator key of the trusted genesis;
- CometBFT: the ``commit`` of header ``height + 1`` and its validator set; header ``height + 1``
  is verified by :class:`~citychain.client.cometbft.LightClient` from the genesis validator set,
  following validator-set changes with headers fetched from ``GET /v1/light/{h}``.

Then every read's proof is checked against that app hash, the module's pure query function is
re-run over the proven reads, and its canonical bytes must equal ``proof.value`` and its JSON form
the ``value`` the gateway answered. A tx (``GET /v1/txs/{hash}?prove=true``) is checked against the
solo header's tx root or the CometBFT header's data hash.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from citychain.app.genesis import Genesis
from citychain.client.builders import known_modules
from citychain.client.cometbft import (
    Header,
    HeaderMismatchError,
    LightClient,
    LightVerificationError,
    MalformedAnswerError,
    SignedHeader,
    TrustedBlock,
    ValidatorSet,
    WrongChainError,
    WrongHeightError,
    parse_signed_header,
    parse_validators,
)
from citychain.client.errors import VerificationError
from citychain.client.network import (
    AnswerMismatchError,
    MissingProofError,
    ProofMismatchError,
    TxProofError,
)
from citychain.client.verify import ProvenView, decode_reads, verify_reads
from citychain.consensus.solo.block import SignedHeader as SoloSignedHeader
from citychain.core import codec
from citychain.core.errors import ChainError
from citychain.core.module import Module, QueryHandler
from citychain.core.simple_merkle import verify_inclusion
from citychain.core.tx import tx_hash

__all__ = [
    "LightVerifier",
    "UntrustedHeaderError",
    "jsonable",
    "load_genesis",
    "typed_query_params",
]

FetchLight = Callable[[int], Mapping[str, Any]]
"""Fetches ``GET /v1/light/{height}`` (the gateway's answer as JSON)."""


class UntrustedHeaderError(LightVerificationError):
    """A solo header is not signed by a validator key of the trusted genesis."""

    reason = "header not signed by a trusted validator"


def load_genesis(genesis: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A genesis document given as a dict or the path of its JSON file.

    Raises:
        VerificationError: the file cannot be read or is not a JSON object.
    """
    if isinstance(genesis, Mapping):
        return dict(genesis)
    try:
        value = json.loads(Path(genesis).read_text())
    except (OSError, ValueError) as exc:
        raise VerificationError(f"cannot read the trusted genesis {genesis}: {exc}") from None
    if not isinstance(value, dict):
        raise VerificationError(f"the trusted genesis {genesis} is not a JSON object")
    return value


def is_cometbft_genesis(document: Mapping[str, Any]) -> bool:
    """CometBFT's genesis names keys as ``pub_key`` objects; citychain's solo genesis as hex
    ``pubkey``."""
    validators = document.get("validators")
    return isinstance(validators, list) and any(
        isinstance(v, Mapping) and "pub_key" in v for v in validators)


def jsonable(value: Any) -> Any:
    """Decoded canonical data as the gateway writes it in JSON: bytes as hex, tuples as lists."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def typed_query_params(module: Module | None, name: str,
                       params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as the gateway passes them to the query function: None dropped, declared
    ``int`` parameters as int, names sorted."""
    declared = {p.name: p for p in (module.query_params.get(name, ()) if module else ())}
    out: dict[str, Any] = {}
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        param = declared.get(key)
        if param is not None and param.kind is int and isinstance(value, str):
            with contextlib.suppress(ValueError):  # else the gateway refuses it (400)
                value = int(value)
        out[key] = value
    return out


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected base64 text, got {type(value).__name__}")
    return base64.b64decode(value, validate=True)


@contextmanager
def _as(error: type[LightVerificationError]) -> Iterator[None]:
    """Re-raise a plain VerificationError (client/verify.py) as the typed ``error``."""
    try:
        yield
    except LightVerificationError:
        raise
    except VerificationError as exc:
        raise error(str(exc)) from None


class _GatewaySource:
    """A :class:`~citychain.client.cometbft.HeaderSource` serving the bundle's own header and
    validator set, and fetching any other height from the gateway (untrusted, like all)."""

    def __init__(self, fetch: FetchLight | None) -> None:
        self.fetch = fetch
        self.pinned: dict[int, tuple[SignedHeader, ValidatorSet]] = {}

    def _light(self, height: int) -> Mapping[str, Any]:
        if self.fetch is None:
            raise MissingProofError(f"header {height} is needed to follow the validator set, "
                                    "and this verifier cannot fetch headers")
        answer = self.fetch(height)
        if not isinstance(answer, Mapping) or answer.get("driver") != "cometbft":
            raise MalformedAnswerError(f"the light block of height {height} is not CometBFT's")
        return answer

    def signed_header(self, height: int) -> SignedHeader:
        if height in self.pinned:
            return self.pinned[height][0]
        return parse_signed_header({"signed_header": self._light(height).get("signed_header")})

    def validators(self, height: int) -> ValidatorSet:
        if height in self.pinned:
            return self.pinned[height][1]
        return _validator_set(self._light(height).get("validators"), height)

    def latest_height(self) -> int:
        return max(self.pinned, default=0)


def _validator_set(value: Any, height: int) -> ValidatorSet:
    if not isinstance(value, Mapping):
        raise MalformedAnswerError(f"the light block of height {height} has no validator set")
    answered, total, validators = parse_validators(value)
    if answered != height:
        raise WrongHeightError(f"asked for the validators at {height}, got {answered}")
    if len(validators) != total:
        raise MalformedAnswerError(f"the light block lists {len(validators)} of {total} "
                                   "validators")
    return ValidatorSet.of(validators)


class LightVerifier:
    """Checks the gateway's proof bundles against a genesis obtained out of band.

    ``genesis`` is the chain's genesis document (dict or JSON path): citychain's own for a solo
    chain, CometBFT's ``genesis.json`` for a network (the driver follows from its shape).
    ``fetch_light`` fetches ``GET /v1/light/{h}`` (needed on CometBFT to follow the validator set
    from genesis to the bundle's height). By default headers are verified one by one, each by
    the set the previous verified header announced; ``skipping`` jumps ahead when more than a
    third of the trusted set signed a later header (CometBFT's skipping verification: far fewer
    headers, but it assumes the trusted set has not since turned dishonest, which CometBFT bounds
    with a trusting period this verifier does not have). Thread-safe.
    """

    def __init__(self, genesis: Mapping[str, Any] | str | Path, *,
                 modules: Sequence[Module] | None = None, fetch_light: FetchLight | None = None,
                 skipping: bool = False) -> None:
        document = load_genesis(genesis)
        self.modules = list(modules) if modules is not None else known_modules()
        self._lock = threading.Lock()
        self._source = _GatewaySource(fetch_light)
        self._light: LightClient | None = None
        self._trusted_keys: frozenset[bytes] = frozenset()
        if is_cometbft_genesis(document):
            self.driver = "cometbft"
            trusted = TrustedBlock.genesis(document)
            self.chain_id = trusted.chain_id
            self._light = LightClient(self._source, trusted, skipping=skipping)
        else:
            self.driver = "solo"
            try:
                parsed = Genesis.from_json_value(document)
            except ChainError as exc:
                raise VerificationError(f"the trusted genesis is not valid: {exc}") from None
            self.chain_id = parsed.chain_id
            self._trusted_keys = parsed.validator_pubkeys()

    @property
    def fetch_light(self) -> FetchLight | None:
        return self._source.fetch

    @fetch_light.setter
    def fetch_light(self, fetch: FetchLight | None) -> None:
        self._source.fetch = fetch

    def module(self, name: str) -> Module | None:
        for module in self.modules:
            if module.name == name:
                return module
        return None

    # -- queries
    def verify_query(self, module: str, name: str, params: Mapping[str, Any],
                     answer: Mapping[str, Any], *, height: int = 0) -> Any:
        """Verify a proven query answer (the JSON of ``GET /v1/query/{module}/{name}`` with
        ``prove=true``) for the parameters the caller asked; return the proven value (decoded
        canonical data). ``height`` is the height asked for (0: any; an unasked old height
        cannot be told from the latest, see docs/sdk.md).

        Raises:
            MissingProofError: no proof, or the query read a key without a proof.
            MalformedAnswerError: the bundle is not well formed.
            WrongChainError, WrongHeightError: the header is for another chain or height.
            UntrustedHeaderError: (solo) the header is not signed by a trusted key.
            LightVerificationError: (CometBFT, a typed subclass) the header does not verify.
            ProofMismatchError: a read's proof does not lead to the header's app hash.
            AnswerMismatchError: the query re-run over the proven reads gives another answer
                than ``proof.value`` or the JSON ``value``.
            VerificationError: no query function for ``module/name`` in this client.
        """
        declared = self.module(module)
        handler = declared.queries.get(name) if declared is not None else None
        if handler is None:
            raise VerificationError(f"no query function for {module}/{name} in this client, "
                                    "so its answer cannot be verified")
        proof = answer.get("proof")
        if not isinstance(proof, Mapping):
            raise MissingProofError(f"the answer to {module}/{name} carries no proof")
        try:
            proof_height = int(proof["height"])
            answered_height = int(answer["height"])
            value = _b64(proof["value"])
            reads = _b64(proof["reads"])
            light = proof["light"]
            if not isinstance(light, Mapping):
                raise TypeError("light is not an object")
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MalformedAnswerError(f"the proof of {module}/{name} is malformed: "
                                       f"{exc!r}") from None
        if answered_height != proof_height:
            raise WrongHeightError(f"the answer claims height {answered_height}, its proof "
                                   f"{proof_height}")
        if height and proof_height != height:
            raise WrongHeightError(f"asked for height {height}, the proof is for {proof_height}")
        app_hash = self._app_hash_after(proof_height, light)
        recomputed = self._rerun(handler, typed_query_params(declared, name, params), value,
                                 reads, app_hash, f"{module}/{name}")
        if jsonable(recomputed) != answer.get("value"):
            raise AnswerMismatchError(f"the JSON value of {module}/{name} differs from the "
                                      "proven answer")
        return recomputed

    def _rerun(self, handler: QueryHandler, params: dict[str, Any], value: bytes,
               reads_blob: bytes, app_hash: bytes, label: str) -> Any:
        with _as(MalformedAnswerError):
            reads = decode_reads(reads_blob)
        with _as(ProofMismatchError):
            proven = verify_reads(app_hash, reads)
        try:
            with _as(MissingProofError):
                recomputed = handler(ProvenView(proven), dict(params))
        except ChainError as exc:
            raise AnswerMismatchError(f"the gateway answered {label}, but over the proven state "
                                      f"the query fails: {exc}") from None
        if codec.encode(recomputed) != value:
            raise AnswerMismatchError(f"the answer to {label} differs from the query re-run over "
                                      "the proven state")
        return recomputed

    def _app_hash_after(self, height: int, light: Mapping[str, Any]) -> bytes:
        """The verified app hash of the state after block ``height``."""
        self._check_driver(light)
        if self.driver == "solo":
            return self._solo_header(height, light).header.app_hash
        return self._cometbft_header(height + 1, light).app_hash

    # -- txs
    def verify_tx(self, hash_hex: str, answer: Mapping[str, Any]) -> int:
        """Verify a proven tx answer (``GET /v1/txs/{hash}?prove=true``): the tx is the one
        asked for and is tx ``index`` of block ``height``; return the height.

        The result code is not proven (the gateway does not carry what commits to it).

        Raises:
            MalformedAnswerError: the answer or bundle is not well formed.
            MissingProofError: no inclusion proof or light block.
            TxProofError: another tx than asked, or the inclusion proof does not match.
            WrongChainError, WrongHeightError, UntrustedHeaderError, LightVerificationError:
                as :meth:`verify_query`.
        """
        proof, light = answer.get("proof"), answer.get("light")
        if not isinstance(proof, Mapping) or not isinstance(light, Mapping):
            raise MissingProofError(f"the answer for tx {hash_hex} carries no inclusion proof")
        self._check_driver(light)
        try:
            raw = _b64(answer["tx"])
            height, index = int(answer["height"]), int(answer["index"])
            if self.driver == "solo":
                total, proven_index = int(proof["total"]), int(proof["index"])
                aunts = [bytes.fromhex(a) for a in proof["aunts"] or []]
                data = raw
            else:
                inner = proof["proof"]
                total, proven_index = int(inner["total"]), int(inner["index"])
                aunts = [_b64(a) for a in inner["aunts"] or []]
                data = _b64(proof["data"])
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise MalformedAnswerError(f"the tx answer is malformed: {exc!r}") from None
        if tx_hash(raw).hex() != hash_hex.lower() or data != raw:
            raise TxProofError(f"the gateway sent another tx than {hash_hex}")
        if proven_index != index:
            raise TxProofError(f"the answer places the tx at {index}, its proof at "
                               f"{proven_index}")
        if self.driver == "solo":
            root = self._solo_header(height, light).header.tx_root
        else:
            root = self._cometbft_header(height, light).data_hash
        if not verify_inclusion(root, tx_hash(raw), index, total, aunts):
            raise TxProofError(f"the inclusion proof does not match block {height}'s "
                               f"{'tx root' if self.driver == 'solo' else 'data hash'}")
        return height

    # -- headers
    def _check_driver(self, light: Mapping[str, Any]) -> None:
        if light.get("driver") != self.driver:
            raise MalformedAnswerError(f"the proof is for a {light.get('driver')!r} chain; the "
                                       f"trusted genesis is a {self.driver} chain's")

    def _solo_header(self, height: int, light: Mapping[str, Any]) -> SoloSignedHeader:
        try:
            signed = SoloSignedHeader.from_value(codec.decode(_b64(light["signed_header"])))
        except Exception as exc:
            raise MalformedAnswerError(f"the signed header is malformed: {exc!r}") from None
        header = signed.header
        if header.chain_id != self.chain_id:
            raise WrongChainError(f"header is for chain {header.chain_id!r}, not "
                                  f"{self.chain_id!r}")
        if header.height != height or light.get("height") != height:
            raise WrongHeightError(f"the header is for height {header.height}, the answer for "
                                   f"{height}")
        if not signed.verify(self._trusted_keys):
            raise UntrustedHeaderError(f"header {height} is not signed by a validator of the "
                                       "trusted genesis")
        return signed

    def _cometbft_header(self, height: int, light: Mapping[str, Any]) -> Header:
        if light.get("height") != height:
            raise WrongHeightError(f"the light block is for height {light.get('height')}, "
                                   f"expected {height}")
        signed = parse_signed_header({"signed_header": light.get("signed_header")})
        validators = _validator_set(light.get("validators"), height)
        if self._light is None:  # a CometBFT verifier always has one; never reached
            raise VerificationError("no light client")
        with self._lock:
            self._source.pinned = {height: (signed, validators)}
            try:
                verified = self._light.verified_header(height)
            finally:
                self._source.pinned = {}
        if verified.compute_hash() != signed.header.compute_hash():
            raise HeaderMismatchError(f"the bundle's header {height} is not the verified one")
        return verified
