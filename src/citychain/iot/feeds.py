"""Oracle feeds off chain: compute a feed value from anchored batches, publish it, recompute it.

A feed (``MsgDeclareFeed``) names its aggregation, scale and coverage; *what* it aggregates is its
**recipe**, written in the feed's on-chain description so that anyone can recompute a value from
the chain and the readings alone::

    feed/v1 stream=<name> [type=<DeviceType>] [sample=all|last] [where=<op>:<int>] [-- free text]

- The readings of a value are those of its named source batches whose device is covered (its
  registered district is in the feed's ``coverage``; of device type ``type`` when given), whose
  stream is ``stream`` and whose ``ts_ms`` lies in the half-open window ``[start, end)``.
- ``sample=all`` (default) aggregates every such reading; ``sample=last`` only each device's last
  one in the window (by ``ts_ms``; "working street lights" counts lights, not reports).
- ``where=<op>:<n>`` (``eq ne lt le gt ge``) is the condition ``count`` counts and ``ratio_bp``
  measures (``ratio_bp`` = matching / all in basis points); ``count`` without it counts samples.
  Other aggregations refuse it.
- ``mean``, ``sum``, ``min`` and ``max`` are multiplied by ``10**scale`` (a PM2.5 mean with
  scale 1 is in tenths); ``count`` and ``ratio_bp`` need scale 0.
- Integers only; the one rounding rule is :func:`divide_rounded` (half away from zero).

The source batches of a value are exactly the anchored batches holding at least one of its
readings: :func:`recompute_feed_value` refuses a value naming a batch that contributes nothing,
as it refuses one whose batches do not hash to their anchored roots, whose readings were not
signed by their devices, or whose value differs. See docs/iot.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from citychain.client.rpc import NodeClient
from citychain.core import codec
from citychain.core.crypto import PrivateKey, verify_signature
from citychain.core.messages import Msg
from citychain.core.simple_merkle import merkle_root
from citychain.core.tx import TxBody, sign_tx
from citychain.iot.reading import Reading
from citychain.iot.store import ANCHORED, Batch, StoredReading
from citychain.iot.verify import Prover, ReadingVerificationError
from citychain.modules.oracle.api import AGGREGATIONS, compute_batch_id
from citychain.modules.oracle.messages import MsgDeclareFeed, MsgPublishFeedValue

RECIPE_PREFIX = "feed/v1"
BASIS_POINTS = 10_000
DEFAULT_MAX_SOURCES = 64
SAMPLE_ALL = "all"
SAMPLE_LAST = "last"
OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,31}")
_WHERE_RE = re.compile(r"(eq|ne|lt|le|gt|ge):(-?[0-9]{1,19})")


# ------------------------------------------------------------------------------------ errors

class FeedError(Exception):
    """Base of the feed errors."""


class FeedRecipeError(FeedError):
    """The feed's description is not a ``feed/v1`` recipe, or the recipe does not fit the
    feed's aggregation or scale."""


class EmptyWindowError(FeedError):
    """No reading of the feed lies in the window (mean, min, max and ratio_bp need one)."""


