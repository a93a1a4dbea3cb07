"""Oracle message handlers: every check runs before the first write; events go through ctx.

A device's key and suspension belong to the identity module and are read through its facade
at every use, so a suspension or a key rotation takes effect in the next transaction.
"""

from __future__ import annotations

from dataclasses import replace

from citychain.core.context import TxContext
from citychain.core.crypto import address_from_did
from citychain.core.errors import InvalidMessageError
from citychain.core.state import ReadView, StateView
from citychain.modules.identity import api as identity
from citychain.modules.oracle import events, state
from citychain.modules.oracle.errors import (
    AnchorNotAllowedError,
    BatchDeviceLimitExceededError,
    BatchRootAlreadyAnchoredError,
    BatchSpanExceededError,
    CoverageLimitExceededError,
    DeviceAlreadyRegisteredError,
    DeviceDecommissionedError,
    DeviceIdentityNotFoundError,
    DeviceNotActiveError,
    DeviceNotFoundError,
    DeviceRoleMissingError,
    FeedAlreadyExistsError,
    FeedNotFoundError,
    FeedValueOutOfRangeError,
    FeedWindowNotAfterLatestError,
    NotDeviceOwnerError,
    NotFeedPublisherError,
    PreviousBatchNotFoundError,
    PreviousBatchOperatorMismatchError,
    SourceBatchNotFoundError,
    SourceBatchOutsideWindowError,
    SourceLimitExceededError,
    StreamLimitExceededError,
    TimestampInFutureError,
)
from citychain.modules.oracle.messages import (
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgDecommissionDevice,
    MsgPublishFeedValue,
    MsgRegisterDevice,
    MsgUpdateDevice,
    parse_hash_list,
    parse_streams,
)
from citychain.modules.oracle.params import MAX_FEED_SOURCES
from citychain.modules.oracle.types import (
    AGGREGATION_COUNT,
    AGGREGATION_RATIO_BP,
    DEVICE_TYPE_GATEWAY,
    MAX_BASIS_POINTS,
    STATUS_DECOMMISSIONED,
    Anchor,
    Device,
    Feed,
    FeedValue,
    Location,
    Stream,
    compute_batch_id,
)

NS_PER_MS = 1_000_000


def handle_register_device(view: StateView, ctx: TxContext, msg: MsgRegisterDevice) -> None:
    """Register an identity holding the device role as a device owned by the sender.

    Raises:
        RoleRequiredError: the sender is not an active operator.
        DeviceIdentityNotFoundError, DeviceNotActiveError, DeviceRoleMissingError,
        DeviceAlreadyRegisteredError, StreamLimitExceededError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_OPERATOR)
    address = _did_address(msg.did, "did")
    account = identity.get_account(view, address)
    if account is None:
        raise DeviceIdentityNotFoundError(f"{msg.did} has no identity; a registrar or operator "
                                          "creates it first", field="did")
    if account.suspended:
        raise DeviceNotActiveError(f"{msg.did} is suspended", field="did")
    if identity.ROLE_DEVICE not in account.roles:
        raise DeviceRoleMissingError(f"{msg.did} does not hold the device role",
                                     field="did", held=list(account.roles))
    existing = state.get_device(view, address)
    if existing is not None:
        raise DeviceAlreadyRegisteredError(
            f"{msg.did} is already registered (status {existing.status}, owner "
            f"{identity.did_of(existing.owner)})", field="did", status=existing.status)
    streams = _checked_streams(view, msg.streams)
    device = Device(address=address, owner=ctx.sender, device_type=msg.device_type,
                    location=Location(msg.district, msg.has_coordinates, msg.latitude_udeg,
                                      msg.longitude_udeg),
                    streams=streams, registered_height=ctx.height, updated_height=ctx.height)
    state.set_device(view, device)
    ctx.emit(events.device_registered(msg.did, identity.did_of(ctx.sender), msg.device_type,
                                      msg.district, len(streams)))


def handle_update_device(view: StateView, ctx: TxContext, msg: MsgUpdateDevice) -> None:
    """Replace the location and streams of a registered device the sender owns.

    Raises:
        RoleRequiredError, DeviceNotFoundError, NotDeviceOwnerError, DeviceDecommissionedError,
        StreamLimitExceededError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_OPERATOR)
    device = _owned_device(view, ctx.sender, msg.did)
    streams = _checked_streams(view, msg.streams)
    location = Location(msg.district, msg.has_coordinates, msg.latitude_udeg,
                        msg.longitude_udeg)
    state.set_device(view, replace(device, location=location, streams=streams,
                                   updated_height=ctx.height))
    ctx.emit(events.device_updated(msg.did, identity.did_of(ctx.sender), msg.district,
                                   len(streams)))


