"""What the CLI does against a node: sign and send txs, read state, and verify what comes back.

Thin compositions of :mod:`citychain.client` (RPC and light verification) and the modules' own
message classes and pure query functions; no business rules live here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citychain.app.genesis import Genesis
from citychain.cli.common import resolve_home, resolve_node_url
from citychain.cli.errors import (
    CliError,
    NodeUnreachable,
    UsageFailure,
    VerificationFailed,
    rejected,
)
from citychain.client.cometbft import (
    Header,
    LightClient,
    LightVerificationError,
    MalformedAnswerError,
    RpcHeaderSource,
    TrustedBlock,
)
from citychain.client.cometbft_rpc import CometRpcClient, open_node, signing_power
from citychain.client.network import NetworkClient, NotVerifiableError, QueryRefusedError
from citychain.client.rpc import NodeClient, QueryAnswer
from citychain.client.verify import (
    VerificationError,
    decode_reads,
    verify_header,
    verify_query_answer,
    verify_reads,
    verify_tx_inclusion,
)
from citychain.consensus.solo.block import SignedHeader
from citychain.core import codec
from citychain.core.crypto import PrivateKey, address_from_pubkey, did_from_address
from citychain.core.messages import MessageRegistry, Msg
from citychain.core.module import Module, QueryHandler
from citychain.core.tx import TxBody, decode_tx, sign_tx, tx_hash
from citychain.modules.identity.api import rotation_sign_bytes
from citychain.modules.identity.keys import key_binding_key
from citychain.modules.identity.messages import MsgRotateKey
from citychain.modules.identity.types import decode_address
from citychain.node.assemble import default_modules
from citychain.node.keyring import Keyring

STORE_KEY_PATH = "/store/key"
ACCOUNT_PATH = "/identity/account"
TESTNET_GENESIS = Path("cometbft") / "config" / "genesis.json"
"""Where a testnet node directory (``net/nodeI``) keeps the network's CometBFT genesis."""


# ------------------------------------------------------------------------------ context
class Session:
    """One command's view of the world: the home (keys, trusted genesis) and a node client."""

    def __init__(self, home: Path | None, node: str | None,
                 genesis: Path | None = None) -> None:
        self.home = resolve_home(home)
        self._node = node
        self._home_arg = home
        self._genesis = genesis
        self._client: NodeClient | None = None

    @property
    def client(self) -> NodeClient:
        """The node's client, speaking CometBFT's RPC shape when the node is CometBFT."""
        if self._client is None:
            self._client = open_node(resolve_node_url(self._node, self._home_arg))
        return self._client

    @property
    def is_cometbft(self) -> bool:
        return isinstance(self.client, CometRpcClient)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def key(self, name: str) -> PrivateKey:
        return Keyring(self.home.keyring_dir).load(name)

    def home_genesis(self) -> Genesis | None:
        if not self.home.genesis_path.exists():
            return None
        return Genesis.from_json(self.home.genesis_path.read_text())

    def chain_id(self) -> str:
        """The node's chain id, checked against the home's genesis when there is one.

        Raises:
            CliError: the node serves another chain than the home's genesis names.
        """
        network = str(self.client.status()["node_info"]["network"])
        genesis = self.home_genesis()
        if genesis is not None and genesis.chain_id != network:
            raise CliError(f"the node at {self.client.url} serves chain {network!r} but "
                           f"{self.home.genesis_path} is for {genesis.chain_id!r}")
        return network

    def trust(self, trust_node: bool) -> Trust:
        """The validators to trust: the home's genesis, or (only if asked) the node's.

        Raises:
            UsageFailure: no genesis.json in the home and --trust-node not given.
        """
        if self._genesis is not None:
            genesis: Genesis | None = Genesis.from_json(_read_text(self._genesis))
            source = str(self._genesis)
        else:
            genesis = self.home_genesis()
            source = str(self.home.genesis_path)
        if genesis is None:
            if not trust_node:
                raise UsageFailure(
                    f"--prove needs trusted validator keys: {self.home.genesis_path} does not "
                    "exist; pass --genesis FILE or --home with the chain's genesis.json, or "
                    "--trust-node to trust the node's own genesis")
            genesis = Genesis.from_json_value(self.client.genesis())
            source = f"the genesis served by {self.client.url}"
        return Trust(genesis.chain_id, {v.pubkey: v.name for v in genesis.validators}, source)

    def network_genesis(self, trust_node: bool) -> tuple[dict[str, Any], str]:
        """The CometBFT genesis to trust, and where it came from: ``--genesis FILE``, else the
        home's ``cometbft/config/genesis.json`` (a testnet node directory), else (only with
        --trust-node) the node's own.

        Raises:
            UsageFailure: none of these, or the file is not JSON.
        """
        if self._genesis is not None:
            path: Path | None = self._genesis
        elif (self.home.root / TESTNET_GENESIS).exists():
            path = self.home.root / TESTNET_GENESIS
        else:
            path = None
        if path is not None:
            try:
                value = json.loads(_read_text(path))
            except json.JSONDecodeError as exc:
                raise UsageFailure(f"{path} is not JSON: {exc}") from None
            if not isinstance(value, dict):
                raise UsageFailure(f"{path} is not a CometBFT genesis document")
            return value, str(path)
        if not trust_node:
            raise UsageFailure(
                f"--prove against a CometBFT node needs the network's genesis.json: pass "
                f"--genesis FILE, or --home a testnet node directory (with {TESTNET_GENESIS}), "
                "or --trust-node to trust the node's own genesis")
        return self.client.genesis(), f"the genesis served by {self.client.url}"

    def network(self, trust_node: bool) -> tuple[NetworkClient, str]:
        """A light client of this CometBFT node trusting :meth:`network_genesis`.

        Raises:
            UsageFailure: no genesis to trust.
            CliError: the genesis has no chain id or validators.
        """
        genesis, source = self.network_genesis(trust_node)
        try:
            trusted = TrustedBlock.genesis(genesis)
        except MalformedAnswerError as exc:
            raise CliError(f"{source} is not a usable CometBFT genesis: {exc}") from None
        light = LightClient(RpcHeaderSource(self.client), trusted)
        return NetworkClient(self.client, light, default_modules()), source


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageFailure(f"cannot read {path}: {exc.strerror}") from None