class TooManySourcesError(FeedError):
    """The value would name more source batches than the chain's ``max_feed_sources``."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the window's readings lie in {count} batches; a value names at most "
                         f"{limit}: use a shorter window")
        self.count = count
        self.limit = limit


class FeedPublishError(FeedError):
    """The chain refused a feed transaction (``codespace``/``code`` are the chain's)."""

    def __init__(self, codespace: str, code: int, log: str) -> None:
        super().__init__(f"{codespace}/{code}: {log}")
        self.codespace = codespace
        self.code = code
        self.log = log


class FeedRecomputeError(FeedError):
    """A published feed value does not recompute from its named batches (subclass says why)."""


class FeedValueNotFoundError(FeedRecomputeError):
    """The chain holds no such feed or feed value."""


class SourceBatchNotAnchoredError(FeedRecomputeError):
    """A named batch is not anchored on chain."""


class SourceBatchUnavailableError(FeedRecomputeError):
    """The reading store lacks a named batch or one of its readings."""


class SourceReadingTamperedError(FeedRecomputeError):
    """A reading does not hash to its leaf, the leaves do not hash to the anchored root, the
    stored batch differs from the anchor, or the device's key did not sign a reading."""


class SourceBatchUnusedError(FeedRecomputeError):
    """A named batch holds no reading of the feed's window (the value names the wrong
    batches)."""


class FeedValueMismatchError(FeedRecomputeError):
    """The recomputed value differs from the published one."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"the batches give {expected}, the chain holds {found}")
        self.expected = expected
        self.found = found


# ------------------------------------------------------------------------------------ pure math

def divide_rounded(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero (the one rounding rule).

    Raises:
        ZeroDivisionError: ``denominator`` is 0.
    """
    if denominator == 0:
        raise ZeroDivisionError("divide_rounded by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def _factor(scale: int) -> int:
    if scale < 0:
        raise FeedRecipeError(f"scale must not be negative, got {scale}")
    factor: int = 10**scale
    return factor


def compute_count(values: Iterable[int], where: Callable[[int], bool] | None = None) -> int:
    """How many values (matching ``where`` when given)."""
    return sum(1 for value in values if where is None or where(value))


def compute_sum(values: Iterable[int], scale: int = 0) -> int:
    return sum(values) * _factor(scale)


def compute_mean(values: Sequence[int], scale: int = 0) -> int:
    """The mean times ``10**scale``, rounded by :func:`divide_rounded`.

    Raises:
        EmptyWindowError: no values.
    """
    if not values:
        raise EmptyWindowError("the mean of no readings")
    return divide_rounded(sum(values) * _factor(scale), len(values))


def compute_min(values: Sequence[int], scale: int = 0) -> int:
    """Raises: EmptyWindowError: no values."""
    if not values:
        raise EmptyWindowError("the minimum of no readings")
    return min(values) * _factor(scale)


def compute_max(values: Sequence[int], scale: int = 0) -> int:
    """Raises: EmptyWindowError: no values."""
    if not values:
        raise EmptyWindowError("the maximum of no readings")
    return max(values) * _factor(scale)


def compute_ratio_bp(values: Sequence[int], where: Callable[[int], bool]) -> int:
    """The share of values matching ``where``, in basis points (0..10 000), rounded.

    Raises:
        EmptyWindowError: no values.
    """
    if not values:
        raise EmptyWindowError("the ratio of no readings")
    return divide_rounded(compute_count(values, where) * BASIS_POINTS, len(values))


def compute_aggregate(aggregation: str, values: Sequence[int], scale: int = 0,
                      where: Callable[[int], bool] | None = None) -> int:
    """Dispatch on the oracle's aggregation kind (``count mean sum min max ratio_bp``).

    Raises:
        FeedRecipeError: unknown kind, ``ratio_bp`` without ``where``.
        EmptyWindowError: mean, min, max or ratio_bp of no values.
    """
    if aggregation == "count":
        return compute_count(values, where)
    if aggregation == "ratio_bp":
        if where is None:
            raise FeedRecipeError("ratio_bp needs a where=<op>:<n> condition")
        return compute_ratio_bp(values, where)
    if aggregation == "mean":
        return compute_mean(values, scale)
    if aggregation == "sum":
        return compute_sum(values, scale)
    if aggregation == "min":
        return compute_min(values, scale)
    if aggregation == "max":
        return compute_max(values, scale)
    raise FeedRecipeError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, "
                          f"got {aggregation!r}")


# ------------------------------------------------------------------------------------ recipes

@dataclass(frozen=True)
class FeedRecipe:
    """What a feed aggregates (parsed from its description, see the module docstring)."""

    stream: str
    device_type: str = ""
    sample: str = SAMPLE_ALL
    where_op: str = ""
    where_value: int = 0

    def where(self) -> Callable[[int], bool] | None:
        if not self.where_op:
            return None
        test, bound = OPERATORS[self.where_op], self.where_value
        return lambda value: test(value, bound)

    def to_text(self) -> str:
        parts = [RECIPE_PREFIX, f"stream={self.stream}"]
        if self.device_type:
            parts.append(f"type={self.device_type}")
        if self.sample != SAMPLE_ALL:
            parts.append(f"sample={self.sample}")
        if self.where_op:
            parts.append(f"where={self.where_op}:{self.where_value}")
        return " ".join(parts)


def parse_recipe(description: str) -> FeedRecipe:
    """Parse ``feed/v1 stream=... [type=...] [sample=...] [where=...] [-- text]``.

    Raises:
        FeedRecipeError: not a recipe, or a malformed or repeated field.
    """
    head, _, _ = description.partition(" -- ")
    tokens = head.split()
    if not tokens or tokens[0] != RECIPE_PREFIX:
        raise FeedRecipeError(f"the feed's description must start with {RECIPE_PREFIX!r}: "
                              f"{description!r}")
    fields: dict[str, str] = {}
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if not sep or key not in ("stream", "type", "sample", "where") or key in fields:
            raise FeedRecipeError(f"recipe field {token!r} is unknown, malformed or repeated")
        fields[key] = value
    stream = fields.get("stream", "")
    if not _NAME_RE.fullmatch(stream):
        raise FeedRecipeError(f"recipe stream={stream!r} is not a stream name")
    device_type = fields.get("type", "")
    if device_type and not _NAME_RE.fullmatch(device_type):
        raise FeedRecipeError(f"recipe type={device_type!r} is not a device type")
    sample = fields.get("sample", SAMPLE_ALL)
    if sample not in (SAMPLE_ALL, SAMPLE_LAST):
        raise FeedRecipeError(f"recipe sample={sample!r} must be all or last")
    where_op, where_value = "", 0
    if "where" in fields:
        match = _WHERE_RE.fullmatch(fields["where"])
        if match is None:
            raise FeedRecipeError(f"recipe where={fields['where']!r} must be <op>:<integer> "
                                  f"with op one of {' '.join(OPERATORS)}")
        where_op, where_value = match.group(1), int(match.group(2))
    return FeedRecipe(stream, device_type, sample, where_op, where_value)


@dataclass(frozen=True)
class FeedDefinition:
    """A declared feed as the chain answers ``/oracle/feed``, with its parsed recipe."""

    feed_id: str
    publisher: str
    aggregation: str
    scale: int
    unit: str
    coverage: tuple[str, ...]
    recipe: FeedRecipe

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> FeedDefinition:
        """Raises: FeedRecipeError: the description is no recipe, or does not fit."""
        feed = cls(str(value["feed_id"]), str(value["publisher"]), str(value["aggregation"]),
                   int(value["scale"]), str(value["unit"]), tuple(value["coverage"]),
                   parse_recipe(str(value["description"])))
        feed.check()
        return feed

    def check(self) -> None:
        """Raises: FeedRecipeError: ``where`` with mean/sum/min/max, ratio_bp without it, or a
        scale other than 0 for count and ratio_bp."""
        has_where = bool(self.recipe.where_op)
        if self.aggregation in ("mean", "sum", "min", "max") and has_where:
            raise FeedRecipeError(f"{self.aggregation} feeds take no where= condition")
        if self.aggregation == "ratio_bp" and not has_where:
            raise FeedRecipeError("ratio_bp feeds need a where=<op>:<n> condition")
        if self.aggregation in ("count", "ratio_bp") and self.scale != 0:
            raise FeedRecipeError(f"{self.aggregation} feeds have scale 0")


@dataclass(frozen=True)
class DeviceRecord:
    """What a feed needs of a device: its type and district (line, for a vehicle)."""

    did: str
    device_type: str
    district: str
    pubkey: bytes = b""


def device_record(value: dict[str, Any] | None) -> DeviceRecord | None:
    """A DeviceRecord from the chain's ``/oracle/device`` answer (None stays None)."""
    if value is None:
        return None
    pubkey = bytes.fromhex(value["pubkey"]) if value.get("pubkey") else b""
    return DeviceRecord(str(value["did"]), str(value["device_type"]),
                        str(value["location"]["district"]), pubkey)


# ------------------------------------------------------------------------------------ selection

@dataclass(frozen=True)
class FeedComputation:
    """A computed value and what it was computed from."""

    feed_id: str
    window_start_ms: int
    window_end_ms: int
    value: int
    source_batch_ids: tuple[str, ...]   # sorted 64-hex ids
    sample_count: int
    reading_count: int


def overlaps(batch: Batch, start_ms: int, end_ms: int) -> bool:
    """The oracle's overlap rule: the batch holds readings in ``[start, end)`` range-wise."""
    return batch.first_reading_ms < end_ms and batch.last_reading_ms >= start_ms


def aggregate_batches(feed: FeedDefinition, start_ms: int, end_ms: int,
                      batches: Sequence[tuple[bytes, Sequence[Reading]]],
                      devices: Callable[[str], DeviceRecord | None]) -> FeedComputation:
    """Select the feed's readings in ``[start_ms, end_ms)`` from ``batches`` (id, readings)
    and aggregate them; the sources are the batches holding at least one selected reading.

    Raises:
        FeedRecipeError, EmptyWindowError (see :func:`compute_aggregate`).
    """
    recipe = feed.recipe
    coverage = set(feed.coverage)
    covered: dict[str, bool] = {}
    selected: dict[bytes, Reading] = {}
    sources: set[bytes] = set()
    for batch_id, readings in batches:
        for reading in readings:
            if reading.stream != recipe.stream or not start_ms <= reading.ts_ms < end_ms:
                continue
            if reading.device not in covered:
                record = devices(reading.device)
                covered[reading.device] = record is not None and record.district in coverage \
                    and (not recipe.device_type or record.device_type == recipe.device_type)
            if not covered[reading.device]:
                continue
            selected.setdefault(reading.reading_id, reading)
            sources.add(batch_id)
    chosen = sorted(selected.values(), key=lambda r: (r.device, r.ts_ms, r.seq))
    if recipe.sample == SAMPLE_LAST:
        last: dict[str, Reading] = {}
        for reading in chosen:
            last[reading.device] = reading
        values = [last[device].value for device in sorted(last)]
    else:
        values = [reading.value for reading in chosen]
    if not values and feed.aggregation in ("mean", "min", "max", "ratio_bp"):
        raise EmptyWindowError(f"no reading of feed {feed.feed_id} in [{start_ms}, {end_ms})")
    value = compute_aggregate(feed.aggregation, values, feed.scale, recipe.where())
    return FeedComputation(feed.feed_id, start_ms, end_ms, value,
                           tuple(sorted(batch_id.hex() for batch_id in sources)), len(values),
                           len(selected))


class ReadingSource(Protocol):
    """Where batches and their readings come from (``iot.store.ReadingStore`` is one)."""

    def get_batch(self, batch_id: bytes) -> Batch | None: ...

    def get_reading(self, reading_id: bytes) -> StoredReading | None: ...

    def batches(self, status: str | None = None) -> list[Batch]: ...


def compute_feed_value(store: ReadingSource, feed: FeedDefinition, start_ms: int, end_ms: int,
                       devices: Callable[[str], DeviceRecord | None], *,
                       max_sources: int = DEFAULT_MAX_SOURCES) -> FeedComputation:
    """The feed's value over ``[start_ms, end_ms)`` from the store's **anchored** batches
    overlapping the window, naming the batches its readings lie in.

    Raises:
        EmptyWindowError: no reading of the feed in the window (mean, min, max, ratio_bp).
        TooManySourcesError: more than ``max_sources`` batches hold its readings.
        SourceBatchUnavailableError: a leaf of an anchored batch is missing from the store.
    """
    chosen = []
    for batch in store.batches(ANCHORED):
        if overlaps(batch, start_ms, end_ms):
            chosen.append((batch.batch_id, _batch_readings(store, batch)))
    result = aggregate_batches(feed, start_ms, end_ms, chosen, devices)
    if len(result.source_batch_ids) > max_sources:
        raise TooManySourcesError(len(result.source_batch_ids), max_sources)
    if not result.source_batch_ids:
        raise EmptyWindowError(f"no reading of feed {feed.feed_id} in [{start_ms}, {end_ms}): "
                               "a value must name at least one batch")
    return result


def _batch_readings(store: ReadingSource, batch: Batch) -> list[Reading]:
    readings = []
    for leaf in batch.leaves:
        stored = store.get_reading(leaf)
        if stored is None:
            raise SourceBatchUnavailableError(
                f"reading {leaf.hex()} of batch {batch.batch_id.hex()} is not in the store")
        readings.append(stored.reading)
    return readings


# ------------------------------------------------------------------------------------ chain

def send_messages(client: NodeClient, key: PrivateKey, chain_id: str,
                  messages: Sequence[Msg], *, commit: bool = True) -> tuple[int, str]:
    """Sign ``messages`` as one tx from ``key``, broadcast it and wait for its block; return
    (height, tx hash). Without ``commit`` only its check is awaited (height 0).

    Raises:
        FeedPublishError: refused at check or failed in its block.
        RpcError: the node could not be reached.
    """
    for message in messages:
        message.validate_basic()
    account = codec.decode(client.query("/identity/account", {"address": key.address}).value)
    sequence = 0 if account is None else int(account["sequence"])
    raw = sign_tx(key, TxBody(chain_id, key.address, sequence, tuple(messages)))
    result = client.broadcast(raw, commit=commit)
    final = result.get("tx_result") or result.get("check_tx") or result
    if int(final["code"]) != 0:
        raise FeedPublishError(str(final.get("codespace") or ""), int(final["code"]),
                               str(final.get("log") or ""))
    return int(result.get("height") or 0), str(result["hash"])


class FeedNode:
    """Unproven oracle reads and feed transactions through a node's RPC (the publisher's own
    node; verification goes through a :class:`~citychain.iot.verify.Prover` instead)."""

    def __init__(self, node_url: str, key: PrivateKey | None = None) -> None:
        self.client = NodeClient(node_url)
        self.key = key
        self._chain_id: str | None = None
        self._devices: dict[str, DeviceRecord | None] = {}

    def close(self) -> None:
        self.client.close()

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.client.status()["node_info"]["network"])
        return self._chain_id

    def query(self, path: str, params: dict[str, Any]) -> Any:
        """Raises: FeedPublishError: the node refused the query."""
        answer = self.client.query(path, params)
        if not answer.ok:
            raise FeedPublishError(answer.codespace, answer.code, answer.log)
        return codec.decode(answer.value)

    def feed(self, feed_id: str) -> FeedDefinition:
        """Raises: FeedValueNotFoundError (no such feed), FeedRecipeError."""
        value = self.query("/oracle/feed", {"feed_id": feed_id})
        if value is None:
            raise FeedValueNotFoundError(f"no feed {feed_id} on chain")
        return FeedDefinition.from_value(value)

    def device(self, did: str) -> DeviceRecord | None:
        """The device's type and district (cached for this object's life)."""
        if did not in self._devices:
            self._devices[did] = device_record(self.query("/oracle/device", {"did": did}))
        return self._devices[did]

    def max_sources(self) -> int:
        return int(self.query("/oracle/params", {})["max_feed_sources"])

    def send(self, *messages: Msg) -> tuple[int, str]:
        if self.key is None:
            raise ValueError("this FeedNode has no key to sign with")
        return send_messages(self.client, self.key, self.chain_id, messages)

    def declare_feed(self, feed_id: str, recipe: FeedRecipe, *, aggregation: str, unit: str,
                     scale: int, coverage: Sequence[str], text: str = "") -> tuple[int, str]:
        """Declare a feed whose description is ``recipe`` (plus `` -- text``)."""
        description = recipe.to_text() + (f" -- {text}" if text else "")
        return self.send(MsgDeclareFeed(feed_id, description, unit, scale, aggregation,
                                        tuple(sorted(coverage))))


