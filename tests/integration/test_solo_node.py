"""The solo node on disk: blocks are hash-linked and signed, tx inclusion proofs verify, and a
restart from the data directory keeps height, app hash and state."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citychain.client.rpc import NodeClient
from citychain.client.verify import VerificationError, verify_tx_inclusion
from citychain.consensus.solo.block import (
    GENESIS_PREV_HASH,
    SignedHeader,
    results_hash,
    sign_header,
    tx_root,
)
from citychain.consensus.solo.rpc import RpcServer, SoloRpc
from citychain.core import codec
from citychain.core.errors import DuplicateTxError
from citychain.core.tx import tx_hash
from citychain.modules.identity.state import get_sequence
from citychain.node.assemble import SoloRuntime, open_solo
from citychain.testing.chain import DENOM, Cast, named_key, solo_home, transfer
from citychain.testing.checks import assert_ok


def state_of(runtime: SoloRuntime) -> dict[bytes, bytes]:
    return dict(runtime.store.reader().iterate(b""))


def fill_blocks(runtime: SoloRuntime, cast: Cast, blocks: int, per_block: int) -> list[bytes]:
    """Submit transfers through check_tx and produce ``blocks`` blocks; return the tx hashes."""
    node = runtime.node
    chain_id = runtime.genesis.chain_id
    hashes = []
    for _ in range(blocks):
        for index in range(per_block):
            sender = cast.citizens[index % len(cast.citizens)]
            to = cast.citizens[(index + 1) % len(cast.citizens)]
            sequence = get_sequence(runtime.store.reader(), sender.address)
            raw = transfer(sender, chain_id, sequence + index // len(cast.citizens), to,
                           index + 1)
            assert_ok(node.submit(raw))
            hashes.append(tx_hash(raw))
        stats = node.produce_block()
        assert stats.tx_count == per_block and stats.failed == 0
    return hashes


def decode_signed(text: str) -> SignedHeader:
    return SignedHeader.from_value(codec.decode(base64.b64decode(text)))


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, Cast]:
    _home, _genesis, cast = solo_home(tmp_path / "node")
    return tmp_path / "node", cast


def test_blocks_are_hash_linked_and_signed(home: tuple[Path, Cast]) -> None:
    root, cast = home
    runtime = open_solo(root)
    try:
        runtime.node.handshake()
        fill_blocks(runtime, cast, blocks=4, per_block=3)
        trusted = runtime.genesis.validator_pubkeys()
        previous_hash = GENESIS_PREV_HASH
        previous_time = runtime.genesis.genesis_time_ns
        for height in range(1, runtime.blocks.latest_height + 1):
            stored = runtime.blocks.get(height)
            assert stored is not None
            header = stored.signed_header.header
            assert header.height == height and header.chain_id == runtime.genesis.chain_id
            assert header.prev_hash == previous_hash
            assert header.time_ns > previous_time
            assert stored.signed_header.verify(trusted)
            assert header.tx_root == tx_root(stored.txs)
            assert header.results_hash == results_hash(stored.results)
            previous_hash, previous_time = header.hash(), header.time_ns
        assert runtime.app.last_app_hash == header.app_hash
        # A header signed by a key that is not a genesis validator does not verify.
        forged = sign_header(named_key("intruder"), header)
        assert not forged.verify(trusted)
    finally:
        runtime.close()


def test_restart_keeps_height_app_hash_and_state(home: tuple[Path, Cast]) -> None:
    root, cast = home
    runtime = open_solo(root)
    runtime.node.handshake()
    hashes = fill_blocks(runtime, cast, blocks=3, per_block=4)
    height, app_hash = runtime.app.last_height, runtime.app.last_app_hash
    state = state_of(runtime)
    last_header = runtime.node.last_header
    runtime.close()

    reopened = open_solo(root)
    try:
        assert reopened.node.handshake() == 0  # nothing to replay after a clean stop
        assert reopened.app.last_height == height
        assert reopened.app.last_app_hash == app_hash
        assert reopened.app.info().last_block_app_hash == app_hash
        assert state_of(reopened) == state
        assert reopened.node.last_header == last_header
        for hash_ in hashes:
            found = reopened.node.find_tx(hash_)
            assert found is not None and found.result.ok
        # Committed txs are refused as duplicates; the chain goes on from where it stopped.
        first = reopened.blocks.get(2)
        assert first is not None
        with pytest.raises(DuplicateTxError):
            reopened.node.submit(first.txs[0])
        fill_blocks(reopened, cast, blocks=1, per_block=2)
        assert reopened.app.last_height == height + 1
        stored = reopened.blocks.get(height + 1)
        assert stored is not None
        assert last_header is not None
        assert stored.signed_header.header.prev_hash == last_header.hash()
    finally:
        reopened.close()


@dataclass
class Included:
    """A node with two blocks of transfers, and the `tx` RPC's proven answer for the first."""

    runtime: SoloRuntime
    rpc: SoloRpc
    hashes: list[bytes]
    raw: bytes
    index: int
    total: int
    aunts: list[bytes]
    signed: SignedHeader

    @property
    def chain_id(self) -> str:
        return self.runtime.genesis.chain_id

    @property
    def trusted(self) -> frozenset[bytes]:
        return self.runtime.genesis.validator_pubkeys()

    def verify(self, raw: bytes | None = None, index: int | None = None,
               signed: SignedHeader | None = None, height: int | None = None) -> None:
        verify_tx_inclusion(self.raw if raw is None else raw,
                            self.index if index is None else index, self.total, self.aunts,
                            self.signed if signed is None else signed, self.chain_id,
                            self.trusted, height)


