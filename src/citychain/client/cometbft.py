"""Light verification of CometBFT headers: trust a validator set, not the node that answers.

A header is accepted when the commit that follows it carries Ed25519 signatures, over
CometBFT's canonical vote bytes, from validators holding more than two thirds of the voting power
of the set the header names (``validators_hash``), and that set is one the client already trusts:
the genesis set, or a set announced (``next_validators_hash``) by a header verified before.
Sequential verification walks height by height; skipping verification jumps ahead when more than
a third of the trusted set also signed the target (CometBFT's ``light/verifier.go``), bisecting
when it did not. Everything is encoded here by hand, byte for byte as CometBFT v0.38 does
(``types/block.go``, ``types/vote.go``, ``types/validation.go``, ``types/validator_set.go``).
"""

from __future__ import annotations

import base64
import calendar
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from citychain.client.rpc import NodeClient
from citychain.client.verify import VerificationError
from citychain.core.crypto import verify_signature
from citychain.core.hashing import sha256
from citychain.core.simple_merkle import merkle_root

__all__ = [
    "BLOCK_ID_FLAG_ABSENT",
    "BLOCK_ID_FLAG_COMMIT",
    "BLOCK_ID_FLAG_NIL",
    "BlockId",
    "Commit",
    "CommitSig",
    "ForgedSignatureError",
    "Header",
    "HeaderMismatchError",
    "HeaderSource",
    "InsufficientVotingPowerError",
    "LightClient",
    "LightVerificationError",
    "MalformedAnswerError",
    "MalformedCommitError",
    "NotEnoughTrustError",
    "PartSetHeader",
    "RpcHeaderSource",
    "SignedHeader",
    "Timestamp",
    "TrustedBlock",
    "Validator",
    "ValidatorSet",
    "ValidatorSetMismatchError",
    "WrongChainError",
    "WrongHeightError",
    "parse_signed_header",
    "parse_validators",
    "results_hash",
    "validator_set_from_genesis",
    "verify_commit",
    "verify_commit_trusting",
    "vote_sign_bytes",
]

BLOCK_ID_FLAG_ABSENT = 1
BLOCK_ID_FLAG_COMMIT = 2
BLOCK_ID_FLAG_NIL = 3
PRECOMMIT_TYPE = 2
ED25519_KEY_TYPE = "tendermint/PubKeyEd25519"
VALIDATORS_PER_PAGE = 100


# ------------------------------------------------------------------------------ errors
class LightVerificationError(VerificationError):
    """A CometBFT header, commit or validator set does not verify; ``reason`` names why."""

    reason = "invalid"


class MalformedAnswerError(LightVerificationError):
    """The node's answer is not a well-formed CometBFT RPC answer."""

    reason = "malformed answer"


class WrongChainError(LightVerificationError):
    """The header is for another chain."""

    reason = "wrong chain"


class WrongHeightError(LightVerificationError):
    """The header, commit or answer is for another height than the one asked for."""

    reason = "wrong height"


class HeaderMismatchError(LightVerificationError):
    """The commit signs another block than the header, or the header does not link to the
    verified chain (last block id, time)."""

    reason = "commit is for another block"


class ValidatorSetMismatchError(LightVerificationError):
    """The validator set does not hash to the one the header names: stale, foreign or forged."""

    reason = "validator set does not match the header"


class MalformedCommitError(LightVerificationError):
    """The commit's signature list does not line up with the validator set."""

    reason = "malformed commit"


class ForgedSignatureError(LightVerificationError):
    """A commit signature does not verify under the validator's key."""

    reason = "forged signature"


class InsufficientVotingPowerError(LightVerificationError):
    """Valid signatures hold too little voting power (strictly more than 2/3 is needed)."""

    reason = "too few signatures"

    def __init__(self, message: str, *, signed: int, needed: int, total: int) -> None:
        super().__init__(message)
        self.signed, self.needed, self.total = signed, needed, total


class NotEnoughTrustError(InsufficientVotingPowerError):
    """Skipping: too little of the trusted set signed the target (the client then bisects)."""

    reason = "too little of the trusted validator set signed"


# ------------------------------------------------------------------------------ protobuf writer
def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint_field(number: int, value: int) -> bytes:
    """A proto3 varint field (uint32/uint64/int32/int64/enum); zero is omitted."""
    if value == 0:
        return b""
    return _uvarint(number << 3) + _uvarint(value & 0xFFFFFFFFFFFFFFFF)