def handle_decommission_device(view: StateView, ctx: TxContext,
                               msg: MsgDecommissionDevice) -> None:
    """Retire a registered device the sender owns (its record and anchors stay).

    Raises:
        RoleRequiredError, DeviceNotFoundError, NotDeviceOwnerError, DeviceDecommissionedError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_OPERATOR)
    device = _owned_device(view, ctx.sender, msg.did)
    state.set_device(view, replace(device, status=STATUS_DECOMMISSIONED,
                                   decommissioned_height=ctx.height))
    ctx.emit(events.device_decommissioned(msg.did, identity.did_of(ctx.sender)))


def handle_anchor_batch(view: StateView, ctx: TxContext, msg: MsgAnchorBatch) -> None:
    """Anchor a batch's Merkle root for the operator owning every listed device.

    The sender is an active operator, or an active, registered Gateway device whose owner is
    an active operator; every listed device must be registered to that operator, not
    decommissioned, and active in the identity module.

    Raises:
        AnchorNotAllowedError, BatchDeviceLimitExceededError, BatchSpanExceededError,
        TimestampInFutureError, BatchRootAlreadyAnchoredError, PreviousBatchNotFoundError,
        PreviousBatchOperatorMismatchError, DeviceNotFoundError, DeviceDecommissionedError,
        NotDeviceOwnerError, DeviceNotActiveError.
    """
    operator = _anchoring_operator(view, ctx.sender)
    params = state.get_params(view)
    if len(msg.devices) > params.max_batch_devices:
        raise BatchDeviceLimitExceededError(
            f"the batch lists {len(msg.devices)} devices; at most {params.max_batch_devices} "
            "(split the batch)", field="devices", limit=params.max_batch_devices)
    span = msg.last_reading_ms - msg.first_reading_ms
    if span > params.max_batch_span_ms:
        raise BatchSpanExceededError(
            f"the readings span {span} ms; at most {params.max_batch_span_ms} ms",
            field="last_reading_ms", span=span, limit=params.max_batch_span_ms)
    _check_not_future(ctx, msg.last_reading_ms, "last_reading_ms", params.max_timestamp_skew_ms)
    existing = state.get_batch_id_by_root(view, msg.merkle_root)
    if existing is not None:
        raise BatchRootAlreadyAnchoredError(
            f"merkle_root {msg.merkle_root.hex()} is already anchored by batch {existing.hex()}",
            field="merkle_root", batch_id=existing)
    if msg.previous_batch_id:
        previous = state.get_anchor(view, msg.previous_batch_id)
        if previous is None:
            raise PreviousBatchNotFoundError(
                f"no anchored batch {msg.previous_batch_id.hex()}", field="previous_batch_id")
        if previous.operator != operator:
            raise PreviousBatchOperatorMismatchError(
                f"batch {msg.previous_batch_id.hex()} was anchored for "
                f"{identity.did_of(previous.operator)}, not {identity.did_of(operator)}",
                field="previous_batch_id")
    addresses = tuple(_batch_device(view, operator, did, f"devices[{index}]")
                      for index, did in enumerate(msg.devices))
    batch_id = compute_batch_id(msg.merkle_root, msg.devices, msg.first_reading_ms,
                                msg.last_reading_ms, msg.reading_count, msg.previous_batch_id)
    state.set_anchor(view, Anchor(
        batch_id=batch_id, merkle_root=msg.merkle_root, devices=addresses,
        first_reading_ms=msg.first_reading_ms, last_reading_ms=msg.last_reading_ms,
        reading_count=msg.reading_count, previous_batch_id=msg.previous_batch_id,
        operator=operator, submitter=ctx.sender, height=ctx.height, time_ns=ctx.time_ns),
        device_keys=bool(params.device_anchor_keys_in_state))
    ctx.emit(events.batch_anchored(batch_id, msg.merkle_root, identity.did_of(operator),
                                   identity.did_of(ctx.sender), len(addresses),
                                   msg.first_reading_ms, msg.last_reading_ms,
                                   msg.reading_count, msg.previous_batch_id))


def handle_declare_feed(view: StateView, ctx: TxContext, msg: MsgDeclareFeed) -> None:
    """Declare a feed published by the sender.

    Raises:
        RoleRequiredError, FeedAlreadyExistsError, CoverageLimitExceededError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_OPERATOR)
    existing = state.get_feed(view, msg.feed_id)
    if existing is not None:
        raise FeedAlreadyExistsError(f"feed {msg.feed_id} is already declared by "
                                     f"{identity.did_of(existing.publisher)}", field="feed_id")
    limit = state.get_params(view).max_feed_coverage
    if len(msg.coverage) > limit:
        raise CoverageLimitExceededError(f"coverage lists {len(msg.coverage)} codes; at most "
                                         f"{limit}", field="coverage", limit=limit)
    state.set_feed(view, Feed(msg.feed_id, ctx.sender, msg.description, msg.unit, msg.scale,
                              msg.aggregation, msg.coverage, ctx.height))
    ctx.emit(events.feed_declared(msg.feed_id, identity.did_of(ctx.sender), msg.aggregation,
                                  msg.unit, msg.scale))


