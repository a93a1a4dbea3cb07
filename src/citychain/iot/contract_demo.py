"""The demo's rule contract: the city pays its street-lighting contractor once the demo's
street-light feed shows working lights for a while and the inspector signed off.

It is the ``ppp_street_lighting`` template over the demo's ``lights-centre`` feed: the treasury
(payer) escrows the amount, the operator (the contractor, who also runs the sensors) and the
registrar (the inspector) sign, the inspector attests once the feed has a value, and the chain
releases the money by itself once the condition has held for ``hold`` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from citychain.core.crypto import PrivateKey
from citychain.iot.feeds import FeedNode
from citychain.modules.bank.messages import MsgMint
from citychain.modules.contracts.messages import (
    MsgAttestMilestone,
    MsgCreateContract,
    MsgFundContract,
    MsgSignContract,
)
from citychain.modules.contracts.templates import STREET_LIGHTING


@dataclass
class ContractStats:
    """What the live view shows of the contract."""

    contract_id: int = 0
    status: str = "not started"
    outcome: str = ""
    why: str = ""
    released: int = 0
    audit_entries: int = 0


class StreetLightingContract:
    """Creates, signs, funds and attests the demo contract; ``refresh`` reads its state."""

    def __init__(self, rpc_url: str, *, payer: PrivateKey, payee: PrivateKey,
                 inspector: PrivateKey, denom: str, feed_id: str, amount: int,
                 min_working: int = 1, hold_seconds: int = 20) -> None:
        self.rpc_url = rpc_url
        self.keys = {"payer": payer, "payee": payee, "inspector": inspector}
        self.denom = denom
        self.feed_id = feed_id
        self.amount = amount
        self.min_working = min_working
        self.hold_seconds = hold_seconds
        self.stats = ContractStats()
        self._attested = False
        self._nodes = {role: FeedNode(rpc_url, key) for role, key in self.keys.items()}

    def start(self) -> int:
        """Mint the amount to the payer, create the contract from the template, have every
        party sign and the payer fund it; return its id.

        Raises:
            FeedPublishError: the chain refused a step. RpcError: the node is unreachable.
        """
        payer, payee, inspector = (self.keys[role] for role in ("payer", "payee", "inspector"))
        self._nodes["payer"].send(MsgMint(payer.did, self.denom, self.amount))
        terms = STREET_LIGHTING.terms({
            "payer": payer.did, "payee": payee.did, "inspector": inspector.did,
            "denom": self.denom, "title": "Demo: street lighting, centre",
            "districts": [f"centre:{self.feed_id}:{self.min_working}"],
            "amount_per_district": self.amount, "deadline": int(time.time()) + 3_600,
            "hold_seconds": self.hold_seconds, "check_every_blocks": 1})
        self._nodes["payer"].send(MsgCreateContract(terms))
        found = self._nodes["payer"].query("/contracts/by_party", {"party": payer.did})
        self.stats.contract_id = int(found["contracts"][-1]["contract_id"])
        self._nodes["payee"].send(MsgSignContract(self.stats.contract_id))
        self._nodes["inspector"].send(MsgSignContract(self.stats.contract_id))
        self._nodes["payer"].send(MsgFundContract(self.stats.contract_id, self.amount))
        self.refresh()
        return self.stats.contract_id

    def refresh(self) -> None:
        """Read the contract; once the feed has a value, the inspector signs off (once)."""
        if not self.stats.contract_id:
            return
        if not self._attested and self._feed_has_value():
            self._nodes["inspector"].send(MsgAttestMilestone(self.stats.contract_id, 0, ""))
            self._attested = True
        contract: dict[str, Any] = self._nodes["payer"].query(
            "/contracts/contract", {"contract_id": self.stats.contract_id})
        milestone = contract["milestones"][0]["state"]
        self.stats.status = f"{contract['status']}, milestone {milestone['status']}"
        self.stats.outcome = milestone["outcome"]
        self.stats.why = milestone["detail"]
        self.stats.released = int(milestone["paid"])
        self.stats.audit_entries = int(contract["audit_count"])

    def line(self) -> str:
        s = self.stats
        if s.released:
            return (f"contract {s.contract_id}: {s.status}; {s.released:,} {self.denom} released "
                    f"to the contractor; audit trail {s.audit_entries} entries")
        return (f"contract {s.contract_id}: {s.status}; {s.outcome or 'not judged yet'}"
                f"{' (' + s.why + ')' if s.why else ''}")

    def close(self) -> None:
        for node in self._nodes.values():
            node.close()

    def _feed_has_value(self) -> bool:
        value = self._nodes["inspector"].query("/oracle/feed_value", {"feed_id": self.feed_id})
        return value is not None