def _sfixed64_field(number: int, value: int) -> bytes:
    if value == 0:
        return b""
    return _uvarint(number << 3 | 1) + struct.pack("<q", value)


def _bytes_field(number: int, data: bytes) -> bytes:
    """A proto3 bytes or string field; empty is omitted."""
    if not data:
        return b""
    return _uvarint(number << 3 | 2) + _uvarint(len(data)) + data


def _message_field(number: int, body: bytes) -> bytes:
    """An embedded message, always present (gogoproto ``nullable=false`` or a set pointer)."""
    return _uvarint(number << 3 | 2) + _uvarint(len(body)) + body


# ------------------------------------------------------------------------------ types
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$")


@dataclass(frozen=True, order=True)
class Timestamp:
    """A ``google.protobuf.Timestamp``: UNIX seconds and nanoseconds (UTC)."""

    seconds: int
    nanos: int = 0

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Parse CometBFT's RFC 3339 UTC time with up to nine fractional digits."""
        match = _RFC3339.match(text)
        if match is None:
            raise MalformedAnswerError(f"time {text!r} is not RFC 3339 UTC")
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        return cls(seconds, int((match.group(7) or "").ljust(9, "0")))

    def encode(self) -> bytes:
        return _varint_field(1, self.seconds) + _varint_field(2, self.nanos)


@dataclass(frozen=True)
class PartSetHeader:
    total: int
    hash: bytes

    def encode(self) -> bytes:
        return _varint_field(1, self.total) + _bytes_field(2, self.hash)


@dataclass(frozen=True)
class BlockId:
    hash: bytes
    parts: PartSetHeader

    @property
    def is_zero(self) -> bool:
        return not self.hash and self.parts.total == 0 and not self.parts.hash

    def encode(self) -> bytes:
        """``BlockID`` and ``CanonicalBlockID`` share this layout."""
        return _bytes_field(1, self.hash) + _message_field(2, self.parts.encode())


@dataclass(frozen=True)
class Header:
    """A CometBFT block header (v0.38, block protocol 11)."""

    version_block: int
    version_app: int
    chain_id: str
    height: int
    time: Timestamp
    last_block_id: BlockId
    last_commit_hash: bytes
    data_hash: bytes
    validators_hash: bytes
    next_validators_hash: bytes
    consensus_hash: bytes
    app_hash: bytes
    last_results_hash: bytes
    evidence_hash: bytes
    proposer_address: bytes

    def compute_hash(self) -> bytes:
        """The block hash: a simple Merkle tree over the 14 protobuf-encoded header fields,
        scalars wrapped in StringValue/Int64Value/BytesValue (empty values as empty leaves)."""
        return merkle_root([
            _varint_field(1, self.version_block) + _varint_field(2, self.version_app),
            _bytes_field(1, self.chain_id.encode()),
            _varint_field(1, self.height),
            self.time.encode(),
            self.last_block_id.encode(),
            _bytes_field(1, self.last_commit_hash),
            _bytes_field(1, self.data_hash),
            _bytes_field(1, self.validators_hash),
            _bytes_field(1, self.next_validators_hash),
            _bytes_field(1, self.consensus_hash),
            _bytes_field(1, self.app_hash),
            _bytes_field(1, self.last_results_hash),
            _bytes_field(1, self.evidence_hash),
            _bytes_field(1, self.proposer_address),
        ])


@dataclass(frozen=True)
class CommitSig:
    flag: int
    validator_address: bytes
    timestamp: Timestamp
    signature: bytes


@dataclass(frozen=True)
class Commit:
    height: int
    round: int
    block_id: BlockId
    signatures: tuple[CommitSig, ...]


@dataclass(frozen=True)
class SignedHeader:
    header: Header
    commit: Commit


def vote_sign_bytes(chain_id: str, commit: Commit, index: int) -> bytes:
    """The bytes validator ``index`` signed: its precommit as a uvarint-delimited
    ``CanonicalVote`` (height and round as sfixed64, the block id only for a COMMIT vote, the
    timestamp always present)."""
    sig = commit.signatures[index]
    block_id = commit.block_id if sig.flag == BLOCK_ID_FLAG_COMMIT else None
    body = (_varint_field(1, PRECOMMIT_TYPE)
            + _sfixed64_field(2, commit.height)
            + _sfixed64_field(3, commit.round)
            + (_message_field(4, block_id.encode())
               if block_id is not None and not block_id.is_zero else b"")
            + _message_field(5, sig.timestamp.encode())
            + _bytes_field(6, chain_id.encode()))
    return _uvarint(len(body)) + body


