"""Light verification of CometBFT answers: real nodes, captured answers, and forged chains.

1. A single-validator CometBFT node runs the application (as in test_abci_server.py): a proven
   query, a raw key and a tx verify from the genesis validator set, sequentially and skipping;
   answers tampered on their way from the real node (a forged value, a proof for another key, a
   stale validator set, another chain) fail with the typed error naming the reason.
2. Synthetic chains signed with real Ed25519 keys exercise what one validator cannot: a
   4-validator set where too few sign, forged signatures, validator-set changes followed height by
   height, skipping with bisection, commits for another block or height.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import test_abci_server as harness  # the node harness; importing it builds CometBFT (never skip)

from citychain.client.cometbft import (
    BLOCK_ID_FLAG_ABSENT,
    BLOCK_ID_FLAG_COMMIT,
    BlockId,
    Commit,
    CommitSig,
    ForgedSignatureError,
    Header,
    HeaderMismatchError,
    InsufficientVotingPowerError,
    LightClient,
    LightVerificationError,
    MalformedCommitError,
    PartSetHeader,
    RpcHeaderSource,
    SignedHeader,
    Timestamp,
    TrustedBlock,
    Validator,
    ValidatorSet,
    ValidatorSetMismatchError,
    WrongChainError,
    WrongHeightError,
    parse_signed_header,
    parse_validators,
    verify_commit,
    vote_sign_bytes,
)
from citychain.client.network import (
    READS_PROOF_TYPE,
    AnswerMismatchError,
    MissingProofError,
    NetworkClient,
    ProofMismatchError,
    TxProofError,
)
from citychain.client.rpc import NodeClient
from citychain.client.verify import VerificationError
from citychain.consensus.abci import convert
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.hashing import sha256
from citychain.node.assemble import default_modules

CHAIN_ID = harness.CHAIN_ID
BALANCE = "/bank/balance"


def bob_balance() -> dict[str, Any]:
    return {"address": harness.BOB.address, "denom": harness.DENOM}


# ============================================================================ 1. a real node
@dataclass
class Network:
    url: str
    genesis: dict[str, Any]
    tx_hash: str
    tx_height: int
    captured: dict[str, Any]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """One validator running the application, with one transfer of 250 ucity to Bob."""
    tmp = tmp_path_factory.mktemp("light")
    app = harness.AppProcess(tmp / "state.db", tmp / "app.log")
    app.start()
    node = harness.CometNode(tmp / "cometbft", f"tcp://127.0.0.1:{app.port}")
    try:
        node.init(CHAIN_ID, harness.app_state())
        node.start()
        node.wait_for_height(1)
        sent = node.rpc("broadcast_tx_commit",
                        tx=base64.b64encode(harness.transfer(0, 250)).decode())
        assert sent["tx_result"]["code"] == 0, sent
        height = int(sent["height"])
        node.wait_for_height(height + 2)
        captured = {
            "commit": {h: node.rpc("commit", height=str(h)) for h in range(1, height + 2)},
            "validators": {h: node.rpc("validators", height=str(h))
                           for h in range(1, height + 2)},
        }
        yield Network(f"http://127.0.0.1:{node.rpc_port}", node.rpc("genesis")["genesis"],
                      sent["hash"], height, captured)
    except BaseException:
        print(harness.tail(node.log), harness.tail(app.log), sep="\n")
        raise
    finally:
        node.kill()
        app.kill()
        node.http.close()


class TamperingNode(NodeClient):
    """Forwards to the real node, letting a test rewrite one method's answers."""

    def __init__(self, url: str, method: str, tamper: Callable[[Any], Any]) -> None:
        super().__init__(url)
        self.method, self.tamper = method, tamper

    def call(self, method: str, **params: Any) -> Any:
        result = super().call(method, **params)
        return self.tamper(copy.deepcopy(result)) if method == self.method else result


def client(network: Network, *, skipping: bool = False, method: str = "",
           tamper: Callable[[Any], Any] = lambda r: r,
           genesis: dict[str, Any] | None = None) -> NetworkClient:
    node = TamperingNode(network.url, method, tamper)
    light = LightClient(RpcHeaderSource(node), TrustedBlock.genesis(genesis or network.genesis),
                        skipping=skipping)
    return NetworkClient(node, light, default_modules())


def test_the_proof_type_is_the_servers() -> None:
    assert READS_PROOF_TYPE == convert.READS_PROOF_TYPE


