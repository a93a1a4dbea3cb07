"""Proven queries through the solo node's RPC: every provable query's answer verifies with the
light client against a signed header from the block store, and forged answers do not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from citychain.client.rpc import NodeClient, QueryAnswer
from citychain.client.verify import (
    ProvenRead,
    VerificationError,
    decode_reads,
    verify_query_answer,
    verify_reads,
)
from citychain.consensus.solo.block import SignedHeader, sign_header
from citychain.consensus.solo.rpc import RpcServer
from citychain.core import codec
from citychain.core.module import QueryHandler
from citychain.modules.bank.keys import balance_key
from citychain.modules.bank.messages import MsgMint, MsgTransfer
from citychain.modules.identity.messages import MsgSuspendIdentity
from citychain.node.assemble import SoloRuntime, open_solo
from citychain.testing.chain import CITIZEN_BALANCE, DENOM, Cast, named_key, sign_raw, solo_home
from citychain.testing.checks import assert_ok


class Served:
    """A solo node with a short history, served over RPC, and what a light client knows."""

    def __init__(self, runtime: SoloRuntime, client: NodeClient, cast: Cast) -> None:
        self.runtime = runtime
        self.client = client
        self.cast = cast
        self.chain_id = runtime.genesis.chain_id
        self.trusted = runtime.genesis.validator_pubkeys()
        self.queries: dict[str, tuple[QueryHandler, bool]] = {
            f"/{module.name}/{name}": (module.queries[name], name in module.provable_queries)
            for module in runtime.app.modules for name in module.queries}

    def ask(self, path: str, params: dict[str, Any], height: int = 0) -> QueryAnswer:
        answer = self.client.query(path, params, prove=True, height=height)
        assert answer.ok, answer.log
        assert answer.proof is not None and answer.signed_header is not None
        return answer

    def verify(self, path: str, params: dict[str, Any], answer: QueryAnswer,
               *, reads: list[ProvenRead] | None = None, value: bytes | None = None,
               signed: SignedHeader | None = None) -> Any:
        assert answer.proof is not None and answer.signed_header is not None
        return verify_query_answer(
            self.queries[path][0], params, answer.value if value is None else value,
            decode_reads(answer.proof) if reads is None else reads,
            answer.signed_header if signed is None else signed, self.chain_id, self.trusted,
            answer.height)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root: Path = tmp_path_factory.mktemp("proofs") / "node"
    _home, genesis, cast = solo_home(root)
    runtime = open_solo(root)
    node = runtime.node
    node.handshake()
    alice, bob, carol = cast.citizens[:3]
    txs = [
        [sign_raw(alice, genesis.chain_id, 0, MsgTransfer(bob.did, DENOM, 1234)),
         sign_raw(cast.treasury, genesis.chain_id, 0, MsgMint(carol.did, DENOM, 99))],
        [sign_raw(cast.registrar, genesis.chain_id, 0,
                  MsgSuspendIdentity(cast.citizens[3].did, "case-1"))],
        [sign_raw(bob, genesis.chain_id, 0, MsgTransfer(alice.did, DENOM, 34))],
    ]
    for block in txs:
        for raw in block:
            assert_ok(node.submit(raw))
        assert node.produce_block().failed == 0
    server = RpcServer(node)
    server.start()
    client = NodeClient(server.url)
    try:
        yield Served(runtime, client, cast)
    finally:
        client.close()
        server.stop()
        runtime.close()


def provable_cases(cast: Cast) -> dict[str, list[dict[str, Any]]]:
    """Parameters for every provable query path: present and absent records."""
    alice, suspended = cast.citizens[0], cast.citizens[3]
    return {
        "/identity/account": [{"did": alice.did}, {"address": suspended.address},
                              {"did": cast.newcomer.did}],
        "/identity/key_history": [{"did": alice.did}, {"did": cast.newcomer.did}],
        "/identity/key_at": [{"did": alice.did, "at_height": 2},
                             {"address": alice.address, "at_height": 2**63 - 1},
                             {"did": cast.newcomer.did, "at_height": 2}],
        "/identity/params": [{}],
        "/bank/balance": [{"did": alice.did, "denom": DENOM},
                          {"address": cast.newcomer.address, "denom": DENOM},
                          {"did": alice.did, "denom": "nosuchcoin"}],
        "/bank/supply": [{"denom": DENOM}, {"denom": "nosuchcoin"}],
        "/bank/params": [{}],
        "/validators/validator": [{"pubkey": cast.node.public_key.hex()}],
        "/validators/proposal": [{"id": 1}],
        "/validators/params": [{}],
        # No oracle txs here (absent records: non-membership); present ones in test_oracle_app.
        "/oracle/device": [{"did": cast.devices[0].did}],
        "/oracle/anchor": [{"batch_id": "00" * 32}, {"merkle_root": "11" * 32}],
        "/oracle/feed": [{"feed_id": "pm25-centre"}],
        "/oracle/feed_value": [{"feed_id": "pm25-centre"},
                               {"feed_id": "pm25-centre", "window_end_ms": 5}],
        "/oracle/params": [{}],
        # No contracts here (absent: non-membership); present ones in test_contracts_app.
        "/contracts/contract": [{"contract_id": 1}],
        "/contracts/params": [{}],
    }


def test_every_provable_query_verifies(served: Served) -> None:
    cases = provable_cases(served.cast)
    provable = sorted(path for path, (_fn, ok) in served.queries.items() if ok)
    assert sorted(cases) == provable, "add parameters here for every provable query"
    for path, param_list in cases.items():
        for params in param_list:
            answer = served.ask(path, params)
            assert answer.height == served.runtime.app.last_height
            assert served.verify(path, params, answer) == codec.decode(answer.value)


def test_answers_at_older_heights_verify(served: Served) -> None:
    alice = served.cast.citizens[0]
    params = {"did": alice.did, "denom": DENOM}
    amounts = []
    for height in range(1, served.runtime.app.last_height + 1):
        answer = served.ask("/bank/balance", params, height=height)
        assert answer.height == height
        assert answer.signed_header is not None
        assert answer.signed_header.header.height == height
        amounts.append(served.verify("/bank/balance", params, answer)["amount"])
    # Block 1 (with genesis) pays 1234 to bob, block 2 suspends someone, block 3 pays 34 back.
    assert amounts == [CITIZEN_BALANCE - 1234, CITIZEN_BALANCE - 1234, CITIZEN_BALANCE - 1200]


def test_proven_store_key_read_verifies(served: Served) -> None:
    alice = served.cast.citizens[0]
    key = balance_key(alice.address, DENOM)
    answer = served.client.query("/store/key", prove=True, raw_data=key)
    assert answer.ok and answer.proof is not None and answer.signed_header is not None
    reads = decode_reads(answer.proof)
    proven = verify_reads(answer.signed_header.header.app_hash, reads)
    assert proven == {key: answer.value}


def test_not_provable_query_is_refused(served: Served) -> None:
    answer = served.client.query("/bank/balances", {"did": served.cast.citizens[0].did},
                                 prove=True)
    assert (answer.codespace, answer.code) == ("core", 19)


# -------------------------------------------------------------------- forgeries

def balance_answer(served: Served) -> tuple[dict[str, Any], QueryAnswer]:
    params = {"did": served.cast.citizens[0].did, "denom": DENOM}
    return params, served.ask("/bank/balance", params)


def test_invalid_answer_value_forged(served: Served) -> None:
    params, answer = balance_answer(served)
    value = codec.decode(answer.value)
    forged = codec.encode({**value, "amount": value["amount"] + 1_000_000})
    with pytest.raises(VerificationError, match="differs"):
        served.verify("/bank/balance", params, answer, value=forged)


def test_invalid_read_value_forged(served: Served) -> None:
    params, answer = balance_answer(served)
    assert answer.proof is not None
    reads = decode_reads(answer.proof)
    forged_amount = codec.encode(10**15)
    forged = [replace(read, value=forged_amount) for read in reads]
    with pytest.raises(VerificationError, match="does not match the app hash"):
        served.verify("/bank/balance", params, answer, reads=forged,
                      value=codec.encode({**codec.decode(answer.value), "amount": 10**15}))


def test_invalid_proof_for_another_key(served: Served) -> None:
    params, answer = balance_answer(served)
    other_params = {"did": served.cast.citizens[1].did, "denom": DENOM}
    other = served.ask("/bank/balance", other_params)
    assert answer.proof is not None and other.proof is not None
    (read,) = decode_reads(answer.proof)
    (other_read,) = decode_reads(other.proof)
    swapped = [replace(read, proof=other_read.proof)]
    with pytest.raises(VerificationError):
        served.verify("/bank/balance", params, answer, reads=swapped)
    # The other key's true read, offered for this key's query, is a read of the wrong key.
    with pytest.raises(VerificationError, match="no proof"):
        served.verify("/bank/balance", params, answer, reads=[other_read])


def test_invalid_absent_key_claimed_present(served: Served) -> None:
    params = {"did": served.cast.newcomer.did}
    answer = served.ask("/identity/account", params)
    assert codec.decode(answer.value) is None
    alice = served.ask("/identity/account", {"did": served.cast.citizens[0].did})
    assert answer.proof is not None and alice.proof is not None
    (absent,) = decode_reads(answer.proof)
    present = decode_reads(alice.proof)[0]  # the account record (then its sequence)
    # Claim the newcomer has Alice's account record, with either proof.
    for proof in (absent.proof, present.proof):
        with pytest.raises(VerificationError):
            served.verify("/identity/account", params, answer,
                          reads=[replace(absent, value=present.value, proof=proof)])


def test_invalid_header_signed_by_untrusted_key(served: Served) -> None:
    params, answer = balance_answer(served)
    assert answer.signed_header is not None
    header = answer.signed_header.header
    intruder = named_key("intruder")
    with pytest.raises(VerificationError, match="trusted"):
        served.verify("/bank/balance", params, answer, signed=sign_header(intruder, header))
    as_proposer = replace(header, proposer=intruder.address)
    with pytest.raises(VerificationError, match="trusted"):
        served.verify("/bank/balance", params, answer, signed=sign_header(intruder, as_proposer))
    # The trusted key's signature over another header does not carry over either.
    tampered = SignedHeader(replace(header, app_hash=bytes(32)), answer.signed_header.pubkey,
                            answer.signed_header.signature)
    with pytest.raises(VerificationError):
        served.verify("/bank/balance", params, answer, signed=tampered)


def test_invalid_header_for_another_height(served: Served) -> None:
    params, answer = balance_answer(served)
    older = served.runtime.blocks.get(answer.height - 1)
    assert older is not None
    with pytest.raises(VerificationError, match="height"):
        served.verify("/bank/balance", params, answer, signed=older.signed_header)
    # Even without the height check, the older app hash does not match the proofs.
    assert answer.proof is not None
    with pytest.raises(VerificationError):
        verify_query_answer(served.queries["/bank/balance"][0], params, answer.value,
                            decode_reads(answer.proof), older.signed_header, served.chain_id,
                            served.trusted)


def test_invalid_stale_answer_for_a_newer_height(served: Served) -> None:
    """A node answering an old height with that height's (genuine) header and proofs: only the
    height the client asked for tells the answer is stale."""
    params, _latest = balance_answer(served)
    stale = served.ask("/bank/balance", params, height=1)
    assert stale.proof is not None and stale.signed_header is not None
    fn = served.queries["/bank/balance"][0]
    # Genuine for height 1 ...
    verify_query_answer(fn, params, stale.value, decode_reads(stale.proof), stale.signed_header,
                        served.chain_id, served.trusted, 1)
    # ... but not an answer for the latest height.
    with pytest.raises(VerificationError, match="height"):
        verify_query_answer(fn, params, stale.value, decode_reads(stale.proof),
                            stale.signed_header, served.chain_id, served.trusted,
                            served.runtime.app.last_height)


def test_invalid_header_for_another_chain(served: Served) -> None:
    params, answer = balance_answer(served)
    with pytest.raises(VerificationError, match="chain"):
        verify_query_answer(served.queries["/bank/balance"][0], params, answer.value,
                            decode_reads(answer.proof or b""), answer.signed_header,  # type: ignore[arg-type]
                            "another-city", served.trusted, answer.height)