@dataclass(frozen=True)
class Validator:
    pub_key: bytes
    power: int

    @property
    def address(self) -> bytes:
        """CometBFT's Ed25519 address: the first 20 bytes of SHA-256 of the key."""
        return sha256(self.pub_key)[:20]

    def encode(self) -> bytes:
        """``SimpleValidator{pub_key: PublicKey{ed25519}, voting_power}``."""
        return _message_field(1, _bytes_field(1, self.pub_key)) + _varint_field(2, self.power)


@dataclass(frozen=True)
class ValidatorSet:
    """Validators in CometBFT's order: voting power descending, then address ascending."""

    validators: tuple[Validator, ...]
    _by_address: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_address",
                           {v.address: i for i, v in enumerate(self.validators)})

    @classmethod
    def of(cls, validators: Sequence[Validator]) -> ValidatorSet:
        return cls(tuple(sorted(validators, key=lambda v: (-v.power, v.address))))

    def __len__(self) -> int:
        return len(self.validators)

    def __iter__(self) -> Iterator[Validator]:
        return iter(self.validators)

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def compute_hash(self) -> bytes:
        return merkle_root([v.encode() for v in self.validators])

    def index_of(self, address: bytes) -> int | None:
        return self._by_address.get(address)


def results_hash(results: Sequence[Mapping[str, Any]]) -> bytes:
    """``last_results_hash`` over a ``block_results`` answer's tx results: a simple Merkle tree of
    each ``ExecTxResult`` reduced to its deterministic fields (code, data, gas wanted, gas used).

    Raises:
        MalformedAnswerError: a result field is malformed.
    """
    try:
        return merkle_root([
            _varint_field(1, int(r.get("code") or 0))
            + _bytes_field(2, _b64(r.get("data")))
            + _varint_field(5, int(r.get("gas_wanted") or 0))
            + _varint_field(6, int(r.get("gas_used") or 0))
            for r in results])
    except Exception as exc:
        raise MalformedAnswerError(f"a tx result is malformed: {exc!r}") from None


# ------------------------------------------------------------------------------ parsing RPC JSON
def _hex(value: Any) -> bytes:
    return bytes.fromhex(value or "")


def _b64(value: Any) -> bytes:
    return base64.b64decode(value or "", validate=True)


def _block_id(value: Mapping[str, Any]) -> BlockId:
    parts = value["parts"]
    return BlockId(_hex(value["hash"]), PartSetHeader(int(parts["total"]), _hex(parts["hash"])))


def _header(value: Mapping[str, Any]) -> Header:
    return Header(
        version_block=int(value["version"]["block"]),
        version_app=int(value["version"].get("app") or 0),
        chain_id=str(value["chain_id"]), height=int(value["height"]),
        time=Timestamp.parse(value["time"]), last_block_id=_block_id(value["last_block_id"]),
        last_commit_hash=_hex(value["last_commit_hash"]), data_hash=_hex(value["data_hash"]),
        validators_hash=_hex(value["validators_hash"]),
        next_validators_hash=_hex(value["next_validators_hash"]),
        consensus_hash=_hex(value["consensus_hash"]), app_hash=_hex(value["app_hash"]),
        last_results_hash=_hex(value["last_results_hash"]),
        evidence_hash=_hex(value["evidence_hash"]),
        proposer_address=_hex(value["proposer_address"]))


def _commit(value: Mapping[str, Any]) -> Commit:
    signatures = tuple(
        CommitSig(flag=int(s["block_id_flag"]), validator_address=_hex(s["validator_address"]),
                  timestamp=Timestamp.parse(s["timestamp"]), signature=_b64(s["signature"]))
        for s in value["signatures"])
    return Commit(int(value["height"]), int(value["round"]), _block_id(value["block_id"]),
                  signatures)


def parse_signed_header(result: Mapping[str, Any]) -> SignedHeader:
    """Parse the result of the ``commit`` RPC (``{signed_header: {header, commit}}``).

    Raises:
        MalformedAnswerError: a field is missing or malformed.
    """
    try:
        signed = result["signed_header"]
        return SignedHeader(_header(signed["header"]), _commit(signed["commit"]))
    except LightVerificationError:
        raise
    except Exception as exc:
        raise MalformedAnswerError(f"the commit answer is malformed: {exc!r}") from None