def test_captured_commits_verify_and_hash_as_cometbft_does(network: Network) -> None:
    [genesis_validator] = network.genesis["validators"]
    for height, answer in network.captured["commit"].items():
        signed = parse_signed_header(answer)
        assert signed.header.compute_hash() == signed.commit.block_id.hash
        _, total, validators = parse_validators(network.captured["validators"][height])
        assert total == 1
        assert validators[0].address.hex().upper() == genesis_validator["address"]
        verify_commit(CHAIN_ID, ValidatorSet.of(validators), signed, height)


@pytest.mark.parametrize("skipping", [False, True])
def test_genuine_query_verifies(network: Network, skipping: bool) -> None:
    with client(network, skipping=skipping) as verified:
        answer = verified.verify_query(BALANCE, bob_balance(), network.tx_height)
        assert answer.value["amount"] == 250
        assert (answer.height, answer.header.height) == (network.tx_height, network.tx_height + 1)
        before = verified.verify_query(BALANCE, bob_balance(), network.tx_height - 1)
        assert before.value["amount"] == 0  # an earlier height, verified backwards by hash links
        latest = verified.verify_query(BALANCE, bob_balance())
        assert latest.value["amount"] == 250 and latest.height > network.tx_height


def test_genuine_key_and_absent_key_verify(network: Network) -> None:
    with client(network) as verified:
        absent = verified.verify_key(b"no such key", network.tx_height)
        assert (absent.value, absent.header.height) == (None, network.tx_height + 1)


@pytest.mark.parametrize("skipping", [False, True])
def test_genuine_tx_verifies(network: Network, skipping: bool) -> None:
    with client(network, skipping=skipping) as verified:
        tx = verified.verify_tx(network.tx_hash)
        assert (tx.height, tx.index, tx.code) == (network.tx_height, 0, 0)
        assert sha256(tx.raw).hex().upper() == network.tx_hash
        assert tx.header.height == network.tx_height


def _set_value(result: Any) -> Any:
    value = codec.decode(base64.b64decode(result["response"]["value"]))
    result["response"]["value"] = base64.b64encode(codec.encode({**value, "amount": 1_000_000}))
    return result


def test_invalid_forged_value(network: Network) -> None:
    with client(network, method="abci_query", tamper=_set_value) as verified, \
            pytest.raises(AnswerMismatchError, match="differs"):
        verified.verify_query(BALANCE, bob_balance(), network.tx_height)


def test_invalid_proof_for_another_key(network: Network) -> None:
    with client(network) as honest:  # a genuine proof, but of Alice's balance
        alice = honest.node.call("abci_query", path=BALANCE, height=str(network.tx_height),
                                 data=harness.balance_params(harness.ALICE).hex(), prove=True)
    alice_reads = alice["response"]["proofOps"]["ops"][0]["data"]

    def other_key(result: Any) -> Any:
        result["response"]["proofOps"]["ops"][0]["data"] = alice_reads
        return result

    with client(network, method="abci_query", tamper=other_key) as verified, \
            pytest.raises(MissingProofError, match="no proof was sent"):
        verified.verify_query(BALANCE, bob_balance(), network.tx_height)

    def relabelled(result: Any) -> Any:  # Alice's proof presented as the proof of Bob's key
        [mine] = codec.decode(base64.b64decode(result["response"]["proofOps"]["ops"][0]["data"]))
        [theirs] = codec.decode(base64.b64decode(alice_reads))
        forged = [{**theirs, "key": mine["key"]}]
        result["response"]["proofOps"]["ops"][0]["data"] = base64.b64encode(codec.encode(forged))
        return result

    with client(network, method="abci_query", tamper=relabelled) as verified, \
            pytest.raises(ProofMismatchError, match="does not match the app hash"):
        verified.verify_query(BALANCE, bob_balance(), network.tx_height)


def test_invalid_missing_proof(network: Network) -> None:
    def no_proof(result: Any) -> Any:
        result["response"]["proofOps"] = None
        return result

    with client(network, method="abci_query", tamper=no_proof) as verified, \
            pytest.raises(MissingProofError):
        verified.verify_query(BALANCE, bob_balance(), network.tx_height)


def test_invalid_wrong_chain_id(network: Network) -> None:
    other = {**network.genesis, "chain_id": "citychain-elsewhere"}
    with client(network, genesis=other) as verified, \
            pytest.raises(WrongChainError, match="citychain-elsewhere"):
        verified.verify_query(BALANCE, bob_balance(), network.tx_height)