def publish_feed_value(node: FeedNode, computation: FeedComputation) -> tuple[int, str]:
    """Send ``MsgPublishFeedValue`` for ``computation`` signed by the node's key (the feed's
    publisher); return (height, tx hash).

    Raises:
        FeedPublishError: the chain refused it (e.g. oracle/21, a window not after the latest).
    """
    return node.send(MsgPublishFeedValue(
        computation.feed_id, computation.window_start_ms, computation.window_end_ms,
        computation.value, computation.source_batch_ids))


# ------------------------------------------------------------------------------------ recompute

@dataclass(frozen=True)
class FeedVerification:
    """A published value that recomputed from its batches, proven at ``height``."""

    computation: FeedComputation
    height: int

    def to_value(self) -> dict[str, Any]:
        c = self.computation
        return {"feed_id": c.feed_id, "window_start_ms": c.window_start_ms,
                "window_end_ms": c.window_end_ms, "value": c.value,
                "source_batch_ids": list(c.source_batch_ids), "samples": c.sample_count,
                "readings": c.reading_count, "proven_height": self.height, "verified": True}


def recompute_feed_value(store: ReadingSource, prover: Prover, feed_id: str,
                         window_end_ms: int | None = None) -> FeedVerification:
    """Recompute the on-chain value of ``feed_id`` (the latest, or the one ending at
    ``window_end_ms``) from the readings of the batches it names, and compare.

    Every chain read is proven (``prover``). Per named batch: anchored on chain, the stored
    batch's fields give its id and root, its leaves hash to the anchored root (so each reading
    is included), each reading hashes to its leaf and was signed by its device's key in force
    on chain when the batch was anchored (``/identity/key_at`` at the anchor's height).

    Raises:
        FeedValueNotFoundError, SourceBatchNotAnchoredError, SourceBatchUnavailableError,
        SourceReadingTamperedError, SourceBatchUnusedError, FeedValueMismatchError,
        FeedRecipeError, EmptyWindowError: see their docstrings.
        ReadingVerificationError: a proof failed.
    """
    params: dict[str, Any] = {"feed_id": feed_id}
    if window_end_ms is not None:
        params["window_end_ms"] = window_end_ms
    published, height = prover.proven("feed_value", params)
    if published is None:
        raise FeedValueNotFoundError(f"no value of feed {feed_id}"
                                     + ("" if window_end_ms is None
                                        else f" ending at {window_end_ms}"))
    declared, _ = prover.proven("feed", {"feed_id": feed_id})
    if declared is None:
        raise FeedValueNotFoundError(f"no feed {feed_id}")
    feed = FeedDefinition.from_value(declared)
    devices: dict[str, DeviceRecord | None] = {}

    def device(did: str) -> DeviceRecord | None:
        if did not in devices:
            devices[did] = device_record(prover.proven("device", {"did": did})[0])
        return devices[did]

    keys: dict[tuple[str, int], bytes] = {}

    def key_at(did: str, height: int) -> bytes:
        if (did, height) not in keys:
            record, _ = prover.proven("key_at", {"did": did, "at_height": height},
                                      module="identity")
            keys[did, height] = bytes.fromhex(record["pubkey"]) if record else b""
        return keys[did, height]

    batches = [(bytes.fromhex(h), _checked_batch(store, prover, bytes.fromhex(h), key_at))
               for h in published["source_batch_ids"]]
    start, end = int(published["window_start_ms"]), int(published["window_end_ms"])
    result = aggregate_batches(feed, start, end, batches, device)
    unused = sorted(set(published["source_batch_ids"]) - set(result.source_batch_ids))
    if unused:
        raise SourceBatchUnusedError(f"batch {unused[0]} holds no reading of feed {feed_id} in "
                                     f"[{start}, {end}): the value names the wrong batches")
    if result.value != int(published["value"]):
        raise FeedValueMismatchError(result.value, int(published["value"]))
    return FeedVerification(result, height)