def _validator(value: Mapping[str, Any], power_field: str) -> Validator:
    key = value["pub_key"]
    if key.get("type") != ED25519_KEY_TYPE:
        raise MalformedAnswerError(f"validator key type {key.get('type')!r} is not supported")
    validator = Validator(_b64(key["value"]), int(value[power_field]))
    if len(validator.pub_key) != 32 or validator.power <= 0:
        raise MalformedAnswerError("a validator has a malformed key or a non-positive power")
    if value.get("address") and _hex(value["address"]) != validator.address:
        raise MalformedAnswerError(f"validator address {value['address']} is not its key's")
    return validator


def parse_validators(result: Mapping[str, Any]) -> tuple[int, int, list[Validator]]:
    """Parse one page of the ``validators`` RPC: (block height, total count, validators).

    Raises:
        MalformedAnswerError: a field is missing or malformed, or a key type is not Ed25519.
    """
    try:
        return (int(result["block_height"]), int(result["total"]),
                [_validator(v, "voting_power") for v in result["validators"]])
    except LightVerificationError:
        raise
    except Exception as exc:
        raise MalformedAnswerError(f"the validators answer is malformed: {exc!r}") from None


def validator_set_from_genesis(genesis: Mapping[str, Any]) -> ValidatorSet:
    """The validator set a genesis document (``config/genesis.json``) starts the chain with.

    Raises:
        MalformedAnswerError: the document has no validators or a malformed one.
    """
    try:
        validators = [_validator(v, "power") for v in genesis["validators"]]
    except LightVerificationError:
        raise
    except Exception as exc:
        raise MalformedAnswerError(f"the genesis validators are malformed: {exc!r}") from None
    if not validators:
        raise MalformedAnswerError("the genesis document lists no validators to trust")
    return ValidatorSet.of(validators)


# ------------------------------------------------------------------------------ pure checks
def _check_header(signed: SignedHeader, chain_id: str, height: int) -> None:
    header, commit = signed.header, signed.commit
    if header.chain_id != chain_id:
        raise WrongChainError(f"header is for chain {header.chain_id!r}, not {chain_id!r}")
    if header.height != height or commit.height != height:
        raise WrongHeightError(f"asked for height {height}; got header {header.height} with "
                               f"commit {commit.height}")
    if commit.block_id.hash != header.compute_hash():
        raise HeaderMismatchError(f"the commit at height {height} signs block "
                                  f"{commit.block_id.hash.hex()}, not this header "
                                  f"({header.compute_hash().hex()})")


def _tally(chain_id: str, validators: ValidatorSet, commit: Commit, *,
           by_index: bool) -> int:
    """Verify every COMMIT signature of ``validators``' members; return their summed power."""
    signed = 0
    seen: set[int] = set()
    for index, sig in enumerate(commit.signatures):
        if sig.flag != BLOCK_ID_FLAG_COMMIT:
            if sig.flag not in (BLOCK_ID_FLAG_ABSENT, BLOCK_ID_FLAG_NIL):
                raise MalformedCommitError(f"signature {index} has unknown flag {sig.flag}")
            continue
        if by_index:
            validator = validators.validators[index]
            if validator.address != sig.validator_address:
                raise MalformedCommitError(
                    f"signature {index} is from {sig.validator_address.hex()}, but validator "
                    f"{index} of the set is {validator.address.hex()}")
        else:
            position = validators.index_of(sig.validator_address)
            if position is None:
                continue
            if position in seen:
                raise MalformedCommitError(f"validator {sig.validator_address.hex()} signed "
                                           "twice")
            seen.add(position)
            validator = validators.validators[position]
        if not verify_signature(validator.pub_key, vote_sign_bytes(chain_id, commit, index),
                                sig.signature):
            raise ForgedSignatureError(f"signature {index} by {validator.address.hex()} on "
                                       f"height {commit.height} does not verify")
        signed += validator.power
    return signed


