"""Judging one milestone at one block: gather its inputs, run its condition, say why.

The same function serves end-block (which acts on the result) and the ``inspect`` query (which
only shows it), so what an auditor sees is what the chain does. Inputs are read through the
oracle facade (the feeds' latest values) and this module's state (attestations); a feed that has
no value, cites no anchored batch, or is older than the milestone's ``max_feed_age`` is never
shown to the condition: unless the condition holds without it, the outcome names the feed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core.state import ReadView
from citychain.modules.contracts import state
from citychain.modules.contracts.conditions import evaluate
from citychain.modules.contracts.types import (
    MAX_DETAIL,
    OUTCOME_FEED_MISSING,
    OUTCOME_FEED_STALE,
    OUTCOME_FEED_UNANCHORED,
    OUTCOME_MET,
    OUTCOME_UNMET,
    Attestation,
    ContractState,
    MilestoneState,
    MilestoneTerms,
)
from citychain.modules.oracle import api as oracle
from citychain.modules.oracle.api import FeedValue

FeedCache = dict[str, "FeedValue | None"]


@dataclass(frozen=True, slots=True)
class FeedUse:
    """A feed value a condition read: times in UNIX seconds, ``age`` against block time."""

    feed_id: str
    value: int
    scale: int
    window_start: int
    window_end: int
    height: int
    age: int
    sources: int

    def to_value(self) -> dict[str, Any]:
        return {"feed_id": self.feed_id, "value": self.value, "scale": self.scale,
                "window_start": self.window_start, "window_end": self.window_end,
                "height": self.height, "age": self.age, "sources": self.sources}


@dataclass(frozen=True, slots=True)
class MilestoneCheck:
    """The result of judging a milestone: ``outcome`` is ``met``, ``unmet``, a feed problem or a
    condition engine error code; ``payout`` is what a release would pay now."""

    period: int
    outcome: str
    detail: str
    payout: int
    feeds: tuple[FeedUse, ...]
    attestations: tuple[Attestation, ...]

    @property
    def met(self) -> bool:
        return self.outcome == OUTCOME_MET


def check_milestone(view: ReadView, contract: ContractState, index: int,
                    milestone: MilestoneTerms, record: MilestoneState, height: int,
                    time: int, feed_cache: FeedCache | None = None) -> MilestoneCheck:
    """Judge milestone ``index`` of ``contract`` at block ``height`` and block time ``time``
    (UNIX seconds). Never raises for bad data: every problem is an outcome.

    A feed that has no value, cites no anchored batch or is stale is left out of ``feeds``: a
    condition that still holds without it (``... || "arbiter" in attestations``) is met; one that
    does not takes the first such feed's problem as its outcome. ``feed_cache`` (feed id ->
    latest value) lets end-block read each feed once per block; contracts never write feeds.
    """
    period = record.periods_settled
    attestations = state.get_attestations(view, contract.contract_id, index, period)
    seen: list[FeedUse] = []
    usable: list[FeedUse] = []
    problem: tuple[str, str] | None = None
    for feed_id in milestone.feed_ids:
        value = _feed_value(view, feed_id, feed_cache)
        if value is None:
            problem = problem or (OUTCOME_FEED_MISSING, f"feed {feed_id} has no value")
            continue
        window_end = value.window_end_ms // 1000
        use = FeedUse(feed_id, value.value, value.scale, value.window_start_ms // 1000,
                      window_end, value.height, time - window_end, len(value.source_batch_ids))
        seen.append(use)
        if use.sources == 0:
            problem = problem or (OUTCOME_FEED_UNANCHORED,
                                  f"feed {feed_id}'s value cites no anchored batch")
        elif use.age > milestone.max_feed_age:
            problem = problem or (OUTCOME_FEED_STALE, f"feed {feed_id}'s value is {use.age} s "
                                  f"old; at most {milestone.max_feed_age}")
        else:
            usable.append(use)
    feeds = tuple(seen)
    activation = _activation(contract, index, milestone, record, period, height, time, usable,
                             attestations)
    result = evaluate(milestone.condition, "bool", activation)
    if result.ok and result.value is True:
        pass
    elif problem is not None:
        return MilestoneCheck(period, problem[0], problem[1], 0, feeds, attestations)
    elif not result.ok:
        return MilestoneCheck(period, result.error_code, result.error[:MAX_DETAIL], 0, feeds,
                              attestations)
    else:
        return MilestoneCheck(period, OUTCOME_UNMET, "the condition is false", 0, feeds,
                              attestations)
    payout = milestone.amount
    if milestone.amount_expr:
        amount = evaluate(milestone.amount_expr, "int", activation)
        if not amount.ok or not isinstance(amount.value, int):
            if problem is not None:
                return MilestoneCheck(period, problem[0], problem[1], 0, feeds, attestations)
            return MilestoneCheck(period, amount.error_code or "type_error",
                                  f"amount_expr: {amount.error}"[:MAX_DETAIL], 0, feeds,
                                  attestations)
        payout = min(max(amount.value, 0), milestone.amount)
    return MilestoneCheck(period, OUTCOME_MET, "the condition holds", payout, feeds,
                          attestations)


def _feed_value(view: ReadView, feed_id: str, cache: FeedCache | None) -> FeedValue | None:
    if cache is None:
        return oracle.get_feed_value(view, feed_id)
    if feed_id not in cache:
        cache[feed_id] = oracle.get_feed_value(view, feed_id)
    return cache[feed_id]


def _activation(contract: ContractState, index: int, milestone: MilestoneTerms,
                record: MilestoneState, period: int, height: int, time: int,
                feeds: list[FeedUse], attestations: tuple[Attestation, ...]) -> dict[str, Any]:
    period_end = milestone.period_end(period)
    return {
        "block": {"height": height, "time": time},
        "feeds": {use.feed_id: {"value": use.value, "scale": use.scale,
                                "window_start": use.window_start, "window_end": use.window_end,
                                "height": use.height, "age": use.age, "sources": use.sources}
                  for use in feeds},
        "attestations": {item.role: {"did": item.to_value()["did"], "height": item.height,
                                     "time": item.time, "evidence": item.evidence}
                         for item in attestations},
        "milestone": {"index": index, "amount": milestone.amount,
                      "deadline": milestone.deadline, "period": period,
                      "period_start": period_end - milestone.period if milestone.recurring
                      else contract.activated_time,
                      "period_end": period_end, "hold": milestone.hold, "paid": record.paid,
                      "met_since": record.met_since},
        "contract": {"id": contract.contract_id, "activated_time": contract.activated_time,
                     "activated_height": contract.activated_height},
    }
