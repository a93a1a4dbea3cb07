"""Factories for integration tests and benchmarks: a cast of deterministic keys, a genesis with a
treasury, a registrar and citizens, an application on a memory or SQLite store, a block runner
that drives it through finalize_block + commit, and a solo node home on disk.

Everything here is deterministic: keys come from ``PrivateKey.from_secret``, block times advance
by a fixed step from a fixed genesis time, so two runs of the same script give the same app hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citychain.app.application import Application
from citychain.app.genesis import Genesis
from citychain.app.types import RequestFinalizeBlock, ResponseFinalizeBlock, TxResult
from citychain.core import codec
from citychain.core.crypto import PrivateKey, address_from_pubkey
from citychain.core.hashing import sha256
from citychain.core.messages import Msg
from citychain.core.tx import TxBody, sign_tx
from citychain.modules.bank.messages import MsgTransfer
from citychain.modules.identity import state as identity_state
from citychain.modules.identity.api import (
    ROLE_CITIZEN,
    ROLE_DEVICE,
    ROLE_OPERATOR,
    ROLE_REGISTRAR,
    ROLE_TREASURY,
    ROLE_VALIDATOR_ORG,
)
from citychain.node.assemble import build_app
from citychain.node.home import Home, NodeConfig
from citychain.node.keyring import write_key_file
from citychain.store import MemoryStore, SqliteStore

CHAIN_ID = "citychain-test"
GENESIS_TIME_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
BLOCK_STEP_NS = 1_000_000_000
DENOM = "ucity"
DENOM_DECIMALS = 6
CITIZEN_BALANCE = 1_000_000_000


def named_key(name: str) -> PrivateKey:
    """Return the deterministic key called ``name`` (same bytes in every run)."""
    return PrivateKey.from_secret(f"citychain-testing/{name}")


@dataclass(frozen=True)
class Cast:
    """The keys of a test chain: a validator node key and accounts with fixed roles.

    ``city`` holds validator-org (the root granter); ``registrar`` and ``treasury`` their roles;
    ``operator`` may register devices; ``citizens`` hold the citizen role and a balance;
    ``devices`` hold the device role; ``newcomer`` is a key with no identity.
    """

    node: PrivateKey
    city: PrivateKey
    registrar: PrivateKey
    treasury: PrivateKey
    operator: PrivateKey
    citizens: tuple[PrivateKey, ...]
    devices: tuple[PrivateKey, ...]
    newcomer: PrivateKey

    @classmethod
    def make(cls, citizens: int = 4, devices: int = 1, prefix: str = "") -> Cast:
        return cls(
            node=named_key(f"{prefix}node"),
            city=named_key(f"{prefix}city"),
            registrar=named_key(f"{prefix}registrar"),
            treasury=named_key(f"{prefix}treasury"),
            operator=named_key(f"{prefix}operator"),
            citizens=tuple(named_key(f"{prefix}citizen-{i}") for i in range(citizens)),
            devices=tuple(named_key(f"{prefix}device-{i}") for i in range(devices)),
            newcomer=named_key(f"{prefix}newcomer"),
        )

    def accounts(self) -> list[tuple[PrivateKey, tuple[str, ...]]]:
        """Every key that gets an identity at genesis, with its roles."""
        return [
            (self.city, (ROLE_VALIDATOR_ORG,)),
            (self.registrar, (ROLE_REGISTRAR,)),
            (self.treasury, (ROLE_TREASURY,)),
            (self.operator, (ROLE_OPERATOR,)),
            *((key, (ROLE_CITIZEN,)) for key in self.citizens),
            *((key, (ROLE_DEVICE,)) for key in self.devices),
        ]


def filler_pubkey(index: int) -> bytes:
    """A 32-byte public key for a filler account (state size only; nobody signs with it)."""
    return sha256(b"citychain-testing/filler\x00" + index.to_bytes(8, "big"))


def make_genesis(cast: Cast, *, chain_id: str = CHAIN_ID, citizen_balance: int = CITIZEN_BALANCE,
                 treasury_balance: int = 10 * CITIZEN_BALANCE, filler_accounts: int = 0,
                 filler_balance: int = 1, extra_funded: Sequence[PrivateKey] = (),
                 extra_balance: int = CITIZEN_BALANCE,
                 self_registration: bool = True) -> Genesis:
    """Return a genesis with ``cast``'s identities, one denomination (``ucity``) and balances.

    ``extra_funded`` keys get an identity with no role and ``extra_balance``; ``filler_accounts``
    identities with deterministic pubkeys (no private key) and ``filler_balance`` each make the
    state larger without anyone able to sign for them.
    """
    identities: list[dict[str, Any]] = [
        {"pubkey": key.public_key.hex(), "roles": list(roles)} for key, roles in cast.accounts()]
    balances: dict[str, int] = {cast.treasury.address: treasury_balance}
    for key in cast.citizens:
        balances[key.address] = citizen_balance
    for key in extra_funded:
        identities.append({"pubkey": key.public_key.hex()})
        balances[key.address] = extra_balance
    for index in range(filler_accounts):
        pubkey = filler_pubkey(index)
        identities.append({"pubkey": pubkey.hex()})
        if filler_balance:
            balances[address_from_pubkey(pubkey)] = filler_balance
    return Genesis.from_json_value({
        "chain_id": chain_id,
        "genesis_time_ns": GENESIS_TIME_NS,
        "initial_height": 1,
        "validators": [{"name": "node", "pubkey": cast.node.public_key.hex(), "power": 1}],
        "app_state": {
            "identity": {"params": {"self_registration_enabled": self_registration},
                         "accounts": identities},
            "bank": {
                "params": {},
                "denoms": [{"denom": DENOM, "display_name": "City credit",
                            "decimals": DENOM_DECIMALS}],
                "balances": [{"address": address, "denom": DENOM, "amount": amount}
                             for address, amount in sorted(balances.items())],
            },
        },
    })


def sign_raw(key: PrivateKey, chain_id: str, sequence: int, *messages: Msg,
             memo: str = "") -> bytes:
    """Sign a transaction from ``key`` (no sequence bookkeeping)."""
    return sign_tx(key, TxBody(chain_id, key.address, sequence, tuple(messages), memo))


def transfer(key: PrivateKey, chain_id: str, sequence: int, to: PrivateKey | str,
             amount: int, denom: str = DENOM) -> bytes:
    """Sign a MsgTransfer of ``amount`` from ``key`` to ``to`` (a key or an address)."""
    address = to if isinstance(to, str) else to.address
    return sign_raw(key, chain_id, sequence, MsgTransfer(f"did:city:{address}", denom, amount))


@dataclass
class ChainRunner:
    """Drives an Application block by block, as a consensus driver would (no block store).

    ``tx`` signs with the next sequence it expects for the key (counted locally, starting from
    committed state); ``block`` runs finalize_block + commit with a fixed time step.
    """

    app: Application
    genesis: Genesis
    height: int = 0
    time_ns: int = GENESIS_TIME_NS
    proposer: str = ""
    sequences: dict[str, int] = field(default_factory=dict)
    last: ResponseFinalizeBlock | None = None

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    def start(self) -> ChainRunner:
        """init_chain (if the store is empty) and pick up height and time from the store."""
        if self.app.last_height == 0:
            self.app.init_chain(self.genesis.init_chain_request())
            self.height = self.genesis.initial_height - 1
        else:
            self.height = self.app.last_height
            self.time_ns = GENESIS_TIME_NS + self.height * BLOCK_STEP_NS
        return self

    # ------------------------------------------------------------ txs
    def sequence_of(self, key: PrivateKey) -> int:
        """The next sequence this runner will sign with for ``key``."""
        if key.address not in self.sequences:
            self.sequences[key.address] = self.committed_sequence(key.address)
        return self.sequences[key.address]

    def committed_sequence(self, address: str) -> int:
        return identity_state.get_sequence(self.app.store.reader(), address)

    def tx(self, key: PrivateKey, *messages: Msg, sequence: int | None = None,
           memo: str = "", chain_id: str | None = None) -> bytes:
        """Sign ``messages`` from ``key``. Without ``sequence``, use (and advance) the runner's
        count; with it, leave the count alone (for txs meant to fail the ante checks)."""
        if sequence is None:
            sequence = self.sequence_of(key)
            self.sequences[key.address] = sequence + 1
        return sign_raw(key, chain_id or self.chain_id, sequence, *messages, memo=memo)

    def resync(self) -> None:
        """Forget local sequence counts (after txs that failed ante checks)."""
        self.sequences.clear()

    # ------------------------------------------------------------ blocks
    def block(self, *txs: bytes) -> ResponseFinalizeBlock:
        """Execute and commit one block holding ``txs``; return the finalize response."""
        response = self.finalize(*txs)
        self.app.commit()
        return response

    def finalize(self, *txs: bytes) -> ResponseFinalizeBlock:
        """Execute the next block without committing it (call ``app.commit()`` after)."""
        self.height += 1
        self.time_ns += BLOCK_STEP_NS
        response = self.app.finalize_block(RequestFinalizeBlock(
            tuple(txs), self.height, self.time_ns, self.proposer))
        self.last = response
        return response

    def run(self, *txs: bytes) -> tuple[TxResult, ...]:
        """``block`` and return its tx results."""
        return self.block(*txs).tx_results

    def check(self, raw: bytes) -> TxResult:
        return self.app.check_tx(raw)

    # ------------------------------------------------------------ reads
    def query(self, path: str, params: dict[str, Any] | None = None, *,
              prove: bool = False, height: int = 0) -> Any:
        """Answer a module query at the latest (or given) height; return the decoded value.

        Raises:
            AssertionError: the query failed (its code and log are in the message).
        """
        response = self.app.query(path, codec.encode(params) if params else b"", height, prove)
        if not response.ok:
            raise AssertionError(f"query {path} failed: {response.codespace}/{response.code} "
                                 f"{response.log}")
        return codec.decode(response.value)

    def balance(self, who: PrivateKey | str, denom: str = DENOM) -> int:
        address = who if isinstance(who, str) else who.address
        answer = self.query("/bank/balance", {"address": address, "denom": denom})
        return int(answer["amount"])

    def supply(self, denom: str = DENOM) -> int:
        answer = self.query("/bank/supply", {"denom": denom})
        return 0 if answer is None else int(answer["amount"])

    def account(self, who: PrivateKey | str) -> dict[str, Any] | None:
        address = who if isinstance(who, str) else who.address
        answer: dict[str, Any] | None = self.query("/identity/account", {"address": address})
        return answer

    def snapshot(self) -> dict[bytes, bytes]:
        """Every committed key/value (for before/after comparisons)."""
        return dict(self.app.store.reader().iterate(b""))

    @property
    def app_hash(self) -> bytes:
        return self.app.last_app_hash


def memory_chain(cast: Cast | None = None, genesis: Genesis | None = None,
                 **genesis_options: Any) -> tuple[ChainRunner, Cast]:
    """Return a started runner on an in-memory application, and its cast.

    The genesis block (height 1, empty) is committed, so the chain is at height 1.
    """
    cast = cast or Cast.make()
    genesis = genesis or make_genesis(cast, **genesis_options)
    runner = ChainRunner(build_app(MemoryStore()), genesis, proposer=cast.node.address).start()
    runner.block()
    return runner, cast


def sqlite_app(path: Path | str) -> Application:
    """An application on a SQLite store at ``path``."""
    return build_app(SqliteStore(str(path)))


def write_home(root: Path, genesis: Genesis, node_key: PrivateKey,
               config: NodeConfig | None = None) -> Home:
    """Write a solo node home (genesis.json, node_key.json, config.toml) at ``root``."""
    home = Home(root)
    root.mkdir(parents=True, exist_ok=True)
    home.genesis_path.write_text(genesis.to_json())
    write_key_file(home.node_key_path, node_key, "node")
    home.config_path.write_text((config or NodeConfig()).to_toml())
    return home


def block_txs(results: Iterable[TxResult]) -> list[tuple[int, str]]:
    """(code, codespace) of each result, for compact assertions."""
    return [(result.code, result.codespace) for result in results]


def solo_home(root: Path, cast: Cast | None = None, *, config: NodeConfig | None = None,
              **genesis_options: Any) -> tuple[Home, Genesis, Cast]:
    """Write a solo node home for ``cast`` (default cast) and return it with its genesis."""
    cast = cast or Cast.make()
    genesis = make_genesis(cast, **genesis_options)
    home = write_home(root, genesis, cast.node, config)
    return home, genesis, cast
