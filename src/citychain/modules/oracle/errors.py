"""Oracle errors: codespace "oracle", one stable code per class (listed in the spec page).

``field`` names the message field at fault (``devices[3]`` for one list entry); ``"sender"``
means the transaction's sender.
"""

from __future__ import annotations

from citychain.core.errors import ChainError


class OracleError(ChainError):
    codespace = "oracle"


class DeviceNotFoundError(OracleError):
    code = 1
    description = "no device is registered under this DID"


class DeviceAlreadyRegisteredError(OracleError):
    code = 2
    description = "the device is (or was, before decommissioning) already registered"


class DeviceIdentityNotFoundError(OracleError):
    code = 3
    description = "the device DID has no identity"


class DeviceRoleMissingError(OracleError):
    code = 4
    description = "the device's identity does not hold the device role"


class DeviceNotActiveError(OracleError):
    code = 5
    description = "the device's identity is suspended or no longer holds the device role"


class DeviceDecommissionedError(OracleError):
    code = 6
    description = "the device is decommissioned"


class NotDeviceOwnerError(OracleError):
    code = 7
    description = "the device belongs to another operator"


class StreamLimitExceededError(OracleError):
    code = 8
    description = "more streams than params.max_device_streams"


class BatchDeviceLimitExceededError(OracleError):
    code = 9
    description = "the batch lists more devices than params.max_batch_devices"


class BatchSpanExceededError(OracleError):
    code = 10
    description = "the batch's readings span more than params.max_batch_span_ms"


class TimestampInFutureError(OracleError):
    code = 11
    description = "a timestamp lies past block time plus params.max_timestamp_skew_ms"


class BatchRootAlreadyAnchoredError(OracleError):
    code = 12
    description = "this Merkle root is already anchored"


class AnchorNotAllowedError(OracleError):
    code = 13
    description = "the sender is neither an active operator nor an active gateway of one"


class PreviousBatchNotFoundError(OracleError):
    code = 14
    description = "the previous batch id names no anchored batch"


class PreviousBatchOperatorMismatchError(OracleError):
    code = 15
    description = "the previous batch was anchored for another operator"


class FeedNotFoundError(OracleError):
    code = 16
    description = "no feed is declared under this id"


class FeedAlreadyExistsError(OracleError):
    code = 17
    description = "a feed with this id is already declared"


class NotFeedPublisherError(OracleError):
    code = 18
    description = "only the feed's publisher may publish its values"


class SourceBatchNotFoundError(OracleError):
    code = 19
    description = "a source batch id names no anchored batch"


class SourceBatchOutsideWindowError(OracleError):
    code = 20
    description = "a source batch's readings do not overlap the value's window"


class FeedWindowNotAfterLatestError(OracleError):
    code = 21
    description = "the window does not end after the feed's latest value's window"


class FeedValueOutOfRangeError(OracleError):
    code = 22
    description = "the value is outside the range of the feed's aggregation"


class SourceLimitExceededError(OracleError):
    code = 23
    description = "more source batches than params.max_feed_sources"


class CoverageLimitExceededError(OracleError):
    code = 24
    description = "more covered districts or lines than params.max_feed_coverage"
