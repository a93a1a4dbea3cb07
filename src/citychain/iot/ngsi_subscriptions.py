"""NGSI-LD subscriptions of the NGSI server: their SQLite table, the HTTP routes and the notifier.

A subscription's notifications are derived from committed data only: the notifier walks the
anchored batches of the reading store in (height, sealing) order from the subscription's cursor,
and for each batch whose anchor the chain confirms POSTs the matching entities to the
subscription's endpoint, then moves the cursor past the batch. Delivery is at-least-once: a
notification id is derived from (subscription, height, batch), so a receiver drops repeats. The
table lives in the NGSI server's own file (the server is an adapter: never in chain state, never
in the gateway's reading store, which it opens read-only). See docs/adr/0009-ngsi-ld.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from citychain.iot.ngsi import (
    API_PREFIX,
    EntityService,
    NgsiChain,
    NgsiError,
    QueryTerm,
    Receipts,
    bad_request,
    iso_ms,
    parse_q,
    shown_value,
)
from citychain.iot.store import ANCHORED, Batch, ReadOnlyReadingStore, StoredReading

__all__ = [
    "FROM_HEIGHT",
    "SubscriptionNotifier",
    "SubscriptionStore",
    "mount_subscriptions",
    "notification_id",
    "validate_subscription",
]

FROM_HEIGHT = "citychain:fromHeight"
ACCEPT_TYPES = ("application/json", "application/ld+json")
UNSUPPORTED = ("geoQ", "throttling", "timeInterval", "expiresAt", "temporalQ", "scopeQ", "lang",
               "csf", "isActive")
IGNORED = ("@context", "description", "subscriptionName", "name")
MAX_BACKOFF_SECONDS = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    cursor_height INTEGER NOT NULL,
    cursor_done INTEGER NOT NULL,
    times_sent INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_notification_ms INTEGER,
    last_success_ms INTEGER,
    last_failure_ms INTEGER,
    last_failure_reason TEXT NOT NULL DEFAULT '',
    retry_at_ms INTEGER NOT NULL DEFAULT 0
);
"""


SELECT = ("SELECT body, cursor_height, cursor_done, times_sent, failures, last_notification_ms, "
          "last_success_ms, last_failure_ms, last_failure_reason, retry_at_ms FROM subscriptions")
log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class Subscription:
    """A validated subscription body (what a client asked for; the counters live beside it)."""

    subscription_id: str
    types: frozenset[str] | None
    watched: frozenset[str] | None
    q: str | None
    terms: tuple[QueryTerm, ...]
    uri: str
    accept: str
    attributes: frozenset[str] | None
    from_height: int | None
    body: dict[str, Any]


def field_error(name: str, problem: str) -> NgsiError:
    return bad_request(f"{name}: {problem}", f"Invalid subscription field {name}")


def string_list(value: Any, name: str) -> frozenset[str]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v for v in value)):
        raise field_error(name, "must be a non-empty array of non-empty strings")
    return frozenset(value)


