"""LightVerifier over proof bundles built from a real in-process chain: genuine bundles verify;
a wrong value, a proof for another key, an untrusted signer, another chain or height, too few
CometBFT signatures and a stale validator set are refused with the typed error naming why."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from typing import Any

import pytest

from citychain.client.cometbft import (
    BLOCK_ID_FLAG_ABSENT,
    BLOCK_ID_FLAG_COMMIT,
    BlockId,
    Commit,
    CommitSig,
    Header,
    InsufficientVotingPowerError,
    MalformedAnswerError,
    PartSetHeader,
    SignedHeader,
    Timestamp,
    Validator,
    ValidatorSet,
    ValidatorSetMismatchError,
    WrongChainError,
    WrongHeightError,
    vote_sign_bytes,
)
from citychain.client.errors import VerificationError
from citychain.client.light import (
    LightVerifier,
    UntrustedHeaderError,
    jsonable,
    typed_query_params,
)
from citychain.client.network import (
    AnswerMismatchError,
    MissingProofError,
    ProofMismatchError,
    TxProofError,
)
from citychain.consensus.solo.block import Header as SoloHeader
from citychain.consensus.solo.block import sign_header
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.hashing import EMPTY_HASH, sha256
from citychain.core.simple_merkle import inclusion_proof, merkle_root
from citychain.core.tx import tx_hash
from citychain.modules.bank.messages import MsgTransfer
from citychain.modules.bank.module import MODULE as BANK
from citychain.testing.chain import Cast, ChainRunner, memory_chain

DENOM = "ucity"


@pytest.fixture(scope="module")
def chain() -> tuple[ChainRunner, Cast]:
    """An in-memory chain at height 2: genesis, then a block where Alice sends Bob 25."""
    runner, cast = memory_chain()
    (result,) = runner.run(_transfer(runner, cast.citizens[0], cast.citizens[1], 25))
    assert result.code == 0, result.log
    return runner, cast


def _transfer(runner: ChainRunner, sender: PrivateKey, to: PrivateKey, amount: int) -> bytes:
    return runner.tx(sender, MsgTransfer(to.did, DENOM, amount))


def balance_params(key: PrivateKey) -> dict[str, Any]:
    return {"address": key.address, "denom": DENOM}


def proven(runner: ChainRunner, path: str, params: dict[str, Any]) -> tuple[int, bytes, bytes]:
    """(height, canonical value, reads blob) of a proven query on the real app."""
    response = runner.app.query(path, codec.encode(params), 0, True)
    assert response.ok, response.log
    reads = codec.encode([{"key": r.key, "value": r.value, "proof": r.proof.to_value()}
                          for r in response.reads])
    return response.height, response.value, reads


def answer(module: str, name: str, height: int, value: bytes, reads: bytes,
           light: dict[str, Any]) -> dict[str, Any]:
    """The gateway's JSON answer for a proven query."""
    return {"module": module, "query": name, "height": height,
            "value": jsonable(codec.decode(value)),
            "proof": {"height": height, "value": base64.b64encode(value).decode(),
                      "reads": base64.b64encode(reads).decode(), "light": light}}


# ============================================================================ solo
def solo_genesis(runner: ChainRunner) -> dict[str, Any]:
    return runner.genesis.to_json_value()


def solo_light(runner: ChainRunner, signer: PrivateKey, *, chain_id: str | None = None,
               height: int | None = None, app_hash: bytes | None = None,
               tx_root: bytes = EMPTY_HASH) -> dict[str, Any]:
    header = SoloHeader(chain_id or runner.chain_id, height or runner.height, runner.time_ns,
                        sha256(b"prev"), tx_root, EMPTY_HASH, app_hash or runner.app_hash,
                        signer.address)
    signed = sign_header(signer, header)
    return {"driver": "solo", "height": header.height,
            "signed_header": base64.b64encode(codec.encode(signed.to_value())).decode()}


def solo_answer(chain: tuple[ChainRunner, Cast], key: PrivateKey, **light: Any) -> dict[str, Any]:
    runner, cast = chain
    height, value, reads = proven(runner, "/bank/balance", balance_params(key))
    return answer("bank", "balance", height, value, reads,
                  solo_light(runner, light.pop("signer", cast.node), **light))


