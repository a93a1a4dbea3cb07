"""A seeded, random multi-module workload, run block by block; prints the app hash per height.

    python -m citychain.testing.workload [--seed 7] [--blocks 12] [--txs 40] [--store memory|sqlite]

The same seed gives the same blocks. Run under different PYTHONHASHSEED values, the printed
hashes must be identical (STYLE convention 4): any iteration over a set or an unsorted dict in
the state machine shows up here as a different app hash.

The workload mixes every message of identity and bank, successes and failures: newcomers
registering themselves, role grants and revocations, suspension and reinstatement, denomination
creation, minting, burning, transfers (some overdrawn, some to unknown or suspended identities),
stale sequences and multi-message transactions.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from citychain.core.crypto import PrivateKey
from citychain.core.messages import Msg
from citychain.modules.bank.messages import MsgBurn, MsgCreateDenom, MsgMint, MsgTransfer
from citychain.modules.identity.messages import (
    MsgCreateIdentity,
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgRevokeRole,
    MsgRotateKey,
    MsgSuspendIdentity,
    rotation_sign_bytes,
)
from citychain.node.assemble import build_app
from citychain.store import MemoryStore, SqliteStore
from citychain.testing.chain import DENOM, Cast, ChainRunner, make_genesis, named_key


class Workload:
    """Generates the random txs of one block at a time from a seeded generator."""

    def __init__(self, runner: ChainRunner, cast: Cast, seed: int) -> None:
        self.runner = runner
        self.cast = cast
        self.rng = random.Random(seed)
        self.members: list[PrivateKey] = list(cast.citizens)
        self.newcomers = [named_key(f"workload-newcomer-{seed}-{i}") for i in range(200)]
        self.rotations = [named_key(f"workload-rotated-{seed}-{i}") for i in range(200)]
        self.denoms = [DENOM]
        self.next_denom = 0
        self.suspended: list[PrivateKey] = []
        self.retired: list[PrivateKey] = []

    def block(self, count: int) -> list[bytes]:
        txs: list[bytes] = []
        for _ in range(count):
            raw = self.one()
            if raw is not None:
                txs.append(raw)
        return txs

    def one(self) -> bytes | None:
        rng = self.rng
        runner = self.runner
        cast = self.cast
        roll = rng.random()
        if roll < 0.45:
            sender = rng.choice(self.members)
            to = rng.choice([*self.members, cast.treasury, *self.suspended, *self.retired,
                             cast.newcomer])
            amount = rng.choice([1, 7, 1000, 10**6, 10**12])
            messages: list[Msg] = [MsgTransfer(to.did, rng.choice(self.denoms), amount)]
            if rng.random() < 0.2:
                messages.append(MsgTransfer(rng.choice(self.members).did, DENOM, 3))
            return runner.tx(sender, *messages)
        if roll < 0.55 and self.newcomers:
            key = self.newcomers.pop()
            self.members.append(key)
            return runner.tx(key, MsgCreateIdentity(key.public_key))
        if roll < 0.62:
            target = rng.choice(self.members)
            role = rng.choice(["citizen", "auditor", "operator"])
            msg: Msg = (MsgGrantRole(target.did, role) if rng.random() < 0.7
                        else MsgRevokeRole(target.did, role))
            return runner.tx(cast.registrar, msg)
        if roll < 0.68 and len(self.members) > 2:
            target = rng.choice(self.members)
            self.members.remove(target)
            self.suspended.append(target)
            return runner.tx(cast.registrar, MsgSuspendIdentity(target.did, "case-42"))
        if roll < 0.72 and self.suspended:
            target = self.suspended.pop(rng.randrange(len(self.suspended)))
            self.members.append(target)
            return runner.tx(cast.registrar, MsgReinstateIdentity(target.did))
        if roll < 0.76:
            denom = f"tok{self.next_denom}"
            self.next_denom += 1
            self.denoms.append(denom)
            return runner.tx(cast.treasury, MsgCreateDenom(denom, f"Token {denom}", 2))
        if roll < 0.84:
            to = rng.choice(self.members)
            return runner.tx(cast.treasury, MsgMint(to.did, rng.choice(self.denoms),
                                                    rng.randrange(1, 10**9)))
        if roll < 0.87:
            return runner.tx(cast.treasury, MsgBurn(DENOM, rng.randrange(1, 10**6)))
        if roll < 0.90 and self.rotations and len(self.members) > 2:
            return self.rotate()
        if roll < 0.95:
            sender = rng.choice(self.members)
            stale = max(0, runner.sequence_of(sender) - 1 - rng.randrange(3))
            return runner.tx(sender, MsgTransfer(cast.treasury.did, DENOM, 1), sequence=stale)
        # a role-protected message from someone without the role
        return runner.tx(rng.choice(self.members), MsgMint(cast.treasury.did, DENOM, 5))

    def rotate(self) -> bytes:
        """Rotate one member's key (the member then signs with the new key)."""
        runner = self.runner
        old = self.rng.choice(self.members)
        new = self.rotations.pop()
        sequence = runner.sequence_of(old)
        proof = new.sign(rotation_sign_bytes(runner.chain_id, old.did, new.public_key, sequence))
        # The account keeps its address but now answers to ``new``, which this workload cannot
        # sign for as that address: it leaves the pool of senders (it can still be paid).
        self.members.remove(old)
        self.retired.append(old)
        return runner.tx(old, MsgRotateKey(new.public_key, proof))


def run(seed: int, blocks: int, txs: int, store_kind: str, out: list[str]) -> None:
    cast = Cast.make(citizens=12, devices=2)
    genesis = make_genesis(cast)
    with tempfile.TemporaryDirectory() as directory:
        store = (SqliteStore(str(Path(directory) / "state.db")) if store_kind == "sqlite"
                 else MemoryStore())
        runner = ChainRunner(build_app(store), genesis, proposer=cast.node.address).start()
        workload = Workload(runner, cast, seed)
        response = runner.block()
        out.append(f"{runner.height} {response.app_hash.hex()}")
        for _ in range(blocks):
            response = runner.block(*workload.block(txs))
            codes = ",".join(f"{r.codespace}/{r.code}" if r.code else "ok"
                             for r in response.tx_results)
            out.append(f"{runner.height} {response.app_hash.hex()} {codes}")
            runner.resync()
        if store_kind == "sqlite":
            store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citychain.testing.workload")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--txs", type=int, default=40)
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args(argv)
    lines: list[str] = []
    run(args.seed, args.blocks, args.txs, args.store, lines)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