def _checked_batch(store: ReadingSource, prover: Prover, batch_id: bytes,
                   key_at: Callable[[str, int], bytes]) -> list[Reading]:
    anchor, _ = prover.proven("anchor", {"batch_id": batch_id.hex()})
    if anchor is None:
        raise SourceBatchNotAnchoredError(f"batch {batch_id.hex()} is not anchored on chain")
    batch = store.get_batch(batch_id)
    if batch is None:
        raise SourceBatchUnavailableError(f"batch {batch_id.hex()} is not in the reading store")
    fields_id = compute_batch_id(batch.merkle_root, batch.devices, batch.first_reading_ms,
                                 batch.last_reading_ms, batch.reading_count,
                                 batch.previous_batch_id)
    if fields_id != batch_id or anchor["merkle_root"] != batch.merkle_root.hex():
        raise SourceReadingTamperedError(f"the stored batch {batch_id.hex()} differs from its "
                                         "anchor")
    if len(batch.leaves) != batch.reading_count or \
            merkle_root(list(batch.leaves)) != batch.merkle_root:
        raise SourceReadingTamperedError(f"the leaves of batch {batch_id.hex()} do not hash to "
                                         "its anchored root")
    readings = _batch_readings(store, batch)
    for leaf, reading in zip(batch.leaves, readings, strict=True):
        if reading.reading_id != leaf:
            raise SourceReadingTamperedError(
                f"reading {leaf.hex()} of batch {batch_id.hex()} does not hash to its leaf "
                "(its content was altered)")
        if reading.device not in anchor["devices"] or \
                not anchor["first_reading_ms"] <= reading.ts_ms <= anchor["last_reading_ms"]:
            raise SourceReadingTamperedError(f"reading {leaf.hex()} lies outside its anchor")
        pubkey = key_at(reading.device, anchor["height"])
        if not verify_signature(pubkey, reading.sign_bytes(prover.chain_id), reading.sig):
            raise SourceReadingTamperedError(
                f"reading {leaf.hex()} was not signed by {reading.device}'s key on chain at "
                f"the anchor's height {anchor['height']}")
    return readings


__all__ = [
    "DeviceRecord", "EmptyWindowError", "FeedComputation", "FeedDefinition", "FeedError",
    "FeedNode", "FeedPublishError", "FeedRecipe", "FeedRecipeError", "FeedRecomputeError",
    "FeedValueMismatchError", "FeedValueNotFoundError", "FeedVerification",
    "ReadingVerificationError", "SourceBatchNotAnchoredError", "SourceBatchUnavailableError",
    "SourceBatchUnusedError", "SourceReadingTamperedError", "TooManySourcesError",
    "aggregate_batches", "compute_aggregate", "compute_count", "compute_feed_value",
    "compute_max", "compute_mean", "compute_min", "compute_ratio_bp", "compute_sum",
    "divide_rounded", "parse_recipe", "publish_feed_value", "recompute_feed_value",
    "send_messages",
]