def test_genuine_solo_answer_verifies(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    verifier = LightVerifier(solo_genesis(runner))
    assert (verifier.driver, verifier.chain_id) == ("solo", runner.chain_id)
    value = verifier.verify_query("bank", "balance", balance_params(bob), solo_answer(chain, bob),
                                  height=runner.height)
    assert value["amount"] == runner.balance(bob) == 1_000_000_025


def test_invalid_wrong_json_value(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    forged = solo_answer(chain, bob)
    forged["value"]["amount"] += 1
    with pytest.raises(AnswerMismatchError, match="JSON value"):
        LightVerifier(solo_genesis(runner)).verify_query("bank", "balance", balance_params(bob),
                                                         forged)


def test_invalid_wrong_canonical_value(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    forged = solo_answer(chain, bob)
    value = codec.decode(base64.b64decode(forged["proof"]["value"]))
    value["amount"] += 1
    forged["value"] = jsonable(value)
    forged["proof"]["value"] = base64.b64encode(codec.encode(value)).decode()
    with pytest.raises(AnswerMismatchError, match="re-run"):
        LightVerifier(solo_genesis(runner)).verify_query("bank", "balance", balance_params(bob),
                                                         forged)


def test_invalid_proof_for_another_key(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    alice, bob = cast.citizens[0], cast.citizens[1]
    verifier = LightVerifier(solo_genesis(runner))
    alices = solo_answer(chain, alice)
    with pytest.raises(MissingProofError, match="no proof was sent"):  # Alice's, asked for Bob
        verifier.verify_query("bank", "balance", balance_params(bob), alices)
    # Alice's proof and value relabelled as Bob's key
    bobs = solo_answer(chain, bob)
    _, _, alice_reads = proven(runner, "/bank/balance", balance_params(alice))
    mine = codec.decode(base64.b64decode(bobs["proof"]["reads"]))
    theirs = codec.decode(alice_reads)
    index = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True))
                 if a["key"] != b["key"])
    mine[index]["proof"], mine[index]["value"] = theirs[index]["proof"], theirs[index]["value"]
    bobs["proof"]["reads"] = base64.b64encode(codec.encode(mine)).decode()
    with pytest.raises(ProofMismatchError):
        verifier.verify_query("bank", "balance", balance_params(bob), bobs)


def test_invalid_header_signed_by_an_untrusted_key(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    forged = solo_answer(chain, bob, signer=cast.city)  # a real key, not the genesis validator
    with pytest.raises(UntrustedHeaderError):
        LightVerifier(solo_genesis(runner)).verify_query("bank", "balance", balance_params(bob),
                                                         forged)


def test_invalid_header_for_another_chain_or_height(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    verifier = LightVerifier(solo_genesis(runner))
    with pytest.raises(WrongChainError):
        verifier.verify_query("bank", "balance", balance_params(bob),
                              solo_answer(chain, bob, chain_id="another-city"))
    with pytest.raises(WrongHeightError):  # a genuine signature on a header of another height
        verifier.verify_query("bank", "balance", balance_params(bob),
                              solo_answer(chain, bob, height=runner.height + 1))
    with pytest.raises(WrongHeightError):  # an answer at another height than asked
        verifier.verify_query("bank", "balance", balance_params(bob), solo_answer(chain, bob),
                              height=runner.height - 1)


def test_invalid_app_hash_or_missing_proof(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    verifier = LightVerifier(solo_genesis(runner))
    with pytest.raises(ProofMismatchError):  # signed by the validator, over another state
        verifier.verify_query("bank", "balance", balance_params(bob),
                              solo_answer(chain, bob, app_hash=sha256(b"other state")))
    bare = solo_answer(chain, bob)
    bare["proof"] = None
    with pytest.raises(MissingProofError):
        verifier.verify_query("bank", "balance", balance_params(bob), bare)
    cometbft_shaped = solo_answer(chain, bob)
    cometbft_shaped["proof"]["light"]["driver"] = "cometbft"
    with pytest.raises(MalformedAnswerError):
        verifier.verify_query("bank", "balance", balance_params(bob), cometbft_shaped)


def test_solo_tx_inclusion(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    txs = [b"tx-%d" % i for i in range(5)]
    root = merkle_root([tx_hash(t) for t in txs])
    light = solo_light(runner, cast.node, tx_root=root)
    verifier = LightVerifier(solo_genesis(runner))

    def tx_answer(index: int, claimed: int | None = None) -> dict[str, Any]:
        return {"hash": tx_hash(txs[index]).hex(), "height": runner.height,
                "index": index if claimed is None else claimed,
                "tx": base64.b64encode(txs[index]).decode(), "light": light,
                "proof": {"root_hash": root.hex(), "index": index, "total": len(txs),
                          "aunts": [a.hex() for a in inclusion_proof(
                              [tx_hash(t) for t in txs], index)]}}

    assert verifier.verify_tx(tx_hash(txs[3]).hex(), tx_answer(3)) == runner.height
    with pytest.raises(TxProofError, match="another tx"):
        verifier.verify_tx(tx_hash(txs[2]).hex(), tx_answer(3))
    with pytest.raises(TxProofError):
        verifier.verify_tx(tx_hash(txs[3]).hex(), tx_answer(3, claimed=2))
    moved = tx_answer(3)
    moved["proof"]["index"] = moved["index"] = 2
    with pytest.raises(TxProofError, match="does not match"):
        verifier.verify_tx(tx_hash(txs[3]).hex(), moved)


def test_invalid_trusted_genesis() -> None:
    with pytest.raises(VerificationError, match="not valid"):
        LightVerifier({"chain_id": "x", "validators": []})


def test_typed_params_and_jsonable() -> None:
    assert typed_query_params(BANK, "denoms", {"limit": "5", "start_after": None}) == {
        "limit": 5}
    assert jsonable({"k": (b"\x01", 2)}) == {"k": ["01", 2]}


# ============================================================================ CometBFT
CHAIN = "citychain-light-unit"
START = 1_767_225_600


def keys(name: str, count: int) -> list[PrivateKey]:
    return [PrivateKey.from_secret(f"test_light_verifier/{name}/{i}") for i in range(count)]


FOUR, NEW = keys("four", 4), keys("new", 4)


def validator_set(members: list[PrivateKey], power: int = 10) -> ValidatorSet:
    return ValidatorSet.of([Validator(k.public_key, power) for k in members])


def rfc3339(stamp: Timestamp) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp.seconds)) + \
        f".{stamp.nanos:09d}Z"


def sign_commit(header: Header, validators: ValidatorSet, signers: dict[bytes, PrivateKey], *,
                absent: frozenset[int] = frozenset()) -> Commit:
    block_id = BlockId(header.compute_hash(), PartSetHeader(1, sha256(b"parts")))
    moment = replace(header.time, nanos=500_000_000)
    unsigned = Commit(header.height, 0, block_id, tuple(
        CommitSig(BLOCK_ID_FLAG_ABSENT if i in absent else BLOCK_ID_FLAG_COMMIT,
                  b"" if i in absent else v.address, moment, b"")
        for i, v in enumerate(validators)))
    signatures = []
    for index, (sig, validator) in enumerate(zip(unsigned.signatures, validators, strict=True)):
        if sig.flag == BLOCK_ID_FLAG_COMMIT:
            sig = replace(sig, signature=signers[validator.address].sign(
                vote_sign_bytes(CHAIN, unsigned, index)))
        signatures.append(sig)
    return replace(unsigned, signatures=tuple(signatures))


def block_id_json(block_id: BlockId) -> dict[str, Any]:
    return {"hash": block_id.hash.hex().upper(),
            "parts": {"total": block_id.parts.total, "hash": block_id.parts.hash.hex().upper()}}


def signed_header_json(signed: SignedHeader) -> dict[str, Any]:
    """A signed header as CometBFT's ``commit`` RPC writes it."""
    h, c = signed.header, signed.commit
    return {
        "header": {
            "version": {"block": str(h.version_block), "app": str(h.version_app)},
            "chain_id": h.chain_id, "height": str(h.height), "time": rfc3339(h.time),
            "last_block_id": block_id_json(h.last_block_id),
            **{name: getattr(h, name).hex().upper() for name in (
                "last_commit_hash", "data_hash", "validators_hash", "next_validators_hash",
                "consensus_hash", "app_hash", "last_results_hash", "evidence_hash",
                "proposer_address")}},
        "commit": {"height": str(c.height), "round": c.round,
                   "block_id": block_id_json(c.block_id),
                   "signatures": [{"block_id_flag": s.flag,
                                   "validator_address": s.validator_address.hex().upper(),
                                   "timestamp": rfc3339(s.timestamp),
                                   "signature": base64.b64encode(s.signature).decode() or None}
                                  for s in c.signatures]}}


def validator_json(validator: Validator, power_field: str) -> dict[str, Any]:
    return {"address": validator.address.hex().upper(),
            "pub_key": {"type": "tendermint/PubKeyEd25519",
                        "value": base64.b64encode(validator.pub_key).decode()},
            power_field: str(validator.power)}


class Network:
    """Headers 1..top of a CometBFT-shaped chain whose validator set at each height is given;
    serves ``GET /v1/light/{h}`` answers and counts what was fetched."""

    def __init__(self, sets: dict[int, list[PrivateKey]], top: int,
                 app_hashes: dict[int, bytes], txs: dict[int, list[bytes]] | None = None
                 ) -> None:
        self.members = {h: sets[max(k for k in sets if k <= h)] for h in range(1, top + 2)}
        self.signers = {Validator(k.public_key, 1).address: k
                        for members in sets.values() for k in members}
        self.served: dict[int, ValidatorSet] = {}
        self.headers: dict[int, SignedHeader] = {}
        self.fetched: list[int] = []
        last = BlockId(b"", PartSetHeader(0, b""))
        for height in range(1, top + 1):
            data = (txs or {}).get(height, [])
            header = Header(
                version_block=11, version_app=1, chain_id=CHAIN, height=height,
                time=Timestamp(START + height), last_block_id=last,
                last_commit_hash=sha256(b"lc%d" % height),
                data_hash=merkle_root([sha256(t) for t in data]),
                validators_hash=self.validators(height).compute_hash(),
                next_validators_hash=self.validators(height + 1).compute_hash(),
                consensus_hash=sha256(b"params"),
                app_hash=app_hashes.get(height, sha256(b"app%d" % height)),
                last_results_hash=sha256(b""), evidence_hash=sha256(b""),
                proposer_address=self.validators(height).validators[0].address)
            commit = sign_commit(header, self.validators(height), self.signers)
            self.headers[height] = SignedHeader(header, commit)
            last = commit.block_id

    def validators(self, height: int) -> ValidatorSet:
        return self.served.get(height) or validator_set(self.members[height])

    def genesis(self) -> dict[str, Any]:
        return {"chain_id": CHAIN, "initial_height": "1", "genesis_time": rfc3339(
            Timestamp(START)), "validators": [
            {**validator_json(v, "power"), "name": ""} for v in validator_set(self.members[1])]}

    def light(self, height: int) -> dict[str, Any]:
        self.fetched.append(height)
        validators = self.validators(height)
        return {"driver": "cometbft", "height": height,
                "signed_header": signed_header_json(self.headers[height]),
                "validators": {"block_height": str(height), "count": str(len(validators)),
                               "total": str(len(validators)),
                               "validators": [validator_json(v, "voting_power")
                                              for v in validators]}}

    def verifier(self, *, skipping: bool = False) -> LightVerifier:
        return LightVerifier(self.genesis(), fetch_light=self.light, skipping=skipping)


def cometbft_answer(chain: tuple[ChainRunner, Cast], network: Network, key: PrivateKey,
                    height: int) -> dict[str, Any]:
    """A proven balance answer at ``height``: reads from the real app, header ``height + 1``."""
    _, value, reads = proven(chain[0], "/bank/balance", balance_params(key))
    light = network.light(height + 1)
    network.fetched.clear()
    return answer("bank", "balance", height, value, reads, light)


@pytest.mark.parametrize("skipping", [False, True])
def test_genuine_cometbft_answer_verifies(chain: tuple[ChainRunner, Cast],
                                          skipping: bool) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    network = Network({1: FOUR}, 6, {6: runner.app_hash})
    verifier = network.verifier(skipping=skipping)
    assert (verifier.driver, verifier.chain_id) == ("cometbft", CHAIN)
    value = verifier.verify_query("bank", "balance", balance_params(bob),
                                  cometbft_answer(chain, network, bob, 5), height=5)
    assert value["amount"] == runner.balance(bob)
    assert network.fetched == ([] if skipping else [1, 2, 3, 4, 5])


@pytest.mark.parametrize("skipping", [False, True])
def test_validator_set_change_is_followed(chain: tuple[ChainRunner, Cast],
                                          skipping: bool) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    network = Network({1: FOUR, 3: [*FOUR[:2], *NEW[:2]], 5: NEW}, 8, {8: runner.app_hash})
    value = network.verifier(skipping=skipping).verify_query(
        "bank", "balance", balance_params(bob), cometbft_answer(chain, network, bob, 7))
    assert value["amount"] == runner.balance(bob)


def test_invalid_too_few_signatures(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    network = Network({1: FOUR}, 3, {3: runner.app_hash})
    signed = network.headers[3]
    network.headers[3] = SignedHeader(signed.header, sign_commit(
        signed.header, network.validators(3), network.signers, absent=frozenset({1, 2})))
    with pytest.raises(InsufficientVotingPowerError) as caught:
        network.verifier().verify_query("bank", "balance", balance_params(bob),
                                        cometbft_answer(chain, network, bob, 2))
    assert (caught.value.signed, caught.value.total) == (20, 40)


def test_invalid_stale_validator_set(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    network = Network({1: FOUR, 4: NEW}, 6, {6: runner.app_hash})
    network.served[4] = validator_set(FOUR)  # the gateway serves the old set for height 4
    with pytest.raises(ValidatorSetMismatchError, match="announced"):
        network.verifier().verify_query("bank", "balance", balance_params(bob),
                                        cometbft_answer(chain, network, bob, 5))


def test_invalid_header_signed_by_the_old_set_after_a_change(
        chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    network = Network({1: FOUR, 4: NEW}, 5, {5: runner.app_hash})
    old = validator_set(FOUR)
    header = replace(network.headers[5].header, validators_hash=old.compute_hash())
    network.headers[5] = SignedHeader(header, sign_commit(header, old, network.signers))
    network.served[5] = old  # the bundle carries the old set, consistent with its header
    with pytest.raises(ValidatorSetMismatchError):  # header 4 announced NEW, not FOUR
        network.verifier().verify_query("bank", "balance", balance_params(bob),
                                        cometbft_answer(chain, network, bob, 4))


def test_invalid_cometbft_app_hash_or_height(chain: tuple[ChainRunner, Cast]) -> None:
    runner, cast = chain
    bob = cast.citizens[1]
    network = Network({1: FOUR}, 4, {3: runner.app_hash})  # header 4 commits another state
    verifier = network.verifier()
    with pytest.raises(ProofMismatchError):
        verifier.verify_query("bank", "balance", balance_params(bob),
                              cometbft_answer(chain, network, bob, 3))
    shifted = cometbft_answer(chain, network, bob, 3)
    shifted["proof"]["light"] = network.light(3)  # header 3 (whose app hash fits) for height 3
    with pytest.raises(WrongHeightError):
        verifier.verify_query("bank", "balance", balance_params(bob), shifted)


def test_cometbft_tx_inclusion() -> None:
    txs = [b"tx-a", b"tx-b", b"tx-c"]
    network = Network({1: FOUR}, 3, {}, txs={2: txs})
    verifier = network.verifier(skipping=True)

    def tx_answer(index: int) -> dict[str, Any]:
        return {"hash": sha256(txs[index]).hex(), "height": 2, "index": index,
                "tx": base64.b64encode(txs[index]).decode(), "light": network.light(2),
                "proof": {"root_hash": network.headers[2].header.data_hash.hex().upper(),
                          "data": base64.b64encode(txs[index]).decode(),
                          "proof": {"total": str(len(txs)), "index": str(index),
                                    "leaf_hash": "", "aunts": [
                                        base64.b64encode(a).decode() for a in inclusion_proof(
                                            [sha256(t) for t in txs], index)]}}}

    assert verifier.verify_tx(sha256(txs[1]).hex(), tx_answer(1)) == 2
    other = tx_answer(1)
    other["proof"]["data"] = base64.b64encode(txs[0]).decode()
    with pytest.raises(TxProofError, match="another tx"):
        verifier.verify_tx(sha256(txs[1]).hex(), other)
    wrong = tx_answer(1)
    wrong["proof"]["proof"]["aunts"] = wrong["proof"]["proof"]["aunts"][::-1]
    with pytest.raises(TxProofError, match="does not match"):
        verifier.verify_tx(sha256(txs[1]).hex(), wrong)


def test_rfc3339_round_trips() -> None:
    stamp = Timestamp(START + 5, 500_000_000)
    assert Timestamp.parse(rfc3339(stamp)) == stamp