def handle_publish_feed_value(view: StateView, ctx: TxContext, msg: MsgPublishFeedValue) -> None:
    """Publish a feed value computed from anchored batches that overlap its window.

    Raises:
        RoleRequiredError, FeedNotFoundError, NotFeedPublisherError, FeedValueOutOfRangeError,
        SourceLimitExceededError, TimestampInFutureError, FeedWindowNotAfterLatestError,
        SourceBatchNotFoundError, SourceBatchOutsideWindowError.
    """
    identity.check_role(view, ctx.sender, identity.ROLE_OPERATOR)
    feed = state.get_feed(view, msg.feed_id)
    if feed is None:
        raise FeedNotFoundError(f"no feed {msg.feed_id}", field="feed_id")
    if feed.publisher != ctx.sender:
        raise NotFeedPublisherError(f"feed {msg.feed_id} is published by "
                                    f"{identity.did_of(feed.publisher)}", field="sender")
    _check_value_range(feed, msg.value)
    params = state.get_params(view)
    if len(msg.source_batch_ids) > params.max_feed_sources:
        raise SourceLimitExceededError(
            f"source_batch_ids lists {len(msg.source_batch_ids)} batches; at most "
            f"{params.max_feed_sources}", field="source_batch_ids",
            limit=params.max_feed_sources)
    _check_not_future(ctx, msg.window_end_ms, "window_end_ms", params.max_timestamp_skew_ms)
    latest = state.get_latest_value(view, msg.feed_id)
    if latest is not None and msg.window_end_ms <= latest.window_end_ms:
        raise FeedWindowNotAfterLatestError(
            f"window_end_ms {msg.window_end_ms} must be after the latest value's "
            f"{latest.window_end_ms}", field="window_end_ms", latest=latest.window_end_ms)
    batch_ids = parse_hash_list(msg.source_batch_ids, "source_batch_ids", MAX_FEED_SOURCES)
    for index, batch_id in enumerate(batch_ids):
        where = f"source_batch_ids[{index}]"
        anchor = state.get_anchor(view, batch_id)
        if anchor is None:
            raise SourceBatchNotFoundError(f"no anchored batch {batch_id.hex()}", field=where)
        if not anchor.overlaps(msg.window_start_ms, msg.window_end_ms):
            raise SourceBatchOutsideWindowError(
                f"batch {batch_id.hex()} holds readings from {anchor.first_reading_ms} to "
                f"{anchor.last_reading_ms}, outside the window [{msg.window_start_ms}, "
                f"{msg.window_end_ms})", field=where)
    state.add_value(view, FeedValue(msg.feed_id, msg.value, feed.scale, msg.window_start_ms,
                                    msg.window_end_ms, batch_ids, ctx.height, ctx.time_ns))
    ctx.emit(events.feed_value_published(msg.feed_id, identity.did_of(ctx.sender), msg.value,
                                         msg.window_start_ms, msg.window_end_ms,
                                         len(batch_ids)))


