"""The contracts module through the full Application: street-lighting escrow fed by simulated
sensors (devices, anchored batches, published feed values), holds over days of block time,
refunds and penalties, forged/stale/unanchored feeds, condition errors as outcomes, amendments,
funding rules, pay-per-use and recurring service, queries with proofs, genesis round trip; the
bank's supply invariant is checked after every scenario."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citychain.app.genesis import Genesis
from citychain.app.types import RequestFinalizeBlock, TxResult
from citychain.client.verify import ProvenView, verify_reads
from citychain.core import codec
from citychain.core.context import BlockContext
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidGenesisError
from citychain.core.events import Event
from citychain.core.messages import Msg
from citychain.modules.bank import api as bank
from citychain.modules.contracts import state as contracts_state
from citychain.modules.contracts.errors import (
    AlreadyAttestedError,
    AlreadySignedError,
    AmendmentInvalidError,
    AmendmentNotFoundError,
    AmendmentOpenError,
    ConditionInvalidError,
    ContractLimitExceededError,
    ContractNotFoundError,
    ContractStatusError,
    DeadlineInvalidError,
    DenomNotFoundError,
    FundingExceededError,
    MilestoneNotFoundError,
    NotPartyError,
    PartyInvalidError,
)
from citychain.modules.contracts.events import EVENT_TYPES
from citychain.modules.contracts.genesis import init_genesis
from citychain.modules.contracts.handlers import ESCROW_OWNER, remaining_liability
from citychain.modules.contracts.messages import (
    MsgApproveAmendment,
    MsgAttestMilestone,
    MsgCancelContract,
    MsgCreateContract,
    MsgFundContract,
    MsgProposeAmendment,
    MsgSignContract,
)
from citychain.modules.contracts.module import MODULE
from citychain.modules.contracts.templates import (
    ESCROW,
    PAY_PER_USE,
    RECURRING_SERVICE,
    STREET_LIGHTING,
)
from citychain.modules.identity.messages import (
    MsgGrantRole,
    MsgReinstateIdentity,
    MsgSuspendIdentity,
)
from citychain.modules.oracle.errors import NotFeedPublisherError, SourceBatchNotFoundError
from citychain.modules.oracle.messages import (
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgPublishFeedValue,
    MsgRegisterDevice,
)
from citychain.modules.oracle.types import compute_batch_id
from citychain.node.assemble import build_app
from citychain.store import MemoryStore
from citychain.testing.chain import Cast, ChainRunner, make_genesis, memory_chain
from citychain.testing.checks import assert_error, assert_ok

DAY = 86_400
SECOND_NS = 1_000_000_000
LIGHTS = "lights.d7.working"
METER = "road.km.av"
ROUNDS = "waste.rounds.north"


class City:
    """A chain with a gateway and a street-light sensor registered and three feeds declared;
    the city pays, the contractor is paid, the inspector signs off."""

    def __init__(self, genesis: Genesis | None = None) -> None:
        self.runner, self.cast = memory_chain(Cast.make(citizens=5, devices=2,
                                                        prefix="contracts-app/"), genesis)
        self.city, self.contractor, self.inspector, self.outsider, self.spare = (
            self.cast.citizens)
        self.gateway, self.sensor = self.cast.devices
        self.operator = self.cast.operator
        self.roots = 0
        self.history: list[Event] = []  # every event of the blocks run through ``run``
        self.ok(
            self.tx(self.operator, MsgRegisterDevice(self.gateway.did, "Gateway", "d7", (), False,
                                                     0, 0)),
            self.tx(self.operator, MsgRegisterDevice(self.sensor.did, "StreetLight", "d7",
                                                     ("on:P1:0:1",), False, 0, 0)),
            *(self.tx(self.operator, MsgDeclareFeed(feed, "a feed", "C62", 0, "count", ("d7",)))
              for feed in (LIGHTS, METER, ROUNDS)))

    # ---------------------------------------------------------------- driving
    def tx(self, key: PrivateKey, *msgs: Msg) -> bytes:
        return self.runner.tx(key, *msgs)

    def run(self, *txs: bytes) -> tuple[TxResult, ...]:
        results = self.runner.run(*txs)
        self.runner.resync()
        self.history.extend(self.block_events())
        return results

    def ok(self, *txs: bytes) -> tuple[TxResult, ...]:
        results = self.run(*txs)
        for result in results:
            assert_ok(result)
        return results

    def one(self, key: PrivateKey, msg: Msg) -> TxResult:
        (result,) = self.run(self.tx(key, msg))
        return result

    @property
    def now(self) -> int:
        """The last committed block time, UNIX seconds."""
        return self.runner.time_ns // SECOND_NS

    def jump(self, seconds: int) -> None:
        """Move block time forward: the next block is ``seconds`` + 1 s after the last."""
        self.runner.time_ns += seconds * SECOND_NS

    def block_events(self) -> list[Event]:
        """The last block's events: its txs' then end-block's."""
        last = self.runner.last
        assert last is not None
        return [e for r in last.tx_results for e in r.events] + list(last.events)

    def events_of(self, kind: str) -> list[Event]:
        return [e for e in self.block_events() if e.type == kind]

    # ---------------------------------------------------------------- sensors
    def anchor_msg(self, *, first_ms: int | None = None) -> tuple[MsgAnchorBatch, str]:
        now_ms = self.runner.time_ns // 1_000_000
        self.roots += 1
        root = self.roots.to_bytes(32, "big")
        first = now_ms - 60_000 if first_ms is None else first_ms
        msg = MsgAnchorBatch(root, (self.sensor.did,), first, first + 59_000, 30, b"")
        batch = compute_batch_id(root, (self.sensor.did,), first, first + 59_000, 30, b"")
        return msg, batch.hex()

    def publish_txs(self, feed_id: str, value: int, *, age: int = 0,
                    publisher: PrivateKey | None = None,
                    batch_id: str | None = None) -> list[bytes]:
        """Anchor a batch of sensor readings and publish ``value`` for ``feed_id`` over a window
        ending ``age`` seconds before the last block."""
        end_ms = (self.runner.time_ns // 1_000_000) - age * 1000
        anchor, batch = self.anchor_msg(first_ms=end_ms - 60_000)
        txs = [self.tx(self.gateway, anchor)]
        txs.append(self.tx(publisher or self.operator, MsgPublishFeedValue(
            feed_id, end_ms - 60_000, end_ms, value, (batch_id or batch,))))
        return txs

    def publish(self, feed_id: str, value: int, **options: Any) -> tuple[TxResult, ...]:
        return self.ok(*self.publish_txs(feed_id, value, **options))

    # ---------------------------------------------------------------- contracts
    def create(self, terms: str, creator: PrivateKey | None = None) -> int:
        result = self.one(creator or self.city, MsgCreateContract(terms))
        assert_ok(result)
        created = [e for e in result.events if e.type == "contract_created"]
        return int(created[0].get("contract_id") or 0)

    def start(self, terms: str, *, signers: tuple[PrivateKey, ...], amount: int,
              bond: int = 0) -> int:
        """Create (as the city), have ``signers`` sign, fund; return the active contract's id."""
        contract_id = self.create(terms)
        txs = [self.tx(key, MsgSignContract(contract_id)) for key in signers]
        txs.append(self.tx(self.city, MsgFundContract(contract_id, amount)))
        if bond:
            txs.append(self.tx(self.contractor, MsgFundContract(contract_id, bond)))
        self.ok(*txs)
        assert self.contract(contract_id)["status"] == "active"
        return contract_id

    def contract(self, contract_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = self.runner.query("/contracts/contract",
                                                   {"contract_id": contract_id})
        return answer

    def milestone(self, contract_id: int, index: int = 0) -> dict[str, Any]:
        state: dict[str, Any] = self.contract(contract_id)["milestones"][index]["state"]
        return state

    def audit(self, contract_id: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.runner.query(
            "/contracts/audit", {"contract_id": contract_id, "limit": 500})["entries"]
        return entries

    def check_supply(self) -> None:
        assert bank.check_supply_invariant(self.runner.app.store.reader()) == []

    def lighting(self, **changes: Any) -> str:
        values: dict[str, Any] = {
            "payer": self.city.did, "payee": self.contractor.did,
            "inspector": self.inspector.did, "districts": [f"d7:{LIGHTS}:100"],
            "amount_per_district": 5_000, "deadline": self.now + 30 * DAY, "hold_days": 7,
            "check_every_blocks": 1}
        values.update(changes)
        return STREET_LIGHTING.terms(values)

    def escrow(self, **changes: Any) -> str:
        values: dict[str, Any] = {"payer": self.city.did, "payee": self.contractor.did,
                                  "amount": 1_000, "deadline": self.now + 1_000,
                                  "check_every_blocks": 1}
        values.update(changes)
        return ESCROW.terms(values)


@pytest.fixture
def city() -> City:
    return City()


def proven(runner: ChainRunner, name: str, params: dict[str, Any]) -> Any:
    """Ask ``/contracts/<name>`` with proofs, verify them against the committed app hash and
    re-run the query over the proven reads only; return the verified answer."""
    response = runner.app.query(f"/contracts/{name}", codec.encode(params), 0, True)
    assert response.ok, response.log
    reads = verify_reads(runner.app_hash, list(response.reads))
    answer = codec.decode(response.value)
    assert MODULE.queries[name](ProvenView(reads), params) == answer
    return answer


# ------------------------------------------------------------------- street lighting

def test_street_lighting_releases_after_a_week_of_working_lights_and_sign_off(
        city: City) -> None:
    contract_id = city.start(city.lighting(), signers=(city.contractor, city.inspector),
                             amount=5_000)
    city_before, contractor_before = (city.runner.balance(city.city),
                                      city.runner.balance(city.contractor))
    city.publish(LIGHTS, 120)
    record = city.milestone(contract_id)
    assert (record["outcome"], record["met_since"]) == ("unmet", 0)  # no sign-off yet

    city.ok(city.tx(city.inspector, MsgAttestMilestone(contract_id, 0, "ab" * 32)))
    evaluated = city.events_of("milestone_evaluated")
    assert [e.get("outcome") for e in evaluated] == ["met"]
    met_since = int(evaluated[0].get("met_since") or 0)
    assert met_since == city.now

    for _day in range(6):  # fresh values every day; the hold is not over yet
        city.jump(DAY)
        city.publish(LIGHTS, 110 + _day)
        assert city.milestone(contract_id)["status"] == "pending"
        assert city.milestone(contract_id)["met_since"] == met_since
    inspected = city.runner.query("/contracts/inspect", {"contract_id": contract_id})
    (entry,) = inspected["milestones"]
    assert entry["met"] and entry["hold_left"] == met_since + 7 * DAY - city.now
    assert entry["feeds"][0]["feed_id"] == LIGHTS and entry["feeds"][0]["value"] == 115
    assert entry["feeds"][0]["height"] == city.runner.height
    assert entry["attestations"][0]["role"] == "inspector"

    city.jump(DAY)
    city.publish(LIGHTS, 130)
    released = city.events_of("milestone_released")
    assert [(e.get("amount"), e.get("payee")) for e in released] == [
        ("5000", city.contractor.did)]
    assert [e.get("contract_id") for e in city.events_of("contract_completed")] == [
        str(contract_id)]
    assert city.runner.balance(city.contractor) == contractor_before + 5_000
    assert city.runner.balance(city.city) == city_before
    answer = city.contract(contract_id)
    assert (answer["status"], answer["escrow"], answer["bond"]) == ("completed", 0, 0)
    assert answer["milestones"][0]["state"]["paid"] == 5_000

    trail = [entry["type"] for entry in city.audit(contract_id)]
    assert trail[:4] == ["contract_created", "contract_signed", "contract_signed",
                         "contract_signed"]
    assert "contract_funded" in trail and "contract_activated" in trail
    assert trail[-3:] == ["milestone_evaluated", "milestone_released", "contract_completed"]
    assert "milestone_attested" in trail
    city.check_supply()


def test_missed_deadline_refunds_and_takes_the_penalty_from_the_bond(city: City) -> None:
    terms = city.lighting(deadline=city.now + 100, hold_days=0, penalty=300, bond=1_000)
    contract_id = city.start(terms, signers=(city.contractor, city.inspector), amount=5_000,
                             bond=1_000)
    assert city.contract(contract_id)["bond"] == 1_000
    city_before, contractor_before = (city.runner.balance(city.city),
                                      city.runner.balance(city.contractor))
    city.jump(200)
    city.runner.block()
    missed = city.events_of("milestone_missed")
    assert [(e.get("on_miss"), e.get("outcome")) for e in missed] == [("penalty",
                                                                        "feed_missing")]
    assert [e.get("amount") for e in city.events_of("penalty_paid")] == ["300"]
    assert [(e.get("reason"), e.get("amount")) for e in city.events_of("escrow_refunded")] == [
        ("missed", "5000"), ("completed", "700")]
    (completed,) = city.events_of("contract_completed")
    assert (completed.get("paid"), completed.get("refunded"), completed.get("penalties"),
            completed.get("bond_returned")) == ("0", "5000", "300", "700")
    assert city.runner.balance(city.city) == city_before + 5_300
    assert city.runner.balance(city.contractor) == contractor_before + 700
    assert city.milestone(contract_id)["status"] == "missed"
    city.check_supply()


def test_plain_refund_after_a_missed_deadline(city: City) -> None:
    contract_id = city.start(city.escrow(), signers=(city.contractor,), amount=1_000)
    before = city.runner.balance(city.city)
    deadline = city.contract(contract_id)["milestones"][0]["terms"]["deadline"]
    city.jump(deadline - city.now - 1)
    city.runner.block()  # at the deadline: not missed yet
    assert city.now == deadline and city.milestone(contract_id)["status"] == "pending"
    city.runner.block()
    assert city.milestone(contract_id)["status"] == "missed"
    assert city.runner.balance(city.city) == before + 1_000
    assert city.contract(contract_id)["status"] == "completed"
    city.check_supply()


def test_payments_to_a_suspended_payee_wait_for_reinstatement(city: City) -> None:
    contract_id = city.start(city.lighting(hold_days=0, inspector="", penalty=100, bond=500,
                                           districts=[f"d7:{LIGHTS}:100", f"d8:{METER}:100"],
                                           deadline=city.now + 600),
                             signers=(city.contractor,), amount=10_000, bond=500)
    city.ok(city.tx(city.cast.registrar, MsgSuspendIdentity(city.contractor.did, "case-3")))
    city.publish(LIGHTS, 500)
    record = city.milestone(contract_id)
    assert (record["status"], record["outcome"]) == ("pending", "payment_failed")
    assert record["detail"].startswith("bank/5")
    assert city.contract(contract_id)["escrow"] == 10_000
    count = len(city.audit(contract_id))
    city.runner.block()  # the same failure is not recorded again
    assert len(city.audit(contract_id)) == count
    city.jump(600)  # both districts missed (d7 was never paid), each with its penalty;
    city.runner.block()  # returning the rest of the bond waits for the payee
    assert [e.get("amount") for e in city.events_of("penalty_paid")] == ["100", "100"]
    assert city.milestone(contract_id, 0)["status"] == "missed"
    answer = city.contract(contract_id)
    assert (answer["status"], answer["escrow"], answer["bond"]) == ("active", 0, 300)
    city.check_supply()
    before = city.runner.balance(city.contractor)
    city.ok(city.tx(city.cast.registrar, MsgReinstateIdentity(city.contractor.did)))
    assert city.contract(contract_id)["status"] == "completed"
    assert city.runner.balance(city.contractor) == before + 300
    city.check_supply()


def test_due_contracts_beyond_the_block_limit_wait_for_the_next_block() -> None:
    cast = Cast.make(citizens=5, devices=2, prefix="contracts-app/")
    value = make_genesis(cast).to_json_value()
    value["app_state"]["contracts"] = {"params": {"max_due_per_block": 1}}
    city = City(Genesis.from_json_value(value))
    assert city.runner.query("/contracts/params")["max_due_per_block"] == 1
    ids = [city.create(city.escrow(condition="true")) for _ in range(3)]
    city.ok(*(city.tx(city.contractor, MsgSignContract(i)) for i in ids),
            *(city.tx(city.city, MsgFundContract(i, 1_000)) for i in ids))
    statuses = []
    for _ in range(3):  # all three due in the same block: one per block, oldest first
        statuses.append([city.contract(i)["status"] for i in ids])
        city.runner.block()
    assert statuses == [["completed", "active", "active"], ["completed", "completed", "active"],
                        ["completed", "completed", "completed"]]
    city.check_supply()


# ------------------------------------------------------------------------- bad feeds

def test_nothing_released_on_a_forged_feed(city: City) -> None:
    contract_id = city.start(city.lighting(hold_days=0, inspector=""),
                             signers=(city.contractor,), amount=5_000)
    city.ok(city.tx(city.cast.registrar, MsgGrantRole(city.outsider.did, "operator")))
    results = city.run(*city.publish_txs(LIGHTS, 500, publisher=city.outsider))
    assert_ok(results[0])  # the anchor is fine; the outsider may not publish the feed
    assert_error(results[1], NotFeedPublisherError)
    record = city.milestone(contract_id)
    assert (record["status"], record["outcome"], record["paid"]) == ("pending", "feed_missing",
                                                                     0)
    assert city.contract(contract_id)["escrow"] == 5_000
    city.check_supply()


def test_nothing_released_on_a_stale_feed(city: City) -> None:
    contract_id = city.start(city.lighting(hold_days=0, inspector="", max_feed_age=3_600),
                             signers=(city.contractor,), amount=5_000)
    city.publish(LIGHTS, 500, age=2 * 3_600)
    record = city.milestone(contract_id)
    assert (record["status"], record["outcome"]) == ("pending", "feed_stale")
    assert LIGHTS in record["detail"] and "3600" in record["detail"]
    evaluated = city.events_of("milestone_evaluated")
    assert [e.get("outcome") for e in evaluated] == ["feed_stale"]
    city.publish(LIGHTS, 500)  # a fresh value releases
    assert city.milestone(contract_id)["status"] == "released"
    city.check_supply()


def test_nothing_released_on_an_unanchored_feed(city: City) -> None:
    contract_id = city.start(city.lighting(hold_days=0, inspector=""),
                             signers=(city.contractor,), amount=5_000)
    results = city.run(*city.publish_txs(LIGHTS, 500, batch_id="ee" * 32))
    assert_error(results[1], SourceBatchNotFoundError)
    assert city.milestone(contract_id)["outcome"] == "feed_missing"
    assert city.milestone(contract_id)["paid"] == 0
    city.check_supply()


def test_a_stale_feed_does_not_block_an_agreed_arbiter_override(city: City) -> None:
    """A feed left out of a condition fails only the clauses that read it: an override the
    parties wrote into the terms still releases, and without it the feed's problem is the
    outcome."""
    condition = f'feeds["{LIGHTS}"].value >= 100 || "arbiter" in attestations'
    contract_id = city.start(city.escrow(condition=condition, arbiter=city.spare.did),
                             signers=(city.contractor, city.spare), amount=1_000)
    city.publish(LIGHTS, 500, age=2 * 86_400)  # older than the default max_feed_age (1 day)
    record = city.milestone(contract_id)
    assert (record["status"], record["outcome"]) == ("pending", "feed_stale")
    inspected = city.runner.query("/contracts/inspect", {"contract_id": contract_id})
    (milestone,) = inspected["milestones"]
    assert milestone["outcome"] == "feed_stale" and milestone["feeds"][0]["value"] == 500
    city.ok(city.tx(city.spare, MsgAttestMilestone(contract_id, 0, "")))
    record = city.milestone(contract_id)
    assert (record["status"], record["paid"]) == ("released", 1_000)
    city.check_supply()


# ---------------------------------------------------------------- condition failures

@pytest.mark.parametrize(("condition", "outcome"), [
    ("100 / milestone.paid > 0", "division_by_zero"),
    ("milestone.amount * 9223372036854775807 > 0", "overflow"),
    ('attestations["inspector"].time > 0', "missing_data"),
])
def test_condition_errors_are_recorded_outcomes(city: City, condition: str,
                                                outcome: str) -> None:
    contract_id = city.start(city.escrow(condition=condition), signers=(city.contractor,),
                             amount=1_000)
    record = city.milestone(contract_id)
    assert (record["status"], record["outcome"]) == ("pending", outcome)
    evaluated = [e for e in city.audit(contract_id) if e["type"] == "milestone_evaluated"]
    assert evaluated[-1]["attributes"]["outcome"] == outcome
    for _ in range(3):  # the chain goes on; the same outcome is not re-recorded
        city.runner.block()
    assert len([e for e in city.audit(contract_id) if e["type"] == "milestone_evaluated"]) == 1
    city.jump(1_000)
    city.runner.block()
    assert city.milestone(contract_id)["status"] == "missed"
    city.check_supply()


@pytest.mark.parametrize("condition", ["[1, 2].all(x, x > 0)",
                                       "[1].exists(x, [2].exists(y, y > x))",
                                       "[1].map(x, x * 2).size() > 0"])
def test_conditions_that_loop_are_refused_at_creation(city: City, condition: str) -> None:
    terms = city.escrow().replace('\\"payer\\" in attestations', condition.replace('"', '\\"'))
    assert condition.replace('"', '\\"') in terms
    result = city.one(city.city, MsgCreateContract(terms))
    assert_error(result, ConditionInvalidError)
    assert result.info.endswith("terms.milestones[0].condition")


# ---------------------------------------------------------------------- amendments

def three_party_escrow(city: City) -> int:
    return city.start(city.escrow(inspector=city.inspector.did),
                      signers=(city.contractor, city.inspector), amount=1_000)


def amendment(city: City, contract_id: int, *, deadline: int, amount: int = 1_000,
              expires: int | None = None) -> MsgProposeAmendment:
    terms = ('{"name":"release","condition":"\\"payer\\" in attestations",'
             f'"amount":{amount},"deadline":{deadline}}}')
    return MsgProposeAmendment(contract_id, 0, terms,
                               expires if expires is not None else city.now + 300, "delay")


def test_an_unsigned_amendment_expires_and_the_original_deadline_applies(city: City) -> None:
    contract_id = three_party_escrow(city)
    deadline = city.contract(contract_id)["milestones"][0]["terms"]["deadline"]
    city.ok(city.tx(city.contractor, amendment(city, contract_id, deadline=deadline + 5_000)))
    city.ok(city.tx(city.city, MsgApproveAmendment(contract_id, 1)))
    assert city.contract(contract_id)["amendment"]["approvals"] == ["payer", "payee"]
    city.jump(300)
    city.runner.block()
    (expired,) = city.events_of("amendment_expired")
    assert (expired.get("number"), expired.get("missing")) == ("1", "inspector")
    assert city.contract(contract_id)["amendment"]["status"] == "expired"
    result = city.one(city.inspector, MsgApproveAmendment(contract_id, 1))
    assert_error(result, AmendmentNotFoundError)
    before = city.runner.balance(city.city)
    city.jump(1_000)
    city.runner.block()
    assert city.milestone(contract_id)["status"] == "missed"
    assert city.runner.balance(city.city) == before + 1_000
    city.check_supply()


def test_a_fully_approved_amendment_extends_the_deadline(city: City) -> None:
    contract_id = three_party_escrow(city)
    deadline = city.contract(contract_id)["milestones"][0]["terms"]["deadline"]
    city.ok(city.tx(city.contractor, amendment(city, contract_id, deadline=deadline + 5_000)))
    assert_error(city.one(city.contractor, MsgApproveAmendment(contract_id, 1)),
                 AlreadySignedError)
    city.ok(city.tx(city.city, MsgApproveAmendment(contract_id, 1)),
            city.tx(city.inspector, MsgApproveAmendment(contract_id, 1)))
    assert [e.get("number") for e in city.events_of("amendment_applied")] == ["1"]
    answer = city.contract(contract_id)
    assert answer["amendment"]["status"] == "applied"
    assert answer["milestones"][0]["terms"]["deadline"] == deadline + 5_000
    city.jump(2_000)  # past the original deadline: nothing happens
    city.runner.block()
    assert city.milestone(contract_id)["status"] == "pending"
    before = city.runner.balance(city.contractor)
    city.ok(city.tx(city.city, MsgAttestMilestone(contract_id, 0, "")))
    assert city.milestone(contract_id)["status"] == "released"
    assert city.runner.balance(city.contractor) == before + 1_000
    city.check_supply()


def test_an_amendment_lowering_the_amount_returns_the_excess(city: City) -> None:
    contract_id = three_party_escrow(city)
    deadline = city.contract(contract_id)["milestones"][0]["terms"]["deadline"]
    before = city.runner.balance(city.city)
    city.ok(city.tx(city.city, amendment(city, contract_id, deadline=deadline, amount=600)),
            city.tx(city.contractor, MsgApproveAmendment(contract_id, 1)),
            city.tx(city.inspector, MsgApproveAmendment(contract_id, 1)))
    assert city.contract(contract_id)["escrow"] == 600
    assert city.runner.balance(city.city) == before + 400
    city.check_supply()


def test_invalid_amendment_needing_more_than_the_escrow(city: City) -> None:
    contract_id = three_party_escrow(city)
    deadline = city.contract(contract_id)["milestones"][0]["terms"]["deadline"]
    result = city.one(city.contractor, amendment(city, contract_id, deadline=deadline,
                                                 amount=1_001))
    assert_error(result, AmendmentInvalidError)
    assert city.contract(contract_id)["amendment"] is None


def test_invalid_amendment_reusing_another_milestones_name(city: City) -> None:
    contract_id = city.start(city.lighting(inspector="", districts=[
        f"d7:{LIGHTS}:100", f"d8:{METER}:100"]), signers=(city.contractor,), amount=10_000)
    changed = {**city.contract(contract_id)["milestones"][1]["terms"], "name": "district-d7"}
    del changed["feed_ids"]
    result = city.one(city.contractor, MsgProposeAmendment(contract_id, 1, json.dumps(changed),
                                                           city.now + 100, ""))
    assert_error(result, AmendmentInvalidError)
    assert result.info.endswith("terms.name")
    # So the exported state always imports again: its terms parse like new ones.
    exported = city.runner.app.export_genesis()
    fresh = build_app(MemoryStore())
    request = replace(city.runner.genesis.init_chain_request(), app_state=exported)
    assert fresh.init_chain(request).app_hash == city.runner.app_hash


def test_invalid_amendment_overflowing_the_total(city: City) -> None:
    big = 2**61
    contract_id = city.create(city.lighting(inspector="", amount_per_district=big, districts=[
        f"d7:{LIGHTS}:100", f"d8:{METER}:100"]))
    # Each milestone alone may pay up to 2**63 - 1; together they may not.
    changed = {**city.contract(contract_id)["milestones"][1]["terms"], "amount": 2**63 - 1}
    del changed["feed_ids"]
    result = city.one(city.contractor, MsgProposeAmendment(contract_id, 1, json.dumps(changed),
                                                           city.now + 100, ""))
    assert_error(result, AmendmentInvalidError)
    assert result.info.endswith("terms.amount")


def test_invalid_amendment_by_a_non_party(city: City) -> None:
    contract_id = three_party_escrow(city)
    deadline = city.contract(contract_id)["milestones"][0]["terms"]["deadline"]
    assert_error(city.one(city.outsider, amendment(city, contract_id, deadline=deadline)),
                 NotPartyError)


# -------------------------------------------------------------- sign, fund, cancel

def test_activation_only_when_every_party_signed_and_the_escrow_is_funded(city: City) -> None:
    contract_id = city.create(city.escrow(inspector=city.inspector.did))
    assert city.contract(contract_id)["signed"] == ["payer"]
    assert_error(city.one(city.outsider, MsgSignContract(contract_id)), NotPartyError)
    assert_error(city.one(city.city, MsgSignContract(contract_id)), AlreadySignedError)
    assert_error(city.one(city.inspector, MsgFundContract(contract_id, 10)), NotPartyError)
    city.ok(city.tx(city.city, MsgFundContract(contract_id, 1_000)))
    assert_error(city.one(city.city, MsgFundContract(contract_id, 1)), FundingExceededError)
    city.ok(city.tx(city.contractor, MsgSignContract(contract_id)))
    assert city.contract(contract_id)["status"] == "proposed"
    city.ok(city.tx(city.inspector, MsgSignContract(contract_id)))
    assert city.events_of("contract_activated") != []
    assert city.contract(contract_id)["status"] == "active"
    assert_error(city.one(city.city, MsgCancelContract(contract_id, "too late")),
                 ContractStatusError)
    city.check_supply()


def test_invalid_over_funding(city: City) -> None:
    contract_id = city.create(city.escrow())
    result = city.one(city.city, MsgFundContract(contract_id, 1_001))
    assert_error(result, FundingExceededError)
    assert city.contract(contract_id)["escrow"] == 0


def test_cancel_refunds_every_deposit(city: City) -> None:
    contract_id = city.create(city.lighting(penalty=10, bond=50))
    city_before, contractor_before = (city.runner.balance(city.city),
                                      city.runner.balance(city.contractor))
    city.ok(city.tx(city.city, MsgFundContract(contract_id, 3_000)),
            city.tx(city.contractor, MsgFundContract(contract_id, 50)))
    assert city.runner.balance(city.city) == city_before - 3_000
    assert_error(city.one(city.outsider, MsgCancelContract(contract_id, "")), NotPartyError)
    city.ok(city.tx(city.contractor, MsgCancelContract(contract_id, "changed plans")))
    assert [(e.get("reason"), e.get("amount")) for e in city.events_of("escrow_refunded")] == [
        ("cancelled", "3000"), ("cancelled", "50")]
    assert city.runner.balance(city.city) == city_before
    assert city.runner.balance(city.contractor) == contractor_before
    assert city.contract(contract_id)["status"] == "cancelled"
    assert_error(city.one(city.city, MsgFundContract(contract_id, 1)), ContractStatusError)
    city.check_supply()


def test_invalid_create_non_party_unknown_identity_denom_and_past_deadline(city: City) -> None:
    assert_error(city.one(city.outsider, MsgCreateContract(city.escrow())), NotPartyError)
    stranger = city.escrow(payee=city.cast.newcomer.did)
    result = city.one(city.city, MsgCreateContract(stranger))
    assert_error(result, PartyInvalidError)
    assert result.info.endswith("terms.parties[1].did")
    result = city.one(city.city, MsgCreateContract(city.escrow(denom="ueuro")))
    assert_error(result, DenomNotFoundError)
    result = city.one(city.city, MsgCreateContract(city.escrow(deadline=city.now)))
    assert_error(result, DeadlineInvalidError)
    assert result.info.endswith("terms.milestones[0].deadline")
    assert city.runner.query("/contracts/by_party", {"party": city.city.did})["contracts"] == []


def test_invalid_attestations(city: City) -> None:
    assert_error(city.one(city.city, MsgAttestMilestone(7, 0, "")), ContractNotFoundError)
    contract_id = city.create(city.escrow(inspector=city.inspector.did))
    assert_error(city.one(city.city, MsgAttestMilestone(contract_id, 0, "")),
                 ContractStatusError)  # not active yet
    city.ok(city.tx(city.contractor, MsgSignContract(contract_id)),
            city.tx(city.inspector, MsgSignContract(contract_id)),
            city.tx(city.city, MsgFundContract(contract_id, 1_000)))
    assert_error(city.one(city.inspector, MsgAttestMilestone(contract_id, 1, "")),
                 MilestoneNotFoundError)
    assert_error(city.one(city.outsider, MsgAttestMilestone(contract_id, 0, "")),
                 NotPartyError)
    city.ok(city.tx(city.inspector, MsgAttestMilestone(contract_id, 0, "cd" * 32)))
    assert_error(city.one(city.inspector, MsgAttestMilestone(contract_id, 0, "")),
                 AlreadyAttestedError)
    city.ok(city.tx(city.city, MsgAttestMilestone(contract_id, 0, "")))  # releases
    assert city.milestone(contract_id)["status"] == "released"
    assert_error(city.one(city.contractor, MsgAttestMilestone(contract_id, 0, "")),
                 ContractStatusError)  # completed


def test_invalid_second_amendment_while_one_is_open(city: City) -> None:
    contract_id = three_party_escrow(city)
    deadline = city.contract(contract_id)["milestones"][0]["terms"]["deadline"]
    city.ok(city.tx(city.contractor, amendment(city, contract_id, deadline=deadline + 5)))
    assert_error(city.one(city.city, amendment(city, contract_id, deadline=deadline + 9)),
                 AmendmentOpenError)
    assert_error(city.one(city.city, MsgApproveAmendment(contract_id, 2)),
                 AmendmentNotFoundError)
    city.jump(300)  # once the first expired, a new one may be proposed
    city.ok(city.tx(city.city, amendment(city, contract_id, deadline=deadline + 9)))
    assert city.contract(contract_id)["amendment"]["number"] == 2
    result = city.one(city.inspector, amendment(city, contract_id, deadline=deadline,
                                                expires=city.now))
    assert_error(result, DeadlineInvalidError)
    assert result.info.endswith("expires")


def test_invalid_contract_beyond_the_params_limits() -> None:
    cast = Cast.make(citizens=5, devices=2, prefix="contracts-app/")
    value = make_genesis(cast).to_json_value()
    value["app_state"]["contracts"] = {"params": {"max_milestones": 1, "max_periods": 2}}
    city = City(Genesis.from_json_value(value))
    two = city.lighting(districts=[f"d7:{LIGHTS}:1", f"d8:{LIGHTS}:2"])
    assert_error(city.one(city.city, MsgCreateContract(two)), ContractLimitExceededError)
    three = RECURRING_SERVICE.terms({
        "payer": city.city.did, "payee": city.contractor.did, "rounds_feed": ROUNDS,
        "amount_per_period": 7, "periods": 3, "first_period_end": city.now + 100})
    result = city.one(city.city, MsgCreateContract(three))
    assert_error(result, ContractLimitExceededError)
    assert result.info.endswith("terms.milestones[0].periods")


# ------------------------------------------------------------ pay per use, recurring

def test_pay_per_use_clamps_to_the_cap_and_refunds_the_rest(city: City) -> None:
    terms = PAY_PER_USE.terms({"payer": city.city.did, "payee": city.contractor.did,
                               "meter_feed": METER, "unit_price": 3, "cap_per_period": 1_000,
                               "period": 100, "periods": 3, "first_period_end": city.now + 100,
                               "check_every_blocks": 1})
    contract_id = city.start(terms, signers=(city.contractor,), amount=3_000)
    city_before, payee_before = (city.runner.balance(city.city),
                                 city.runner.balance(city.contractor))
    city.jump(50)
    city.publish(METER, 200)  # 600 this period
    city.jump(50)
    city.runner.block()
    assert [e.get("amount") for e in city.events_of("milestone_released")] == ["600"]
    assert [e.get("amount") for e in city.events_of("escrow_refunded")] == ["400"]
    city.jump(50)
    city.publish(METER, 500)  # 1500, clamped to 1000
    city.jump(50)
    city.runner.block()
    assert [e.get("amount") for e in city.events_of("milestone_released")] == ["1000"]
    city.jump(100)  # no meter value in the third period: missed
    city.runner.block()
    assert [e.get("outcome") for e in city.events_of("milestone_missed")] == ["unmet"]
    record = city.milestone(contract_id)
    assert (record["status"], record["paid"], record["refunded"]) == ("settled", 1_600, 1_400)
    assert city.runner.balance(city.contractor) == payee_before + 1_600
    assert city.runner.balance(city.city) == city_before + 1_400
    assert city.contract(contract_id)["status"] == "completed"
    city.check_supply()


def test_pay_per_use_bills_a_reading_only_in_its_own_period(city: City) -> None:
    """Periods judged late (a stalled chain, a long check interval) must not all be billed
    with one later reading: a value counts only for the period its window ends in."""
    terms = PAY_PER_USE.terms({"payer": city.city.did, "payee": city.contractor.did,
                               "meter_feed": METER, "unit_price": 1, "cap_per_period": 1_000,
                               "period": 100, "periods": 3, "first_period_end": city.now + 100,
                               "check_every_blocks": 1})
    contract_id = city.start(terms, signers=(city.contractor,), amount=3_000)
    payee_before = city.runner.balance(city.contractor)
    city.jump(250)  # into the third period with no reading at all
    city.publish(METER, 400)  # the third period's reading; periods 0 and 1 are judged now
    city.runner.block()
    city.jump(100)
    city.runner.block()
    record = city.milestone(contract_id)
    assert (record["status"], record["paid"], record["refunded"]) == ("settled", 400, 2_600)
    assert city.runner.balance(city.contractor) == payee_before + 400
    city.check_supply()


def test_recurring_service_pays_when_enough_rounds(city: City) -> None:
    terms = RECURRING_SERVICE.terms({
        "payer": city.city.did, "payee": city.contractor.did, "rounds_feed": ROUNDS,
        "min_rounds": 3, "amount_per_period": 700, "period": 100, "periods": 2,
        "first_period_end": city.now + 100, "check_every_blocks": 1})
    contract_id = city.start(terms, signers=(city.contractor,), amount=1_400)
    payee_before = city.runner.balance(city.contractor)
    city.jump(50)
    city.publish(ROUNDS, 4)
    city.jump(50)
    city.runner.block()
    assert [e.get("amount") for e in city.events_of("milestone_released")] == ["700"]
    city.jump(50)
    city.publish(ROUNDS, 2)
    city.jump(50)
    city.runner.block()
    assert [e.get("period") for e in city.events_of("milestone_missed")] == ["1"]
    assert city.runner.balance(city.contractor) == payee_before + 700
    assert city.milestone(contract_id)["periods_settled"] == 2
    city.check_supply()


# --------------------------------------------------------------------------- queries

def test_queries_contract_proven_audit_pages_and_by_party(city: City) -> None:
    first = city.start(city.escrow(), signers=(city.contractor,), amount=1_000)
    second = city.create(city.lighting(inspector=""))
    answer = proven(city.runner, "contract", {"contract_id": first})
    assert answer["status"] == "active" and answer["escrow"] == 1_000
    assert answer["terms"]["parties"][0] == {"role": "payer", "did": city.city.did}
    assert proven(city.runner, "contract", {"contract_id": 99}) is None
    assert proven(city.runner, "params", {})["max_milestones"] == 32

    trail = city.audit(first)
    assert [entry["seq"] for entry in trail] == list(range(len(trail)))
    page = city.runner.query("/contracts/audit", {"contract_id": first, "limit": 2})
    assert [e["seq"] for e in page["entries"]] == [0, 1] and page["next_after"] == 1
    rest = city.runner.query("/contracts/audit",
                             {"contract_id": first, "after": 1, "limit": 500})
    assert page["entries"] + rest["entries"] == trail and rest["next_after"] is None
    last = city.runner.query("/contracts/audit", {"contract_id": first, "after": 2**32 - 1})
    assert last["entries"] == []  # the largest 'after' allowed: nothing follows, no crash

    mine = city.runner.query("/contracts/by_party", {"party": city.contractor.did})
    assert [(c["contract_id"], c["status"], c["roles"]) for c in mine["contracts"]] == [
        (first, "active", ["payee"]), (second, "proposed", ["payee"])]
    paged = city.runner.query("/contracts/by_party", {"party": city.city.address, "limit": 1})
    assert [c["contract_id"] for c in paged["contracts"]] == [first]
    assert paged["next_start_after"] == first
    assert city.runner.query("/contracts/by_party",
                             {"party": city.outsider.did})["contracts"] == []

    inspected = city.runner.query("/contracts/inspect", {"contract_id": first})
    (entry,) = inspected["milestones"]
    assert (entry["outcome"], entry["met"], entry["why"]) == ("unmet", False,
                                                             "the condition is false")
    assert city.runner.query("/contracts/inspect", {"contract_id": 99}) is None


# ------------------------------------------------------------------ genesis, supply

def test_genesis_export_then_init_gives_the_same_state(city: City) -> None:
    three_party_escrow(city)
    released = city.start(city.escrow(), signers=(city.contractor,), amount=1_000)
    city.ok(city.tx(city.city, MsgAttestMilestone(released, 0, "")))
    waiting = city.start(city.lighting(hold_days=1, inspector="", penalty=5, bond=10),
                         signers=(city.contractor,), amount=5_000, bond=10)
    city.publish(LIGHTS, 150)
    assert city.milestone(waiting)["met_since"] > 0
    city.create(city.escrow())
    deadline = city.contract(1)["milestones"][0]["terms"]["deadline"]
    city.ok(city.tx(city.contractor, amendment(city, 1, deadline=deadline + 10)))

    for contract_id in (1, 2, 3, 4):  # open amendment, released, holding, proposed: proven
        assert proven(city.runner, "contract", {"contract_id": contract_id}) == city.contract(
            contract_id)
    assert proven(city.runner, "contract", {"contract_id": 1})["amendment"]["number"] == 1
    exported = city.runner.app.export_genesis()
    assert [c["contract_id"] for c in exported["contracts"]["contracts"]] == [1, 2, 3, 4]
    request = replace(city.runner.genesis.init_chain_request(), app_state=exported)
    fresh = ChainRunner(build_app(MemoryStore()), city.runner.genesis)
    response = fresh.app.init_chain(request)
    assert response.app_hash == city.runner.app_hash
    fresh.app.finalize_block(RequestFinalizeBlock((), 1, city.runner.time_ns, ""))
    fresh.app.commit()
    assert fresh.app.export_genesis()["contracts"] == exported["contracts"]
    city.check_supply()


# ------------------------------------------------------------------------ invariants

ACTIONS = st.one_of(
    st.tuples(st.just("fund"), st.integers(0, 2), st.sampled_from([0, 0, 1, 777])),
    st.tuples(st.just("bond"), st.integers(0, 2), st.integers(1, 400)),
    st.tuples(st.just("sign"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("attest"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("publish"), st.sampled_from([LIGHTS, METER]), st.integers(0, 400),
              st.sampled_from([0, 0, 0, 7_200])),
    st.tuples(st.just("jump"), st.sampled_from([10, 600, 3_600, DAY, 3 * DAY])),
    st.tuples(st.just("amend"), st.integers(0, 2), st.integers(-500, 500)),
    st.tuples(st.just("approve"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("cancel"), st.integers(0, 8), st.integers(0, 2)),  # mostly no-ops
)


def check_escrow_covers_liability(city: City, contract_ids: list[int]) -> None:
    view = city.runner.app.store.reader()
    for contract_id in contract_ids:
        record = contracts_state.get_state(view, contract_id)
        terms = contracts_state.get_terms(view, contract_id)
        assert record is not None and terms is not None
        held = bank.get_escrow_balance(view, ESCROW_OWNER, f"c{contract_id}", terms.denom)
        if record.status == "active":
            assert held == remaining_liability(view, contract_id, terms), contract_id
        elif record.status in ("completed", "cancelled"):
            bond = bank.get_escrow_balance(view, ESCROW_OWNER, f"c{contract_id}.bond",
                                           terms.denom)
            assert (held, bond) == (0, 0), contract_id


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(ACTIONS, min_size=1, max_size=25))
def test_random_activity_conserves_supply_and_escrow_matches_liability(
        started: bool, actions: list[tuple[Any, ...]]) -> None:
    """...the exported genesis imports again to the same app hash, and each contract's audit
    trail holds exactly the contract events the blocks emitted."""
    city = City()
    parties = (city.city, city.contractor, city.inspector)
    contract_ids = [
        city.create(city.lighting(hold_days=1, penalty=200, bond=300, deadline=city.now + 4 * DAY,
                                  max_feed_age=2 * 3_600)),
        city.create(PAY_PER_USE.terms({
            "payer": city.city.did, "payee": city.contractor.did, "meter_feed": METER,
            "unit_price": 7, "cap_per_period": 2_000, "period": DAY, "periods": 3,
            "first_period_end": city.now + DAY, "check_every_blocks": 1})),
        city.create(city.escrow(inspector=city.inspector.did, amount=1_500,
                                deadline=city.now + 2 * DAY)),
    ]
    if started:  # every party signs and funds at once: the contracts start
        txs = [city.tx(key, MsgSignContract(contract_id)) for contract_id in contract_ids
               for key in parties[1:]]
        txs += [city.tx(city.city, MsgFundContract(contract_id, need))
                for contract_id, need in zip(contract_ids, (5_000, 6_000, 1_500), strict=True)]
        txs.append(city.tx(city.contractor, MsgFundContract(contract_ids[0], 300)))
        for result in city.run(*txs):
            assert result.ok or result.codespace == "contracts"  # the escrow has no inspector
    for action in actions:
        kind = action[0]
        txs: list[bytes] = []
        if kind == "fund":  # 0: what is still needed, 1 or 777: that much
            contract_id = contract_ids[action[1]]
            answer = city.contract(contract_id)
            amount = action[2] or max(1, answer["payer_total"] - answer["escrow"])
            txs.append(city.tx(city.city, MsgFundContract(contract_id, amount)))
        elif kind == "bond":
            txs.append(city.tx(city.contractor, MsgFundContract(contract_ids[action[1]],
                                                                action[2])))
        elif kind == "sign":
            txs.append(city.tx(parties[action[2]], MsgSignContract(contract_ids[action[1]])))
        elif kind == "attest":
            txs.append(city.tx(parties[action[2]],
                               MsgAttestMilestone(contract_ids[action[1]], 0, "")))
        elif kind == "publish":
            txs.extend(city.publish_txs(action[1], action[2], age=action[3]))
        elif kind == "jump":
            city.jump(action[1])
        elif kind == "amend":
            contract_id = contract_ids[action[1]]
            current = city.contract(contract_id)["milestones"][0]["terms"]
            changed = {**current, "amount": max(1, current["amount"] + action[2]),
                       "deadline": max(current["deadline"], city.now + 10) + 600}
            del changed["feed_ids"]
            txs.append(city.tx(city.contractor, MsgProposeAmendment(
                contract_id, 0, json.dumps(changed), city.now + 2 * 3_600, "")))
        elif kind == "approve":
            contract_id = contract_ids[action[1]]
            number = city.contract(contract_id)["amendments"]
            approving = parties if action[2] == 0 else parties[action[2]:action[2] + 1]
            txs.extend(city.tx(key, MsgApproveAmendment(contract_id, max(number, 1)))
                       for key in approving)
        elif action[1] < len(contract_ids):
            txs.append(city.tx(parties[action[2]], MsgCancelContract(contract_ids[action[1]],
                                                                      "")))
        city.run(*txs)
        city.check_supply()
        check_escrow_covers_liability(city, contract_ids)
    request = replace(city.runner.genesis.init_chain_request(),
                      app_state=city.runner.app.export_genesis())
    assert build_app(MemoryStore()).init_chain(request).app_hash == city.runner.app_hash
    for _ in range(3):  # let time run out: everything settles, still sound
        city.jump(3 * DAY)
        city.run()
        city.check_supply()
        check_escrow_covers_liability(city, contract_ids)
    for contract_id in contract_ids:  # the audit trail is exactly the contract's events
        emitted = [(e.type, dict(e.attributes)) for e in city.history
                   if e.type in EVENT_TYPES and e.get("contract_id") == str(contract_id)]
        assert [(entry["type"], entry["attributes"]) for entry in city.audit(contract_id)] == (
            emitted)


def exported_section(city: City) -> dict[str, Any]:
    """A contracts section with an attestation, an open amendment and audit entries."""
    contract_id = three_party_escrow(city)
    city.ok(city.tx(city.inspector, MsgAttestMilestone(contract_id, 0, "")))
    deadline = city.contract(contract_id)["milestones"][0]["terms"]["deadline"]
    city.ok(city.tx(city.contractor, amendment(city, contract_id, deadline=deadline + 10)))
    section: dict[str, Any] = city.runner.app.export_genesis()["contracts"]
    return section


def init_contracts(section: Any) -> None:
    init_genesis(MemoryStore().begin(), BlockContext("contracts-genesis", 0, 0), section)


@pytest.mark.parametrize(("where", "value", "field"), [
    (("state", "next_check_height"), -1, "state.next_check_height"),
    (("state", "next_check_height"), "x", "state.next_check_height"),
    (("state", "status"), "paused", "state.status"),
    (("state", "creator"), "did:city:nobody", "state.creator"),
    (("state", "signed"), ["mayor"], "state.signed"),
    (("milestones", 0, "status"), "paid", "milestones[0].status"),
    (("milestones", 0, "paid"), "5", "milestones[0].paid"),
    (("amendments", 0, "number"), None, "amendments[0].number"),
    (("amendments", 0, "number"), 2, "amendments[0].number"),
    (("amendments", 0, "proposer"), None, "amendments[0].proposer"),
    (("amendments", 0, "milestone"), 3, "amendments[0].milestone"),
    (("amendments", 0, "status"), "done", "amendments[0].status"),
    (("amendments", 0, "terms", "amount"), "1000", "amendments[0].terms.amount"),
    (("audit", 0, "height"), -5, "audit[0].height"),
])
def test_invalid_genesis_records_are_refused_naming_the_field(
        city: City, where: tuple[Any, ...], value: Any, field: str) -> None:
    section = exported_section(city)
    init_contracts(copy.deepcopy(section))  # the export itself loads
    target = section["contracts"][0]
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(InvalidGenesisError) as caught:
        init_contracts(section)
    assert caught.value.field == f"app_state.contracts.contracts[0].{field}"


def test_junk_anywhere_in_the_genesis_section_is_an_invalid_genesis_error(city: City) -> None:
    """Malformed values never escape as TypeError/ValueError (which would stop the node)."""
    section = exported_section(city)

    def paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        yield path
        items = (value.items() if isinstance(value, dict)
                 else enumerate(value) if isinstance(value, list) else ())
        for key, item in items:
            yield from paths(item, (*path, key))

    for path in list(paths(section))[1:]:
        for junk in (None, "x", -1, 2**64, [], {}, True, [[1]]):
            changed = copy.deepcopy(section)
            target = changed
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = junk
            with contextlib.suppress(InvalidGenesisError):
                init_contracts(changed)