@contextmanager
def _network_failures() -> Iterator[None]:
    """Turn what NetworkClient raises into the CLI's one-line errors."""
    try:
        yield
    except QueryRefusedError as exc:
        raise rejected({"code": exc.code, "codespace": exc.codespace, "log": exc.log}) from None
    except NotVerifiableError as exc:
        raise UsageFailure(f"{exc}; cannot verify") from None
    except LightVerificationError as exc:
        raise VerificationFailed(f"verification failed ({exc.reason}): {exc}") from None
    except TimeoutError as exc:
        raise NodeUnreachable(f"the node did not answer in time: {exc}") from None


def network_line(network: NetworkClient, header: Header, source: str, proof: str = "proof",
                 root: str = "app hash") -> str:
    """``verified: <proof> checked against <root> <hex> of header <h> signed by validators
    holding <p> of <total> voting power (trusted from <source>)``."""
    signed, total = signing_power(network.light, header)
    root_hash = header.data_hash if root == "data hash" else header.app_hash
    return (f"verified: {proof} checked against {root} {root_hash.hex()} of header "
            f"{header.height} signed by validators holding {signed} of {total} voting power "
            f"(trusted from {source})")


@dataclass(frozen=True)
class Trust:
    chain_id: str
    validators: dict[bytes, str]
    source: str

    @property
    def pubkeys(self) -> frozenset[bytes]:
        return frozenset(self.validators)

    def verified_line(self, signed: SignedHeader, proof: str = "proof",
                      root: str = "app hash") -> str:
        """``verified: <proof> checked against <root> <hex> of header <h> signed by <name>``."""
        name = self.validators.get(signed.pubkey, "?")
        header = signed.header
        root_hash = header.tx_root if root == "tx root" else header.app_hash
        return (f"verified: {proof} checked against {root} {root_hash.hex()} of header "
                f"{header.height} signed by {name} ({address_from_pubkey(signed.pubkey)})")


# ------------------------------------------------------------------------------ transactions
@dataclass(frozen=True)
class TxOutcome:
    """What happened to a broadcast tx: rejected by check_tx, in the mempool, or in a block."""

    hash: str
    height: int
    code: int
    codespace: str
    log: str
    info: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def error(self) -> CliError:
        return rejected({"code": self.code, "codespace": self.codespace, "log": self.log,
                         "info": self.info})

    def to_value(self) -> dict[str, Any]:
        return {"hash": self.hash, "height": self.height, "code": self.code,
                "codespace": self.codespace, "log": self.log, "info": self.info,
                "events": self.events}