def verify_commit(chain_id: str, validators: ValidatorSet, signed: SignedHeader,
                  height: int) -> None:
    """Check that ``signed`` is block ``height`` of ``chain_id``, that ``validators`` is the set
    its header names, and that members holding more than 2/3 of its power signed it.

    Raises:
        WrongChainError, WrongHeightError, HeaderMismatchError: the header or commit is for
            another chain, height or block.
        ValidatorSetMismatchError: ``validators`` is not the header's set (a stale one).
        MalformedCommitError: the signatures do not line up with the set.
        ForgedSignatureError: a signature does not verify.
        InsufficientVotingPowerError: the valid signatures hold 2/3 of the power or less.
    """
    _check_header(signed, chain_id, height)
    if validators.compute_hash() != signed.header.validators_hash:
        raise ValidatorSetMismatchError(
            f"the validator set hashes to {validators.compute_hash().hex()}, but header "
            f"{height} names {signed.header.validators_hash.hex()}")
    if len(signed.commit.signatures) != len(validators):
        raise MalformedCommitError(f"the commit has {len(signed.commit.signatures)} signatures "
                                   f"for {len(validators)} validators")
    total = validators.total_power
    needed = total * 2 // 3
    got = _tally(chain_id, validators, signed.commit, by_index=True)
    if got <= needed:
        raise InsufficientVotingPowerError(
            f"block {height} is signed by {got} of {total} voting power; more than {needed} "
            "is needed", signed=got, needed=needed, total=total)


def verify_commit_trusting(chain_id: str, trusted: ValidatorSet, commit: Commit, *,
                           numerator: int = 1, denominator: int = 3) -> None:
    """Check that members of ``trusted`` holding more than ``numerator/denominator`` of its
    power signed ``commit`` (signatures matched by address).

    Raises:
        MalformedCommitError, ForgedSignatureError: as :func:`verify_commit`.
        NotEnoughTrustError: too little trusted power signed.
    """
    total = trusted.total_power
    needed = total * numerator // denominator
    got = _tally(chain_id, trusted, commit, by_index=False)
    if got <= needed:
        raise NotEnoughTrustError(
            f"block {commit.height} is signed by {got} of the trusted set's {total} voting "
            f"power; more than {needed} is needed to skip to it", signed=got, needed=needed,
            total=total)


# ------------------------------------------------------------------------------ the light client
class HeaderSource(Protocol):
    """Where signed headers and validator sets come from (untrusted)."""

    def signed_header(self, height: int) -> SignedHeader: ...

    def validators(self, height: int) -> ValidatorSet: ...

    def latest_height(self) -> int: ...