def validate_subscription(body: Any) -> Subscription:
    """Check a POSTed subscription (the supported subset) and normalize it.

    Raises:
        NgsiError: BadRequestData whose detail starts with the offending field's name.
    """
    if not isinstance(body, dict):
        raise bad_request("a subscription is a JSON object", "Invalid subscription")
    for name in sorted(body):
        if name in UNSUPPORTED:
            raise field_error(name, "not supported by this server")
    if body.get("type") != "Subscription":
        raise field_error("type", 'must be "Subscription"')
    given_id = body.get("id")
    if given_id is None:
        subscription_id = f"urn:ngsi-ld:Subscription:{uuid.uuid4().hex}"
    elif (isinstance(given_id, str) and ":" in given_id and " " not in given_id
          and len(given_id) <= 256):
        subscription_id = given_id
    else:
        raise field_error("id", "must be a URI")
    types: frozenset[str] | None = None
    entities = body.get("entities")
    if entities is not None:
        if not isinstance(entities, list) or not entities:
            raise field_error("entities", "must be a non-empty array of {type}")
        found = []
        for index, item in enumerate(entities):
            if not isinstance(item, dict) or not isinstance(item.get("type"), str) \
                    or not item["type"]:
                raise field_error(f"entities[{index}].type", "is required (a type name)")
            extra = sorted(set(item) - {"type"})
            if extra:
                raise field_error(f"entities[{index}].{extra[0]}",
                                  "not supported (entities select by type only)")
            found.append(item["type"])
        types = frozenset(found)
    watched = None
    if "watchedAttributes" in body:
        watched = string_list(body["watchedAttributes"], "watchedAttributes")
    if types is None and watched is None:
        raise field_error("entities", "entities or watchedAttributes is required")
    q = body.get("q")
    terms: tuple[QueryTerm, ...] = ()
    if q is not None:
        if not isinstance(q, str):
            raise field_error("q", "must be a string")
        try:
            terms = parse_q(q)
        except NgsiError as exc:
            raise field_error("q", exc.detail) from None
    notification = body.get("notification")
    if not isinstance(notification, dict):
        raise field_error("notification", "is required (an object with an endpoint)")
    endpoint = notification.get("endpoint")
    if not isinstance(endpoint, dict):
        raise field_error("notification.endpoint", "is required (an object with a uri)")
    uri = endpoint.get("uri")
    if not isinstance(uri, str):
        raise field_error("notification.endpoint.uri", "is required")
    parts = urlsplit(uri)
    if parts.scheme != "http" or not parts.hostname:
        raise field_error("notification.endpoint.uri", "must be an http:// URL with a host")
    accept = endpoint.get("accept", "application/json")
    if accept not in ACCEPT_TYPES:
        raise field_error("notification.endpoint.accept", f"must be one of {ACCEPT_TYPES}")
    attributes = None
    if "attributes" in notification:
        attributes = string_list(notification["attributes"], "notification.attributes")
    if notification.get("format", "normalized") != "normalized":
        raise field_error("notification.format", 'only "normalized" is supported')
    from_height = body.get(FROM_HEIGHT)
    if from_height is not None and (isinstance(from_height, bool)
                                    or not isinstance(from_height, int)
                                    or not 0 <= from_height < 2**63):
        raise field_error(FROM_HEIGHT, "must be an integer >= 0")
    stored: dict[str, Any] = {"id": subscription_id, "type": "Subscription"}
    if types is not None:
        stored["entities"] = [{"type": t} for t in sorted(types)]
    if watched is not None:
        stored["watchedAttributes"] = sorted(watched)
    if q is not None:
        stored["q"] = q
    shown_endpoint = {"uri": uri, "accept": accept}
    stored["notification"] = {"endpoint": shown_endpoint, "format": "normalized"}
    if attributes is not None:
        stored["notification"]["attributes"] = sorted(attributes)
    if from_height is not None:
        stored[FROM_HEIGHT] = from_height
    for name in IGNORED:
        if name in body and name != "@context":
            stored[name] = body[name]
    return Subscription(subscription_id, types, watched, q, terms, uri, accept, attributes,
                        from_height, stored)


# ---------------------------------------------------------------------------------- store
@dataclass(frozen=True)
class SubscriptionRecord:
    """A stored subscription with its cursor (next batch: the ``cursor_done``-th batch, in
    sealing order, of height ``cursor_height``, or any later height) and delivery counters."""

    subscription: Subscription
    cursor_height: int
    cursor_done: int
    times_sent: int
    failures: int
    last_notification_ms: int | None
    last_success_ms: int | None
    last_failure_ms: int | None
    last_failure_reason: str
    retry_at_ms: int

    def to_value(self) -> dict[str, Any]:
        """The NGSI-LD representation (GET), with the delivery status."""
        out: dict[str, Any] = json.loads(json.dumps(self.subscription.body))
        notification = out["notification"]
        notification["status"] = "failed" if self.failures else "ok"
        notification["timesSent"] = self.times_sent
        for key, value in (("lastNotification", self.last_notification_ms),
                           ("lastSuccess", self.last_success_ms),
                           ("lastFailure", self.last_failure_ms)):
            if value is not None:
                notification[key] = iso_ms(value)
        if self.failures:
            notification["citychain:lastFailureReason"] = self.last_failure_reason
            notification["citychain:consecutiveFailures"] = self.failures
        out["status"] = "failed" if self.failures else "active"
        out["citychain:cursor"] = {"height": self.cursor_height, "batchesDone": self.cursor_done}
        return out


def record_of(row: Any) -> SubscriptionRecord:
    body, *rest = row
    return SubscriptionRecord(validate_subscription(json.loads(body)), *rest)