def outcome(result: dict[str, Any]) -> TxOutcome:
    """Read a broadcast_tx_sync or broadcast_tx_commit answer."""
    if "check_tx" in result:
        final = result["tx_result"] or result["check_tx"]
        height = int(result.get("height") or 0)
    else:
        final, height = result, 0
    return TxOutcome(str(result["hash"]), height, int(final["code"]),
                     str(final.get("codespace") or ""), str(final.get("log") or ""),
                     str(final.get("info") or ""), list(final.get("events") or []))


@dataclass(frozen=True)
class Sender:
    """The account a key signs for (its own address, or the account it was rotated into)."""

    address: str
    sequence: int
    exists: bool

    @property
    def did(self) -> str:
        return did_from_address(self.address)


def query_value(client: NodeClient, path: str, params: dict[str, Any]) -> Any:
    """Run an unproven query and return its decoded value.

    Raises:
        CliError: the node refused the query.
    """
    answer = client.query(path, params)
    if not answer.ok:
        raise rejected({"code": answer.code, "codespace": answer.codespace, "log": answer.log,
                        "info": answer.info})
    return codec.decode(answer.value)


def sender_of(client: NodeClient, key: PrivateKey, name: str) -> Sender:
    """Find the account ``key`` signs for and its next sequence number.

    Raises:
        CliError: the key was rotated out of its account.
    """
    address = key.address
    binding = client.query(STORE_KEY_PATH, raw_data=key_binding_key(key.public_key))
    if binding.ok and binding.info != "absent" and binding.value:
        address = decode_address(binding.value)
    account = query_value(client, ACCOUNT_PATH, {"address": address})
    if account is None:
        return Sender(address, 0, False)
    if bytes.fromhex(account["pubkey"]) != key.public_key:
        raise CliError(f"key {name!r} is no longer the key of {account['did']} (it was "
                       "rotated); sign with the account's current key")
    return Sender(address, int(account["sequence"]), True)


def broadcast(session: Session, key: PrivateKey, key_name: str, messages: list[Msg], *,
              memo: str, wait: bool, sender: Sender | None = None,
              chain_id: str | None = None) -> TxOutcome:
    chain_id = chain_id or session.chain_id()
    sender = sender or sender_of(session.client, key, key_name)
    raw = sign_tx(key, TxBody(chain_id, sender.address, sender.sequence, tuple(messages), memo))
    return outcome(session.client.broadcast(raw, commit=wait))


def send(home: Path | None, node: str | None, key_name: str, messages: list[Msg], *,
         memo: str = "", wait: bool = True) -> TxOutcome:
    """Sign ``messages`` with the keyring key ``key_name`` and broadcast them."""
    with Session(home, node) as session:
        return broadcast(session, session.key(key_name), key_name, messages, memo=memo,
                         wait=wait)


def public_key(home: Path | None, key_name: str) -> bytes:
    """The public key of a keyring key."""
    return Keyring(resolve_home(home).keyring_dir).load(key_name).public_key


def rotate_key(home: Path | None, node: str | None, key_name: str, new_key_name: str, *,
               memo: str = "", wait: bool = True) -> TxOutcome:
    """Rotate the account of ``key_name`` onto ``new_key_name`` (both in the keyring)."""
    with Session(home, node) as session:
        key = session.key(key_name)
        new_key = session.key(new_key_name)
        chain_id = session.chain_id()
        sender = sender_of(session.client, key, key_name)
        proof = new_key.sign(rotation_sign_bytes(chain_id, sender.did, new_key.public_key,
                                                 sender.sequence))
        message = MsgRotateKey(new_pubkey=new_key.public_key, new_key_signature=proof)
        message.validate_basic()
        return broadcast(session, key, key_name, [message], memo=memo, wait=wait,
                         sender=sender, chain_id=chain_id)