def test_invalid_stale_validator_set(network: Network) -> None:
    stranger = PrivateKey.from_secret("test_light_client/stranger")

    def stale(result: Any) -> Any:
        result["validators"] = [{"address": Validator(stranger.public_key, 10).address.hex(),
                                 "pub_key": {"type": "tendermint/PubKeyEd25519",
                                             "value": base64.b64encode(stranger.public_key)
                                             .decode()},
                                 "voting_power": "10", "proposer_priority": "0"}]
        return result

    with client(network, skipping=True, method="validators", tamper=stale) as verified, \
            pytest.raises(ValidatorSetMismatchError):
        verified.verify_query(BALANCE, bob_balance(), network.tx_height)


def test_invalid_tx_result_or_other_tx(network: Network) -> None:
    def failed(result: Any) -> Any:
        result["tx_result"]["code"] = 5
        return result

    with client(network, method="tx", tamper=failed) as verified, \
            pytest.raises(TxProofError, match="result code"):
        verified.verify_tx(network.tx_hash)

    def moved(result: Any) -> Any:
        result["proof"]["proof"]["total"] = "2"
        return result

    with client(network, method="tx", tamper=moved) as verified, \
            pytest.raises(TxProofError, match="inclusion proof"):
        verified.verify_tx(network.tx_hash)


def test_invalid_forged_header_from_the_node(network: Network) -> None:
    def forged(result: Any) -> Any:
        result["signed_header"]["header"]["app_hash"] = "00" * 32
        return result

    with client(network, method="commit", tamper=forged) as verified, \
            pytest.raises(HeaderMismatchError, match="signs block"):
        verified.verify_query(BALANCE, bob_balance(), network.tx_height)


# ============================================================================ 2. synthetic chains
SYNTHETIC = "citychain-synthetic"
START = Timestamp(1_767_225_600)


def keys(name: str, count: int) -> list[PrivateKey]:
    return [PrivateKey.from_secret(f"test_light_client/{name}/{i}") for i in range(count)]


def validator_set(members: list[PrivateKey], power: int = 10) -> ValidatorSet:
    return ValidatorSet.of([Validator(k.public_key, power) for k in members])


def sign_commit(chain_id: str, header: Header, validators: ValidatorSet,
                signers: dict[bytes, PrivateKey], *, forge: frozenset[int] = frozenset(),
                absent: frozenset[int] = frozenset()) -> Commit:
    """Commit ``header``: every member signs, except ``absent`` ones; ``forge`` ones sign
    garbage."""
    block_id = BlockId(header.compute_hash(), PartSetHeader(1, sha256(b"parts")))
    moment = replace(header.time, nanos=500_000_000)
    unsigned = Commit(header.height, 0, block_id, tuple(
        CommitSig(BLOCK_ID_FLAG_ABSENT if i in absent else BLOCK_ID_FLAG_COMMIT,
                  b"" if i in absent else v.address, moment, b"")
        for i, v in enumerate(validators)))
    signatures = []
    for index, (sig, validator) in enumerate(zip(unsigned.signatures, validators, strict=True)):
        if sig.flag == BLOCK_ID_FLAG_COMMIT:
            message = (b"forged" if index in forge
                       else vote_sign_bytes(chain_id, unsigned, index))
            sig = replace(sig, signature=signers[validator.address].sign(message))
        signatures.append(sig)
    return replace(unsigned, signatures=tuple(signatures))