@pytest.fixture
def included(home: tuple[Path, Cast]) -> Iterator[Included]:
    root, cast = home
    runtime = open_solo(root)
    try:
        runtime.node.handshake()
        hashes = fill_blocks(runtime, cast, blocks=2, per_block=5)
        rpc = SoloRpc(runtime.node)
        answer = rpc.rpc_tx(hashes[0].hex(), prove=True)
        proof = answer["proof"]
        yield Included(runtime, rpc, hashes, base64.b64decode(answer["tx"]), proof["index"],
                       proof["total"], [bytes.fromhex(a) for a in proof["aunts"]],
                       decode_signed(answer["signed_header"]))
    finally:
        runtime.close()


def test_tx_inclusion_proof_verifies(included: Included) -> None:
    for hash_ in included.hashes:
        answer = included.rpc.rpc_tx(hash_.hex(), prove=True)
        proof = answer["proof"]
        signed = decode_signed(answer["signed_header"])
        assert proof["root_hash"] == signed.header.tx_root.hex()
        verify_tx_inclusion(base64.b64decode(answer["tx"]), proof["index"], proof["total"],
                            [bytes.fromhex(a) for a in proof["aunts"]], signed,
                            included.chain_id, included.trusted, int(answer["height"]))
        assert answer["tx_result"]["code"] == 0


def test_invalid_tx_inclusion_other_tx(included: Included) -> None:
    other = base64.b64decode(included.rpc.rpc_tx(included.hashes[1].hex())["tx"])
    with pytest.raises(VerificationError, match="tx root"):
        included.verify(raw=other)


def test_invalid_tx_inclusion_other_index(included: Included) -> None:
    with pytest.raises(VerificationError, match="tx root"):
        included.verify(index=included.index + 1)


def test_invalid_tx_inclusion_header_of_another_block(included: Included) -> None:
    later = included.runtime.blocks.get(included.runtime.app.last_height)
    assert later is not None and later.signed_header != included.signed
    with pytest.raises(VerificationError, match="tx root"):
        included.verify(signed=later.signed_header)
    with pytest.raises(VerificationError, match="height"):
        included.verify(height=later.signed_header.header.height)


def test_invalid_tx_inclusion_header_signed_by_untrusted_key(included: Included) -> None:
    with pytest.raises(VerificationError, match="trusted"):
        included.verify(signed=sign_header(named_key("intruder"), included.signed.header))


def test_broadcast_commit_through_rpc(home: tuple[Path, Cast]) -> None:
    root, cast = home
    runtime = open_solo(root)
    runtime.node.block_interval = 0.05
    runtime.node.start()
    server = RpcServer(runtime.node)
    server.start()
    try:
        with NodeClient(server.url) as client:
            alice, bob = cast.citizens[0], cast.citizens[1]
            raw = transfer(alice, runtime.genesis.chain_id, 0, bob, 250)
            answer = client.broadcast(raw, commit=True)
            assert answer["check_tx"]["code"] == 0
            assert answer["tx_result"]["code"] == 0
            height = int(answer["height"])
            assert height >= 1
            found = client.tx(tx_hash(raw).hex())
            assert int(found["height"]) == height
            events = found["tx_result"]["events"]
            assert [e["type"] for e in events] == ["coins_transferred"]
            replay = client.broadcast(raw, commit=True)
            assert replay["check_tx"]["code"] != 0 and replay["tx_result"] is None
            balance = client.query("/bank/balance", {"address": bob.address, "denom": DENOM})
            assert balance.ok
            status = client.status()
            assert int(status["sync_info"]["latest_block_height"]) >= height
    finally:
        server.stop()
        runtime.close()


def test_client_hanging_up_is_logged_not_printed(home: tuple[Path, Cast],
                                                 capsys: pytest.CaptureFixture[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """socketserver prints a traceback on stderr for any handler error by default; a client
    that went away (broken pipe, reset) is routine and gets one debug line instead, while
    other errors are still logged as errors."""
    root, _cast = home
    runtime = open_solo(root)
    server = RpcServer(runtime.node)
    server.start()
    try:
        caplog.set_level("DEBUG", logger="citychain.consensus.solo.rpc")
        try:
            raise BrokenPipeError(32, "Broken pipe")
        except BrokenPipeError:
            server._server.handle_error(None, ("127.0.0.1", 1))
        try:
            raise ValueError("a real bug")
        except ValueError:
            server._server.handle_error(None, ("127.0.0.1", 2))
        assert capsys.readouterr().err == ""
        levels = [(record.levelname, record.getMessage()) for record in caplog.records]
        assert levels[0][0] == "DEBUG" and "went away" in levels[0][1]
        assert levels[1][0] == "ERROR" and "unexpected error" in levels[1][1]
    finally:
        server.stop()
        runtime.close()