class RpcHeaderSource:
    """Signed headers and validator sets from a CometBFT node's RPC (``commit``,
    ``validators`` page by page, ``status``)."""

    def __init__(self, node: NodeClient) -> None:
        self.node = node

    def signed_header(self, height: int) -> SignedHeader:
        return parse_signed_header(self.node.call("commit", height=str(height)))

    def validators(self, height: int) -> ValidatorSet:
        found: list[Validator] = []
        page = 1
        while True:
            answered, total, validators = parse_validators(self.node.call(
                "validators", height=str(height), page=str(page),
                per_page=str(VALIDATORS_PER_PAGE)))
            if answered != height:
                raise WrongHeightError(f"asked for the validators at {height}, got {answered}")
            found.extend(validators)
            if len(found) >= total or not validators:
                break
            page += 1
        if len(found) != total:
            raise MalformedAnswerError(f"the node listed {len(found)} of {total} validators")
        return ValidatorSet.of(found)

    def latest_height(self) -> int:
        try:
            return int(self.node.status()["sync_info"]["latest_block_height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedAnswerError(f"the status answer is malformed: {exc!r}") from None


@dataclass(frozen=True)
class TrustedBlock:
    """A verified point: header ``height`` (None before the first block) and, once known, the
    validator set that must sign ``height + 1``."""

    chain_id: str
    height: int
    header: Header | None
    next_validators: ValidatorSet | None

    @classmethod
    def genesis(cls, genesis: Mapping[str, Any]) -> TrustedBlock:
        """Trust a genesis document: its chain id and validators sign the first block.

        Raises:
            MalformedAnswerError: the document lacks a chain id or validators.
        """
        chain_id = genesis.get("chain_id")
        if not isinstance(chain_id, str) or not chain_id:
            raise MalformedAnswerError("the genesis document has no chain id")
        try:
            initial = int(genesis.get("initial_height") or 0) or 1  # "0" means 1, as in CometBFT
        except (TypeError, ValueError):
            raise MalformedAnswerError("the genesis initial_height is not an integer") from None
        return cls(chain_id, initial - 1, None, validator_set_from_genesis(genesis))


class LightClient:
    """Verifies headers from a trusted block forward (sequentially, or skipping with bisection
    when ``skipping``) and backward by hash links; remembers each verified header."""

    def __init__(self, source: HeaderSource, trusted: TrustedBlock, *,
                 skipping: bool = False) -> None:
        self.source = source
        self.chain_id = trusted.chain_id
        self.skipping = skipping
        self._first = trusted
        self._latest = trusted
        self._verified: dict[int, Header] = {}
        if trusted.header is not None:
            self._verified[trusted.height] = trusted.header

    @property
    def latest(self) -> TrustedBlock:
        return self._latest

    def verified_header(self, height: int) -> Header:
        """Return header ``height`` once it verifies against the trusted validators.

        Raises:
            LightVerificationError: (a subclass naming the reason) the header does not verify.
            RpcError: the node could not be asked.
        """
        if height <= self._first.height:
            raise WrongHeightError(f"height {height} precedes the trusted height "
                                   f"{self._first.height}")
        if height in self._verified:
            return self._verified[height]
        if height < self._latest.height:
            return self._verify_backwards(height)
        if self.skipping:
            self._skip_to(height)
        else:
            while self._latest.height < height:
                self._latest = self._verify_adjacent(self._latest)
        return self._verified[height]

    # -- steps
    def _next_validators(self, trusted: TrustedBlock) -> ValidatorSet:
        if trusted.next_validators is not None:
            return trusted.next_validators
        if trusted.header is None:  # a genesis point always carries its set; never reached
            raise ValidatorSetMismatchError("no validator set is trusted for the first block")
        served = self.source.validators(trusted.height + 1)
        if served.compute_hash() != trusted.header.next_validators_hash:
            raise ValidatorSetMismatchError(
                f"the validators served for height {trusted.height + 1} hash to "
                f"{served.compute_hash().hex()}, but verified header {trusted.height} announced "
                f"{trusted.header.next_validators_hash.hex()}")
        return served

    def _accept(self, previous: TrustedBlock, signed: SignedHeader,
                validators: ValidatorSet) -> TrustedBlock:
        header = signed.header
        if previous.header is not None and header.time <= previous.header.time:
            raise HeaderMismatchError(f"header {header.height} is not later than verified "
                                      f"header {previous.height}")
        self._verified[header.height] = header
        same = header.next_validators_hash == header.validators_hash
        return TrustedBlock(self.chain_id, header.height, header, validators if same else None)

    def _verify_adjacent(self, trusted: TrustedBlock) -> TrustedBlock:
        height = trusted.height + 1
        validators = self._next_validators(trusted)
        signed = self.source.signed_header(height)
        verify_commit(self.chain_id, validators, signed, height)
        if (trusted.header is not None
                and signed.header.last_block_id.hash != trusted.header.compute_hash()):
            raise HeaderMismatchError(f"header {height} does not link to verified header "
                                      f"{trusted.height}")
        return self._accept(trusted, signed, validators)

    def _verify_non_adjacent(self, trusted: TrustedBlock, height: int) -> TrustedBlock:
        signed = self.source.signed_header(height)
        validators = self.source.validators(height)
        verify_commit(self.chain_id, validators, signed, height)
        verify_commit_trusting(self.chain_id, self._next_validators(trusted), signed.commit)
        return self._accept(trusted, signed, validators)

    def _skip_to(self, height: int) -> None:
        pending = [height]
        while pending:
            target = pending[-1]
            if target <= self._latest.height:
                pending.pop()
                continue
            if target == self._latest.height + 1:
                self._latest = self._verify_adjacent(self._latest)
                pending.pop()
                continue
            try:
                self._latest = self._verify_non_adjacent(self._latest, target)
                pending.pop()
            except NotEnoughTrustError:
                pending.append((self._latest.height + target) // 2)

    def _verify_backwards(self, height: int) -> Header:
        above = min(h for h in self._verified if h > height)
        header = self._verified[above]
        for lower in range(above - 1, height - 1, -1):
            signed = self.source.signed_header(lower)
            if signed.header.chain_id != self.chain_id or signed.header.height != lower:
                raise WrongHeightError(f"asked for header {lower}, got "
                                       f"{signed.header.chain_id}/{signed.header.height}")
            if signed.header.compute_hash() != header.last_block_id.hash:
                raise HeaderMismatchError(f"header {lower} is not the one verified header "
                                          f"{lower + 1} links to")
            header = signed.header
            self._verified[lower] = header
        return header