class SyntheticChain:
    """Headers 1..top of a chain whose validator set at each height is given; a HeaderSource."""

    def __init__(self, sets: dict[int, list[PrivateKey]], top: int,
                 chain_id: str = SYNTHETIC) -> None:
        self.chain_id, self.top = chain_id, top
        self.members = {h: self._members_at(sets, h) for h in range(1, top + 2)}
        self.signers = {Validator(k.public_key, 1).address: k
                        for members in sets.values() for k in members}
        self.headers: dict[int, SignedHeader] = {}
        self.asked: list[int] = []
        last = BlockId(b"", PartSetHeader(0, b""))
        for height in range(1, top + 1):
            header = Header(
                version_block=11, version_app=1, chain_id=chain_id, height=height,
                time=Timestamp(START.seconds + height), last_block_id=last,
                last_commit_hash=sha256(b"lc%d" % height), data_hash=sha256(b""),
                validators_hash=self.validators(height).compute_hash(),
                next_validators_hash=self.validators(height + 1).compute_hash(),
                consensus_hash=sha256(b"params"), app_hash=sha256(b"app%d" % height),
                last_results_hash=sha256(b""), evidence_hash=sha256(b""),
                proposer_address=self.validators(height).validators[0].address)
            commit = sign_commit(chain_id, header, self.validators(height), self.signers)
            self.headers[height] = SignedHeader(header, commit)
            last = commit.block_id

    @staticmethod
    def _members_at(sets: dict[int, list[PrivateKey]], height: int) -> list[PrivateKey]:
        return sets[max(h for h in sets if h <= height)]

    def validators(self, height: int) -> ValidatorSet:
        return validator_set(self.members[height])

    def signed_header(self, height: int) -> SignedHeader:
        self.asked.append(height)
        return self.headers[height]

    def latest_height(self) -> int:
        return self.top

    def resign(self, height: int, **options: Any) -> None:
        header = self.headers[height].header
        self.headers[height] = SignedHeader(header, sign_commit(
            self.chain_id, header, self.validators(height), self.signers, **options))

    def trust(self) -> TrustedBlock:
        return TrustedBlock(self.chain_id, 0, None, self.validators(1))


FOUR = keys("four", 4)


def test_vote_sign_bytes_match_the_generated_protobuf() -> None:
    from citychain.consensus.abci._gen.tendermint.types import canonical_pb2

    chain = SyntheticChain({1: FOUR}, 1)
    commit = chain.headers[1].commit
    vote = canonical_pb2.CanonicalVote(type=2, height=1, round=0, chain_id=SYNTHETIC)
    vote.block_id.hash = commit.block_id.hash
    vote.block_id.part_set_header.total = commit.block_id.parts.total
    vote.block_id.part_set_header.hash = commit.block_id.parts.hash
    vote.timestamp.seconds = commit.signatures[0].timestamp.seconds
    vote.timestamp.nanos = commit.signatures[0].timestamp.nanos
    body = vote.SerializeToString()
    assert vote_sign_bytes(SYNTHETIC, commit, 0) == bytes([len(body)]) + body


def test_synthetic_chain_verifies_sequentially_and_skipping() -> None:
    chain = SyntheticChain({1: FOUR}, 6)
    assert LightClient(chain, chain.trust()).verified_header(6).height == 6
    assert chain.asked == [1, 2, 3, 4, 5, 6]
    chain.asked.clear()
    assert LightClient(chain, chain.trust(), skipping=True).verified_header(6).height == 6
    assert chain.asked == [6]


def test_three_of_four_signatures_are_enough() -> None:
    chain = SyntheticChain({1: FOUR}, 1)
    chain.resign(1, absent=frozenset({3}))
    assert LightClient(chain, chain.trust()).verified_header(1).height == 1


def test_invalid_too_few_signatures() -> None:
    chain = SyntheticChain({1: FOUR}, 1)
    chain.resign(1, absent=frozenset({2, 3}))
    with pytest.raises(InsufficientVotingPowerError, match="signed by 20 of 40") as caught:
        LightClient(chain, chain.trust()).verified_header(1)
    assert (caught.value.signed, caught.value.needed, caught.value.total) == (20, 26, 40)
    assert caught.value.reason == "too few signatures"


def test_invalid_forged_signatures() -> None:
    chain = SyntheticChain({1: FOUR}, 1)
    chain.resign(1, forge=frozenset({2, 3}))
    with pytest.raises(ForgedSignatureError, match=r"signature 2 .* does not verify"):
        LightClient(chain, chain.trust()).verified_header(1)


def test_invalid_signatures_for_another_chain() -> None:
    chain = SyntheticChain({1: FOUR}, 1)
    header = chain.headers[1].header
    commit = sign_commit("citychain-elsewhere", header, chain.validators(1), chain.signers)
    chain.headers[1] = SignedHeader(header, commit)
    with pytest.raises(ForgedSignatureError):
        LightClient(chain, chain.trust()).verified_header(1)


def test_invalid_header_of_another_chain() -> None:
    chain = SyntheticChain({1: FOUR}, 1, chain_id="citychain-elsewhere")
    with pytest.raises(WrongChainError):
        LightClient(chain, replace(chain.trust(), chain_id=SYNTHETIC)).verified_header(1)