@dataclass(frozen=True)
class ShownTx:
    hash: str
    height: int
    index: int
    body: TxBody
    result: dict[str, Any]
    verification: str | None

    def to_value(self) -> dict[str, Any]:
        return {"hash": self.hash, "height": self.height, "index": self.index,
                "body": self.body.to_value(), "result": self.result,
                "verified": self.verification is not None}

    def lines(self) -> list[str]:
        body, result = self.body, self.result
        status = "ok" if result["code"] == 0 else (
            f"failed [{result['codespace']}/{result['code']}] {result['log']}")
        out = [f"tx {self.hash}", f"height {self.height}, position {self.index}",
               f"sender {did_from_address(body.sender)} sequence {body.sequence}",
               f"result {status}"]
        if body.memo:
            out.append(f"memo {body.memo}")
        for msg in body.messages:
            fields = "  ".join(f"{k}={_shown(v)}" for k, v in msg.to_value().items())
            out.append(f"message {msg.TYPE}  {fields}")
        for event in result.get("events") or []:
            attributes = "  ".join(f"{k}={v}" for k, v in event["attributes"])
            out.append(f"event {event['type']}  {attributes}")
        return out


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def registry(modules: list[Module] | None = None) -> MessageRegistry:
    found = MessageRegistry()
    for module in modules if modules is not None else default_modules():
        for cls in module.handlers:
            found.register(cls)
    return found


def show_tx(home: Path | None, node: str | None, hash_hex: str, *, prove: bool,
            trust_node: bool, genesis: Path | None = None) -> ShownTx:
    """Fetch a committed tx; with ``prove`` verify its inclusion against the signed header
    (against the data hash of a CometBFT header, and its result code against the next one).

    Raises:
        UsageFailure: the hash is not 64 hex characters.
        VerificationFailed: the tx bytes, header or inclusion proof do not check out.
    """
    wanted = hash_hex.lower()
    if len(wanted) != 64 or wanted.strip("0123456789abcdef"):
        raise UsageFailure(f"a tx hash is 64 hex characters, got {hash_hex!r}")
    with Session(home, node, genesis) as session:
        if session.is_cometbft:
            return _show_network_tx(session, wanted, prove=prove, trust_node=trust_node)
        trust = session.trust(trust_node) if prove else None
        answer = session.client.tx(wanted, prove=prove)
        raw = base64.b64decode(answer["tx"])
        if tx_hash(raw).hex() != wanted:
            raise VerificationFailed(f"the node returned a tx whose hash is {tx_hash(raw).hex()}")
        height = int(answer["height"])
        verification = None
        if trust is not None:
            proof = answer.get("proof")
            if not proof or not answer.get("signed_header"):
                raise VerificationFailed("the node sent no inclusion proof or signed header")
            signed = SignedHeader.from_value(codec.decode(
                base64.b64decode(answer["signed_header"])))
            try:
                verify_header(signed, trust.chain_id, trust.pubkeys, height=height)
                verify_tx_inclusion(raw, int(proof["index"]), int(proof["total"]),
                                    [bytes.fromhex(a) for a in proof["aunts"]], signed,
                                    trust.chain_id, trust.pubkeys)
            except VerificationError as exc:
                raise VerificationFailed(f"verification failed: {exc}") from None
            verification = trust.verified_line(signed, "inclusion proof", "tx root")
        tx = decode_tx(raw, registry())
        return ShownTx(wanted, height, int(answer["index"]), tx.body, answer["tx_result"],
                       verification)


def _show_network_tx(session: Session, wanted: str, *, prove: bool,
                     trust_node: bool) -> ShownTx:
    network, source = session.network(trust_node) if prove else (None, "")
    answer = session.client.tx(wanted)
    raw = base64.b64decode(answer["tx"])
    if tx_hash(raw).hex() != wanted:
        raise VerificationFailed(f"the node returned a tx whose hash is {tx_hash(raw).hex()}")
    height, index, verification = int(answer["height"]), int(answer["index"]), None
    if network is not None:
        with _network_failures():
            proven = network.verify_tx(wanted)
            if proven.code != answer["tx_result"]["code"]:
                raise VerificationFailed(f"the node claimed result code "
                                         f"{answer['tx_result']['code']}, block "
                                         f"{proven.height + 1} commits {proven.code}")
            raw, height, index = proven.raw, proven.height, proven.index
            verification = network_line(network, proven.header, source, "inclusion proof",
                                        "data hash")
    tx = decode_tx(raw, registry())
    return ShownTx(wanted, height, index, tx.body, answer["tx_result"], verification)


# ------------------------------------------------------------------------------ queries
@dataclass(frozen=True)
class QueryOutcome:
    path: str
    params: dict[str, Any]
    height: int
    value: Any
    verification: str | None

    def to_value(self) -> dict[str, Any]:
        return {"path": self.path, "params": self.params, "height": self.height,
                "value": self.value, "verified": self.verification is not None}