class SubscriptionStore:
    """The subscriptions table in the NGSI server's own SQLite file (one connection, locked)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, subscription: Subscription, cursor: tuple[int, int]) -> None:
        """Raises: NgsiError AlreadyExists when the id is taken."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO subscriptions (id, body, cursor_height, cursor_done) "
                    "VALUES (?, ?, ?, ?)",
                    (subscription.subscription_id, json.dumps(subscription.body),
                     cursor[0], cursor[1]))
            except sqlite3.IntegrityError:
                raise NgsiError("AlreadyExists", "Subscription exists",
                                f"a subscription {subscription.subscription_id} exists"
                                ) from None

    def delete(self, subscription_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM subscriptions WHERE id = ?",
                                    (subscription_id,)).rowcount > 0

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        with self._lock:
            rows = self._db.execute(SELECT + " WHERE id = ?", (subscription_id,)).fetchall()
        return record_of(rows[0]) if rows else None

    def all(self) -> list[SubscriptionRecord]:
        """Every subscription, in creation order."""
        with self._lock:
            rows = self._db.execute(SELECT + " ORDER BY n").fetchall()
        return [record_of(row) for row in rows]

    def advance(self, subscription_id: str, cursor: tuple[int, int], sent: bool,
                at_ms: int) -> None:
        """Move the cursor past a batch (after its notification was accepted, or when it
        held nothing for the subscription); a deleted subscription stays deleted."""
        with self._lock:
            if sent:
                self._db.execute(
                    "UPDATE subscriptions SET cursor_height = ?, cursor_done = ?, "
                    "times_sent = times_sent + 1, failures = 0, last_notification_ms = ?, "
                    "last_success_ms = ?, retry_at_ms = 0 WHERE id = ?",
                    (cursor[0], cursor[1], at_ms, at_ms, subscription_id))
            else:
                self._db.execute("UPDATE subscriptions SET cursor_height = ?, cursor_done = ? "
                                 "WHERE id = ?", (cursor[0], cursor[1], subscription_id))

    def record_failure(self, subscription_id: str, reason: str, at_ms: int,
                       backoff: Callable[[int], float]) -> None:
        """Count a failed delivery and schedule the retry (``backoff(failures)`` seconds)."""
        with self._lock:
            row = self._db.execute("SELECT failures FROM subscriptions WHERE id = ?",
                                   (subscription_id,)).fetchone()
            if row is None:
                return
            failures = int(row[0]) + 1
            self._db.execute(
                "UPDATE subscriptions SET failures = ?, times_sent = times_sent + 1, "
                "last_notification_ms = ?, last_failure_ms = ?, last_failure_reason = ?, "
                "retry_at_ms = ? WHERE id = ?",
                (failures, at_ms, at_ms, reason[:500],
                 at_ms + int(backoff(failures) * 1000), subscription_id))


# ---------------------------------------------------------------------------------- notifications
def notification_id(subscription_id: str, height: int, batch_id: bytes) -> str:
    """The id every delivery of one (subscription, height, batch) carries: receivers dedupe."""
    digest = hashlib.sha256(f"{subscription_id}|{height}|{batch_id.hex()}".encode()).hexdigest()
    return f"urn:ngsi-ld:Notification:{digest[:48]}"


def ordered_batches(store: ReadOnlyReadingStore) -> list[tuple[int, int, Batch]]:
    """Anchored batches as (height, position within the height in sealing order, batch), in
    that order."""
    out: list[tuple[int, int, Batch]] = []
    counts: dict[int, int] = {}
    for batch in sorted(store.batches(ANCHORED), key=lambda b: b.height):  # sort is stable
        position = counts.get(batch.height, 0)
        counts[batch.height] = position + 1
        out.append((batch.height, position, batch))
    return out


def tip_cursor(store: ReadOnlyReadingStore) -> tuple[int, int]:
    """The cursor just past every batch the store knows anchored (a new subscription)."""
    batches = ordered_batches(store)
    if not batches:
        return 0, 0
    height, position, _ = batches[-1]
    return height, position + 1


def batch_matches(service: EntityService, subscription: Subscription, batch: Batch,
                  receipts: Receipts) -> list[dict[str, Any]]:
    """The entities of ``batch`` the subscription wants, each restricted to the batch's
    readings (temporal form: every instance, with its provenance and anchor receipt)."""
    data = []
    for did in batch.devices:
        device = service.device(did)
        if device is None or (subscription.types is not None
                              and device.device_type not in subscription.types):
            continue
        readings = [r for r in (service.store.get_reading(leaf) for leaf in batch.leaves)
                    if r is not None and r.reading.device == did]
        newest: dict[str, StoredReading] = {}
        for stored in readings:
            name = device.mapping(stored.reading.stream).attribute
            if name not in newest or stored.reading.ts_ms >= newest[name].reading.ts_ms:
                newest[name] = stored
        if subscription.watched is not None and not subscription.watched & set(newest):
            continue
        if not all(term.matches(None if term.attribute not in newest else shown_value(
                device.mapping(newest[term.attribute].reading.stream),
                newest[term.attribute].reading.value)) for term in subscription.terms):
            continue
        data.append(service.temporal(device, readings, subscription.attributes, receipts,
                                     False))
    return data


Poster = Callable[[str, dict[str, Any], str], None]


def http_post(uri: str, body: dict[str, Any], accept: str) -> None:
    """POST a notification; raises on a transport error or a non-2xx answer."""
    answer = httpx.post(uri, content=json.dumps(body).encode(), timeout=10.0,
                        headers={"Content-Type": accept})
    if not 200 <= answer.status_code < 300:
        raise RuntimeError(f"endpoint answered {answer.status_code}")