def _did_address(did: str, field: str) -> str:
    address = address_from_did(did)
    if address is None:
        raise InvalidMessageError(f"{field} must be a did:city DID, got {did!r}", field=field)
    return address


def _checked_streams(view: ReadView, specs: tuple[str, ...]) -> tuple[Stream, ...]:
    streams = parse_streams(specs)
    limit = state.get_params(view).max_device_streams
    if len(streams) > limit:
        raise StreamLimitExceededError(f"streams lists {len(streams)} streams; at most {limit}",
                                       field="streams", limit=limit)
    return streams


def _owned_device(view: ReadView, sender: str, did: str) -> Device:
    device = state.get_device(view, _did_address(did, "did"))
    if device is None:
        raise DeviceNotFoundError(f"no device {did} is registered", field="did")
    if device.owner != sender:
        raise NotDeviceOwnerError(f"{did} belongs to {identity.did_of(device.owner)}",
                                  field="did", owner=identity.did_of(device.owner))
    if device.decommissioned:
        raise DeviceDecommissionedError(f"{did} was decommissioned at height "
                                        f"{device.decommissioned_height}", field="did")
    return device


def _anchoring_operator(view: ReadView, sender: str) -> str:
    """Return the operator an anchor from ``sender`` is for (itself, or its gateway's owner)."""
    if identity.has_role(view, sender, identity.ROLE_OPERATOR):
        return sender
    gateway = state.get_device(view, sender)
    if (gateway is not None and gateway.device_type == DEVICE_TYPE_GATEWAY
            and not gateway.decommissioned
            and identity.has_role(view, sender, identity.ROLE_DEVICE)
            and identity.has_role(view, gateway.owner, identity.ROLE_OPERATOR)):
        return gateway.owner
    raise AnchorNotAllowedError(
        f"{identity.did_of(sender)} may not anchor batches: it is neither an active operator nor "
        "an active Gateway device of one", field="sender")


def _batch_device(view: ReadView, operator: str, did: str, field: str) -> str:
    address = _did_address(did, field)
    device = state.get_device(view, address)
    if device is None:
        raise DeviceNotFoundError(f"no device {did} is registered", field=field)
    if device.decommissioned:
        raise DeviceDecommissionedError(f"{did} was decommissioned at height "
                                        f"{device.decommissioned_height}", field=field)
    if device.owner != operator:
        raise NotDeviceOwnerError(f"{did} belongs to {identity.did_of(device.owner)}, not "
                                  f"{identity.did_of(operator)}", field=field,
                                  owner=identity.did_of(device.owner))
    if not identity.has_role(view, address, identity.ROLE_DEVICE):
        raise DeviceNotActiveError(f"{did} is suspended or no longer holds the device role",
                                   field=field)
    return address


def _check_not_future(ctx: TxContext, time_ms: int, field: str, skew_ms: int) -> None:
    limit = ctx.time_ns // NS_PER_MS + skew_ms
    if time_ms > limit:
        raise TimestampInFutureError(
            f"{field} {time_ms} is past block time plus the allowed skew ({limit} ms)",
            field=field, limit=limit)


def _check_value_range(feed: Feed, value: int) -> None:
    if feed.aggregation == AGGREGATION_RATIO_BP and not 0 <= value <= MAX_BASIS_POINTS:
        raise FeedValueOutOfRangeError(f"a ratio_bp value is from 0 to {MAX_BASIS_POINTS}, got "
                                       f"{value}", field="value")
    if feed.aggregation == AGGREGATION_COUNT and value < 0:
        raise FeedValueOutOfRangeError(f"a count is never negative, got {value}", field="value")