def test_invalid_commit_for_another_block_or_height() -> None:
    chain = SyntheticChain({1: FOUR}, 3)
    chain.headers[2] = SignedHeader(chain.headers[2].header, chain.headers[3].commit)
    with pytest.raises(WrongHeightError):
        LightClient(chain, chain.trust()).verified_header(2)
    other = replace(chain.headers[3].header, height=2)
    chain.headers[2] = SignedHeader(other, replace(chain.headers[3].commit, height=2))
    with pytest.raises(HeaderMismatchError, match="signs block"):
        LightClient(chain, chain.trust()).verified_header(2)


def test_invalid_signature_list_of_another_set() -> None:
    chain = SyntheticChain({1: FOUR}, 1)
    signed = chain.headers[1]
    shorter = replace(signed.commit, signatures=signed.commit.signatures[:3])
    with pytest.raises(MalformedCommitError, match="3 signatures for 4 validators"):
        verify_commit(SYNTHETIC, chain.validators(1), SignedHeader(signed.header, shorter), 1)


NEW = keys("new", 4)


def test_validator_set_change_is_followed_height_by_height() -> None:
    changed = [*FOUR[:2], *NEW[:2]]  # half the set is replaced at height 4
    chain = SyntheticChain({1: FOUR, 4: changed, 7: NEW}, 8)
    light = LightClient(chain, chain.trust())
    assert light.verified_header(8).validators_hash == validator_set(NEW).compute_hash()
    assert light.latest.next_validators == validator_set(NEW)


def test_invalid_stale_validator_set_after_a_change() -> None:
    chain = SyntheticChain({1: FOUR, 4: NEW}, 5)
    chain.members[4] = FOUR  # the node serves the old set for height 4 ...
    light = LightClient(chain, chain.trust())
    with pytest.raises(ValidatorSetMismatchError, match="announced"):
        light.verified_header(5)
    stale = validator_set(FOUR)  # ... or a client holds on to it
    with pytest.raises(ValidatorSetMismatchError, match="names"):
        verify_commit(SYNTHETIC, stale, chain.headers[4], 4)


def test_invalid_header_signed_by_the_old_set_after_a_change() -> None:
    chain = SyntheticChain({1: FOUR, 4: NEW}, 4)
    header = replace(chain.headers[4].header, validators_hash=validator_set(FOUR).compute_hash())
    chain.headers[4] = SignedHeader(header, sign_commit(SYNTHETIC, header, validator_set(FOUR),
                                                        chain.signers))
    with pytest.raises(ValidatorSetMismatchError):  # header 3 announced NEW, not FOUR
        LightClient(chain, chain.trust()).verified_header(4)


def test_skipping_bisects_when_the_trusted_set_is_gone() -> None:
    # FOUR -> two of FOUR stay -> none of FOUR stays: one jump cannot reach height 12.
    chain = SyntheticChain({1: FOUR, 5: [*FOUR[:2], *NEW[:2]], 9: NEW}, 12)
    light = LightClient(chain, chain.trust(), skipping=True)
    assert light.verified_header(12).height == 12
    assert len(set(chain.asked)) < 12
    assert light.verified_header(3).height == 3  # below the latest: by hash links


def test_every_failure_is_a_named_verification_error() -> None:
    for error in (ForgedSignatureError, InsufficientVotingPowerError, ValidatorSetMismatchError,
                  WrongChainError, WrongHeightError, HeaderMismatchError, MalformedCommitError,
                  AnswerMismatchError, ProofMismatchError, MissingProofError, TxProofError):
        assert issubclass(error, LightVerificationError)
        assert issubclass(error, VerificationError)
        assert error.reason != LightVerificationError.reason


def test_genesis_trust_reads_the_genesis_document() -> None:
    genesis = {"chain_id": SYNTHETIC, "initial_height": "1", "validators": [
        {"address": Validator(k.public_key, 10).address.hex().upper(),
         "pub_key": {"type": "tendermint/PubKeyEd25519",
                     "value": base64.b64encode(k.public_key).decode()},
         "power": "10", "name": ""} for k in FOUR]}
    chain = SyntheticChain({1: FOUR}, 2)
    trusted = TrustedBlock.genesis(json.loads(json.dumps(genesis)))
    assert trusted.next_validators == chain.validators(1)
    assert LightClient(chain, trusted).verified_header(2).height == 2