def query_handler(path: str, modules: list[Module] | None = None) -> QueryHandler | None:
    """The pure query function behind ``/<module>/<name>`` (for re-running it over proofs)."""
    _, module_name, name = [*path.split("/"), "", ""][:3]
    for module in modules if modules is not None else default_modules():
        if module.name == module_name:
            return module.queries.get(name)
    return None


def _refused(answer: QueryAnswer) -> CliError:
    return rejected({"code": answer.code, "codespace": answer.codespace, "log": answer.log,
                     "info": answer.info})


def _signed_reads(answer: QueryAnswer, trust: Trust, height: int) -> SignedHeader:
    if answer.height == 0:
        raise VerificationFailed("the chain has no block yet, so there is no signed header to "
                                 "verify against; try again after the first block")
    if answer.proof is None or answer.signed_header is None:
        raise VerificationFailed("the node sent no proof or no signed header")
    if height and answer.height != height:
        raise VerificationFailed(f"asked for height {height}, the answer is for {answer.height}")
    try:
        verify_header(answer.signed_header, trust.chain_id, trust.pubkeys, height=answer.height)
    except VerificationError as exc:
        raise VerificationFailed(f"verification failed: {exc}") from None
    return answer.signed_header


def query(home: Path | None, node: str | None, path: str, params: dict[str, Any], *,
          height: int = 0, prove: bool = False, trust_node: bool = False,
          genesis: Path | None = None) -> QueryOutcome:
    """Run ``path`` with ``params``; with ``prove`` re-run it over proven reads and compare.

    Raises:
        CliError: the node refused the query.
        VerificationFailed: a proof, the header or the recomputed answer does not match.
    """
    with Session(home, node, genesis) as session:
        if prove and session.is_cometbft:
            network, source = session.network(trust_node)
            with _network_failures():
                verified = network.verify_query(path, params, height)
                return QueryOutcome(path, params, verified.height, verified.value,
                                    network_line(network, verified.header, source))
        trust = session.trust(trust_node) if prove else None
        answer = session.client.query(path, params, height=height, prove=prove)
        if not answer.ok:
            raise _refused(answer)
        if trust is None:
            return QueryOutcome(path, params, answer.height, codec.decode(answer.value), None)
        signed = _signed_reads(answer, trust, height)
        handler = query_handler(path)
        if handler is None:
            raise UsageFailure(f"no query function for {path} in this client; cannot verify")
        try:
            value = verify_query_answer(handler, params, answer.value,
                                        decode_reads(answer.proof or b""), signed,
                                        trust.chain_id, trust.pubkeys, answer.height)
        except VerificationError as exc:
            raise VerificationFailed(f"verification failed: {exc}") from None
        return QueryOutcome(path, params, answer.height, value, trust.verified_line(signed))


def query_key(home: Path | None, node: str | None, key: bytes, *, height: int = 0,
              prove: bool = False, trust_node: bool = False,
              genesis: Path | None = None) -> QueryOutcome:
    """Read one raw store key; with ``prove`` check its (non-)membership proof."""
    with Session(home, node, genesis) as session:
        if prove and session.is_cometbft:
            network, source = session.network(trust_node)
            with _network_failures():
                verified = network.verify_key(key, height)
                return QueryOutcome(STORE_KEY_PATH, verified.params, verified.height,
                                    verified.value, network_line(network, verified.header,
                                                                 source))
        trust = session.trust(trust_node) if prove else None
        answer = session.client.query(STORE_KEY_PATH, height=height, prove=prove, raw_data=key)
        if not answer.ok:
            raise _refused(answer)
        value: bytes | None = None if answer.info == "absent" else answer.value
        params = {"key": key.hex()}
        if trust is None:
            return QueryOutcome(STORE_KEY_PATH, params, answer.height, value, None)
        signed = _signed_reads(answer, trust, height)
        try:
            proven = verify_reads(signed.header.app_hash, decode_reads(answer.proof or b""))
        except VerificationError as exc:
            raise VerificationFailed(f"verification failed: {exc}") from None
        if key not in proven:
            raise VerificationFailed("the node sent no proof for the requested key")
        if proven[key] != value:
            raise VerificationFailed("the proven value differs from the answer")
        return QueryOutcome(STORE_KEY_PATH, params, answer.height, value,
                            trust.verified_line(signed))