def default_backoff(failures: int) -> float:
    return float(min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(failures - 1, 10)))


class SubscriptionNotifier:
    """Delivers each subscription's notifications in (height, sealing) order from its cursor,
    in a background thread polling every ``poll_seconds`` (or woken by :meth:`wake`)."""

    def __init__(self, store: ReadOnlyReadingStore, chain: NgsiChain,
                 subscriptions: SubscriptionStore, *, poll_seconds: float = 1.0,
                 post: Poster = http_post,
                 backoff: Callable[[int], float] = default_backoff) -> None:
        self.service = EntityService(store, chain)
        self.store = store
        self.chain = chain
        self.subscriptions = subscriptions
        self.poll_seconds = poll_seconds
        self.post = post
        self.backoff = backoff
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ngsi-notifier", daemon=True)

    def start(self) -> SubscriptionNotifier:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.process_once()
            except Exception:  # the node or store may be briefly away: the next pass retries
                log.exception("notifier pass failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def process_once(self) -> None:
        """One pass: every due subscription up to the newest batch the chain confirms."""
        batches = ordered_batches(self.store)
        receipts = Receipts(self.store, self.chain)
        for record in self.subscriptions.all():
            if self._stopping.is_set():
                return
            if record.retry_at_ms > now_ms():
                continue
            self.deliver(record, batches, receipts)

    def deliver(self, record: SubscriptionRecord, batches: Sequence[tuple[int, int, Batch]],
                receipts: Receipts) -> None:
        subscription = record.subscription
        cursor = (record.cursor_height, record.cursor_done)
        for height, position, batch in batches:
            if (height, position) < cursor:
                continue
            receipt = receipts.receipt(batch.batch_id)
            if receipt is None:
                return  # not confirmed by the chain (yet): stop before it
            following = (height, position + 1)
            data = batch_matches(self.service, subscription, batch, receipts)
            if not data:
                self.subscriptions.advance(subscription.subscription_id, following, False,
                                           now_ms())
                cursor = following
                continue
            notification = {
                "id": notification_id(subscription.subscription_id, height, batch.batch_id),
                "type": "Notification", "subscriptionId": subscription.subscription_id,
                "notifiedAt": receipt["blockTime"], "height": height, "anchor": receipt,
                "data": data}
            try:
                self.post(subscription.uri, notification, subscription.accept)
            except Exception as exc:  # any delivery failure is retried
                self.subscriptions.record_failure(subscription.subscription_id,
                                                  f"{type(exc).__name__}: {exc}", now_ms(),
                                                  self.backoff)
                return
            self.subscriptions.advance(subscription.subscription_id, following, True,
                                       now_ms())
            cursor = following
            if self._stopping.is_set():
                return


# ---------------------------------------------------------------------------------- routes
def mount_subscriptions(app: FastAPI, store: ReadOnlyReadingStore,
                        subscriptions: SubscriptionStore,
                        notifier: SubscriptionNotifier | None = None) -> None:
    """Add ``/ngsi-ld/v1/subscriptions`` (POST, GET list, GET/DELETE by id) to an app made by
    :func:`citychain.iot.ngsi.create_ngsi_app` (whose handlers answer NgsiError)."""

    @app.post(API_PREFIX + "/subscriptions")
    async def create_subscription(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise NgsiError("InvalidRequest", "Invalid JSON",
                            "the request body is not JSON") from None
        subscription = validate_subscription(body)
        cursor = ((subscription.from_height, 0) if subscription.from_height is not None
                  else tip_cursor(store))
        subscriptions.add(subscription, cursor)
        if notifier is not None:
            notifier.wake()
        location = f"{API_PREFIX}/subscriptions/{subscription.subscription_id}"
        return Response(status_code=201, headers={"Location": location})

    @app.get(API_PREFIX + "/subscriptions")
    def list_subscriptions() -> JSONResponse:
        return JSONResponse([record.to_value() for record in subscriptions.all()])

    @app.get(API_PREFIX + "/subscriptions/{subscription_id}")
    def get_subscription(subscription_id: str) -> JSONResponse:
        record = subscriptions.get(subscription_id)
        if record is None:
            raise subscription_not_found(subscription_id)
        return JSONResponse(record.to_value())

    @app.delete(API_PREFIX + "/subscriptions/{subscription_id}")
    def delete_subscription(subscription_id: str) -> Response:
        if not subscriptions.delete(subscription_id):
            raise subscription_not_found(subscription_id)
        return Response(status_code=204)


def subscription_not_found(subscription_id: str) -> NgsiError:
    return NgsiError("ResourceNotFound", "Subscription not found",
                     f"no subscription {subscription_id}")
