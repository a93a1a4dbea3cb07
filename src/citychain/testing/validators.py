"""Helpers for tests of the validators module: validator organisations with deterministic keys,
and a genesis (or a started in-memory chain) whose validators section lists them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from citychain.app.genesis import Genesis
from citychain.app.types import ResponseInitChain
from citychain.core.crypto import PrivateKey
from citychain.modules.identity.api import ROLE_VALIDATOR_ORG
from citychain.node.assemble import build_app
from citychain.store import MemoryStore
from citychain.testing.chain import Cast, ChainRunner, make_genesis, named_key


@dataclass(frozen=True)
class ValidatorOrg:
    """An organisation (its account key) operating one validator (its consensus key)."""

    org: PrivateKey
    consensus: PrivateKey
    power: int
    name: str

    @property
    def did(self) -> str:
        return self.org.did

    def genesis_entry(self) -> dict[str, Any]:
        return {"pubkey": self.consensus.public_key.hex(), "power": self.power,
                "organisation": self.org.did, "name": self.name}


def make_orgs(powers: tuple[int, ...] = (100, 100, 100, 100),
              prefix: str = "") -> tuple[ValidatorOrg, ...]:
    """One organisation per power, named org-0, org-1, ... with deterministic keys."""
    return tuple(ValidatorOrg(named_key(f"{prefix}org-{i}"),
                              named_key(f"{prefix}consensus-{i}"), power, f"org-{i}")
                 for i, power in enumerate(powers))


def with_validators(genesis: Genesis, orgs: tuple[ValidatorOrg, ...], *,
                    voting_period_blocks: int = 100) -> Genesis:
    """Return ``genesis`` with identities (validator-org) for ``orgs`` and a validators section
    listing their validators. The document's own ``validators`` list is left as it is."""
    app_state = dict(genesis.app_state)
    identity = dict(app_state["identity"])
    identity["accounts"] = [*identity["accounts"],
                            *({"pubkey": o.org.public_key.hex(), "roles": [ROLE_VALIDATOR_ORG]}
                              for o in orgs)]
    app_state["identity"] = identity
    app_state["validators"] = {"params": {"voting_period_blocks": voting_period_blocks},
                               "validators": [o.genesis_entry() for o in orgs]}
    return replace(genesis, app_state=app_state)


@dataclass
class ValidatorsChain:
    """A started in-memory chain whose validator set is run by ``orgs``, with the InitChain
    answer (its ``validators`` are the genesis set this module reported)."""

    runner: ChainRunner
    cast: Cast
    orgs: tuple[ValidatorOrg, ...]
    init: ResponseInitChain


def validators_chain(orgs: tuple[ValidatorOrg, ...] | None = None, *,
                     voting_period_blocks: int = 100) -> ValidatorsChain:
    """Run InitChain and commit the (empty) first block: the chain is at height 1."""
    orgs = orgs if orgs is not None else make_orgs()
    cast = Cast.make()
    genesis = with_validators(make_genesis(cast), orgs,
                              voting_period_blocks=voting_period_blocks)
    runner = ChainRunner(build_app(MemoryStore()), genesis, proposer=cast.node.address)
    init = runner.app.init_chain(genesis.init_chain_request())
    runner.height = genesis.initial_height - 1
    runner.block()
    return ValidatorsChain(runner, cast, orgs, init)
