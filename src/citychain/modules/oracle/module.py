"""The oracle module's registration record for the application."""

from __future__ import annotations

from citychain.core.module import Module, QueryParam
from citychain.modules.oracle import events, genesis, handlers, queries, state
from citychain.modules.oracle.messages import (
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgDecommissionDevice,
    MsgPublishFeedValue,
    MsgRegisterDevice,
    MsgUpdateDevice,
)

NAME = "oracle"

_EXAMPLE_ADDRESS = "3f2a9c1b7e5d4a6f8b0c2d4e6f8a0b1c2d3e4f50"
_EXAMPLE_HASH = "9c" * 32
ADDRESS = QueryParam("address", str, description="the device's address (40 hex)",
                     example=_EXAMPLE_ADDRESS)
DID = QueryParam("did", str, description="the device's DID (instead of address)",
                 example="did:city:" + _EXAMPLE_ADDRESS)
LIMIT = QueryParam("limit", int, description="page size (1..500, default 100)", example=100)
OWNER = QueryParam("owner", str, required=True, description="the operator's DID or address",
                   example="did:city:" + _EXAMPLE_ADDRESS)
START_AFTER_DEVICE = QueryParam("start_after", str, description="list devices after this "
                                "address or DID", example=_EXAMPLE_ADDRESS)
FEED_ID = QueryParam("feed_id", str, required=True, description="a feed id",
                     example="pm25-mean-centre")

MODULE = Module(
    name=NAME,
    handlers={
        MsgRegisterDevice: handlers.handle_register_device,
        MsgUpdateDevice: handlers.handle_update_device,
        MsgDecommissionDevice: handlers.handle_decommission_device,
        MsgAnchorBatch: handlers.handle_anchor_batch,
        MsgDeclareFeed: handlers.handle_declare_feed,
        MsgPublishFeedValue: handlers.handle_publish_feed_value,
    },
    queries={
        "device": queries.query_device,
        "devices": queries.query_devices,
        "device_records": queries.query_device_records,
        "anchor": queries.query_anchor,
        "anchors_by_device": queries.query_anchors_by_device,
        "feed": queries.query_feed,
        "feed_value": queries.query_feed_value,
        "feed_history": queries.query_feed_history,
        "params": queries.query_params,
    },
    provable_queries=frozenset({"device", "anchor", "feed", "feed_value", "params"}),
    query_params={
        "device": (ADDRESS, DID),
        "devices": (OWNER, START_AFTER_DEVICE, LIMIT),
        "device_records": (OWNER, START_AFTER_DEVICE,
                           QueryParam("limit", int, description="page size (1.."
                                      f"{queries.MAX_RECORDS_LIMIT}, default 100)",
                                      example=100)),
        "anchor": (QueryParam("batch_id", str, description="the batch id (64 hex)",
                              example=_EXAMPLE_HASH),
                   QueryParam("merkle_root", str, description="the batch's Merkle root "
                              "(64 hex), instead of batch_id", example=_EXAMPLE_HASH),
                   QueryParam("devices", int, description="1 (default): list the device "
                              "DIDs; 0: leave them out (device_count stays)", example=1)),
        "anchors_by_device": (
            ADDRESS, DID,
            QueryParam("from_ms", int, required=True,
                       description="start of the time range (UNIX ms)", example=1767225600000),
            QueryParam("to_ms", int, description="end of the time range (UNIX ms, inclusive; "
                       "default from_ms)", example=1767229200000),
            QueryParam("start_after", str, description="cursor FIRST_MS:BATCH_ID from "
                       "next_start_after", example="1767225600000:" + _EXAMPLE_HASH),
            LIMIT),
        "feed": (FEED_ID,),
        "feed_value": (FEED_ID, QueryParam("window_end_ms", int, description="the value whose "
                                           "window ends here (default: the latest)",
                                           example=1767229200000)),
        "feed_history": (FEED_ID, QueryParam("start_after", int, description="list values "
                                             "whose window ends after this (UNIX ms)",
                                             example=1767225600000), LIMIT),
        "params": (),
    },
    event_types=events.EVENT_TYPES,
    init_genesis=genesis.init_genesis,
    export_genesis=genesis.export_genesis,
    query_indexes=(state.DEVICE_ANCHOR_INDEX,),
)
