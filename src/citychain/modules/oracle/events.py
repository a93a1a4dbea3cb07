"""Oracle events: one constructor per past-tense event type; accounts appear as DIDs, hashes as
hex."""

from __future__ import annotations

from citychain.core.events import Event

DEVICE_REGISTERED = "device_registered"
DEVICE_UPDATED = "device_updated"
DEVICE_DECOMMISSIONED = "device_decommissioned"
BATCH_ANCHORED = "batch_anchored"
FEED_DECLARED = "feed_declared"
FEED_VALUE_PUBLISHED = "feed_value_published"

EVENT_TYPES: frozenset[str] = frozenset({DEVICE_REGISTERED, DEVICE_UPDATED,
                                         DEVICE_DECOMMISSIONED, BATCH_ANCHORED, FEED_DECLARED,
                                         FEED_VALUE_PUBLISHED})


def device_registered(did: str, owner: str, device_type: str, district: str,
                      stream_count: int) -> Event:
    return Event.of(DEVICE_REGISTERED, did=did, owner=owner, device_type=device_type,
                    district=district, stream_count=stream_count)


def device_updated(did: str, owner: str, district: str, stream_count: int) -> Event:
    return Event.of(DEVICE_UPDATED, did=did, owner=owner, district=district,
                    stream_count=stream_count)


def device_decommissioned(did: str, owner: str) -> Event:
    return Event.of(DEVICE_DECOMMISSIONED, did=did, owner=owner)


def batch_anchored(batch_id: bytes, merkle_root: bytes, operator: str, submitter: str,
                   device_count: int, first_reading_ms: int, last_reading_ms: int,
                   reading_count: int, previous_batch_id: bytes) -> Event:
    return Event.of(BATCH_ANCHORED, batch_id=batch_id.hex(), merkle_root=merkle_root.hex(),
                    operator=operator, submitter=submitter, device_count=device_count,
                    first_reading_ms=first_reading_ms, last_reading_ms=last_reading_ms,
                    reading_count=reading_count, previous_batch_id=previous_batch_id.hex())


def feed_declared(feed_id: str, publisher: str, aggregation: str, unit: str,
                  scale: int) -> Event:
    return Event.of(FEED_DECLARED, feed_id=feed_id, publisher=publisher,
                    aggregation=aggregation, unit=unit, scale=scale)


def feed_value_published(feed_id: str, publisher: str, value: int, window_start_ms: int,
                         window_end_ms: int, source_count: int) -> Event:
    return Event.of(FEED_VALUE_PUBLISHED, feed_id=feed_id, publisher=publisher, value=value,
                    window_start_ms=window_start_ms, window_end_ms=window_end_ms,
                    source_count=source_count)
