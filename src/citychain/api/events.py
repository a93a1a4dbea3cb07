"""Live events (Server-Sent Events and WebSocket) with resume, and their history as pages.

Every event a committed block emitted has the id ``<height>.<n>``, ``n`` counting all of the
block's events in order (each tx's in tx order, then the block's own) before any filter, so an
id names the same event whatever a client filters on and ids increase strictly. The gateway
keeps no events: it reads them back from the node block by block (``block_events``), so a
client that resumes after a gateway restart with its last id loses nothing and sees nothing
twice. A stream follows the chain by polling the node's status; it never skips or repeats a
height, and while the node cannot be reached it keeps retrying (the client only sees a delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from citychain.api.gateway import Gateway, gateway_of
from citychain.api.node import NodeAnswerError, NodeUnavailableError
from citychain.api.problems import Problem
from citychain.api.routes.common import PROBLEMS, node_problems
from citychain.core.crypto import address_from_did, did_from_address, is_address

__all__ = [
    "EventAnswer",
    "EventFilter",
    "EventPage",
    "EventStreamResponse",
    "Position",
    "SharedReads",
    "end_streams",
    "follow_events",
    "read_block_events",
    "router",
]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
"""Silence after which an SSE stream sends a comment line, so proxies keep the connection."""
RETRY_MILLISECONDS = 3000
"""The reconnection delay an SSE stream asks of EventSource clients."""
SCAN_BLOCKS_PER_PAGE = 100
"""The most blocks one history page reads; a page that stops there says so in next_cursor."""
READ_AHEAD = 8
"""Blocks a history page reads from the node at once."""
RECENT_BLOCKS = 64
"""Blocks whose events a gateway keeps for the streams that follow the tip."""

EVENT_ID = re.compile(r"^([1-9][0-9]{0,17})\.([0-9]{1,9})$")
HEIGHT_CURSOR = re.compile(r"^(0|[1-9][0-9]{0,17})$")

Position = tuple[int, int]
"""Where a reader stands: ``(height, n)``; it reads the events strictly after that one.
``(h, -1)`` is "from block h on"."""

ADDRESS = "9668bde55ab58912bc4e10ffdba2953cb268bb26"
HASH = "fe96c8ed04c9426d0d32e17c14dd053fbd10ead79193533c7eb3f6d5aa0e4eb0"
EVENT_EXAMPLE: dict[str, Any] = {
    "id": "42.0", "height": 42, "n": 0, "tx_index": 0, "tx_hash": HASH, "module": "bank",
    "type": "coins_transferred",
    "attributes": {"amount": "250", "denom": "ucity", "recipient": f"did:city:{ADDRESS}",
                   "sender": "did:city:2d659ac3dafe445894ec7fb6d8504acb39201c3e"}}
SSE_EXAMPLE = (f"retry: {RETRY_MILLISECONDS}\n\n"
               "id: 42.0\nevent: coins_transferred\n"
               f"data: {json.dumps(EVENT_EXAMPLE, separators=(',', ':'))}\n\n"
               ": keep-alive\n\n")


class EventAnswer(BaseModel):
    """One event of a committed block."""

    model_config = ConfigDict(json_schema_extra={"examples": [EVENT_EXAMPLE]},
                              use_attribute_docstrings=True)
    id: str
    """``<height>.<n>``: resume after it with ``after`` or ``Last-Event-ID``."""
    height: int
    n: int
    """The event's place among all of its block's events (from 0, before any filter)."""
    tx_index: int | None
    """The index of the tx in its block; null for the block's own events (end-block work)."""
    tx_hash: str | None
    """The hash of the tx (hex); null for the block's own events."""
    module: str
    """The module that declares the event type ("" if none does)."""
    type: str
    attributes: dict[str, str]


class EventPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [EVENT_EXAMPLE], "next_cursor": "42.0"}]}, use_attribute_docstrings=True)
    items: list[EventAnswer]
    next_cursor: str | None
    """Pass it as ``cursor`` (with the same parameters) for the next page; null at the end."""


# -- reading and filtering


async def read_block_events(gateway: Gateway, height: int) -> list[dict[str, Any]]:
    """Every event of committed block ``height`` as the API shows it, in order, unfiltered.

    Raises:
        NotFoundError: the node has no committed block ``height``.
        NodeUnavailableError, NodeAnswerError: the node cannot be asked.
    """
    block = await gateway.node.block_events(height)
    if block.height != height:
        raise NodeAnswerError(f"block_results: asked for height {height}, got {block.height}")
    out = []
    for n, (tx_index, tx_hash, event) in enumerate(block.events):
        kind = str(event["type"])
        out.append({"id": f"{height}.{n}", "height": height, "n": n, "tx_index": tx_index,
                    "tx_hash": tx_hash if tx_index is not None else None,
                    "module": gateway.module_of_event(kind), "type": kind,
                    "attributes": {str(key): str(value) for key, value in event["attributes"]}})
    return out


@dataclass(frozen=True)
class EventFilter:
    """Which events a reader wants: each given set must match (empty sets match anything)."""

    modules: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    """Attribute values naming the account: its address and its DID."""

    def matches(self, event: dict[str, Any]) -> bool:
        if self.modules and event["module"] not in self.modules:
            return False
        if self.types and event["type"] not in self.types:
            return False
        return not self.accounts or any(value in self.accounts
                                        for value in event["attributes"].values())


def _names(values: Iterable[str] | None) -> list[str]:
    """Repeated and comma-separated values as one list."""
    return [name.strip() for value in values or () for name in value.split(",")
            if name.strip()]


def build_filter(gateway: Gateway, modules: Iterable[str] | None, types: Iterable[str] | None,
                 account: str | None) -> EventFilter:
    """The filter for the ``module``, ``type`` and ``account`` parameters.

    Raises:
        Problem: an unknown module or event type, a type outside the modules asked for, or an
            account that is neither an address nor a did:city DID (400, the field named).
    """
    known = {module.name for module in gateway.modules}
    module_names = _names(modules)
    for name in module_names:
        if name not in known:
            raise Problem.api("invalid_request", f"module {name!r} is not one of "
                              f"{', '.join(sorted(known))}", field="module")
    type_names = _names(types)
    for name in type_names:
        owner = gateway.module_of_event(name)
        if not owner:
            raise Problem.api("invalid_request", f"{name!r} is not an event type any module "
                              "declares", field="type")
        if module_names and owner not in module_names:
            raise Problem.api("invalid_request", f"event type {name!r} belongs to module "
                              f"{owner!r}, which the module filter leaves out", field="type")
    accounts: frozenset[str] = frozenset()
    if account is not None:
        text = account.strip()
        address = address_from_did(text) if text.startswith("did:") else text.lower()
        if address is None or not is_address(address):
            raise Problem.api("invalid_request", f"account {account!r} is not an address "
                              "(40 hex) or a did:city DID", field="account")
        accounts = frozenset({address, did_from_address(address)})
    return EventFilter(frozenset(module_names), frozenset(type_names), accounts)


def parse_event_id(text: str, field: str) -> Position:
    """``<height>.<n>`` as a position.

    Raises:
        Problem: ``text`` is not an event id (400 naming ``field``).
    """
    match = EVENT_ID.match(text.strip())
    if match is None:
        raise Problem.api("invalid_request", f"{field} {text!r} is not an event id "
                          "(<height>.<n>, e.g. 42.0)", field=field)
    return int(match.group(1)), int(match.group(2))


def parse_height(text: str | None, field: str) -> int | None:
    """A height query parameter given as text (WebSocket parameters are not typed).

    Raises:
        Problem: not an integer from 1 to 2**62 (400 naming ``field``).
    """
    if text is None:
        return None
    if not HEIGHT_CURSOR.match(text.strip()) or not 1 <= int(text) <= 2**62:
        raise Problem.api("invalid_request", f"{field} {text!r} is not a height (1 or more)",
                          field=field)
    return int(text)


def start_position(from_height: int | None, after: str | None,
                   last_event_id: str | None) -> Position | None:
    """Where a stream starts: after ``Last-Event-ID`` (a reconnecting EventSource sends it
    with its original URL, so it wins), else after ``after``, else at ``from_height``; None
    is live (from the next block).

    Raises:
        Problem: an id that is not an event id (400).
    """
    if last_event_id is not None and last_event_id.strip():
        return parse_event_id(last_event_id, "Last-Event-ID")
    if after is not None:
        return parse_event_id(after, "after")
    if from_height is not None:
        return from_height, -1
    return None


async def live_position(gateway: Gateway, start: Position | None) -> Position | None:
    """``start``, or for a live stream the position after the current tip (None if the node
    cannot tell now: the stream then takes the tip when the node answers)."""
    if start is not None:
        return start
    try:
        return (await gateway.node.status()).latest_height + 1, -1
    except (NodeUnavailableError, NodeAnswerError):
        return None


class SharedReads:
    """What the streams of one gateway read alike, read once: the tip (at most one status call
    per poll interval, however many streams poll) and the events of recent blocks (one read per
    block, however many streams follow it). A committed block's events never change, so keeping
    them is safe; the cached lists are shared and never modified."""

    def __init__(self, gateway: Gateway, *, keep_blocks: int = RECENT_BLOCKS) -> None:
        self.gateway = gateway
        self.keep_blocks = keep_blocks
        self._tip = 0
        self._tip_read_at = -math.inf
        self._blocks: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        self._reading: dict[Hashable, asyncio.Future[Any]] = {}

    async def tip(self) -> int:
        """The latest height, read at most one poll interval ago.

        Raises:
            NodeUnavailableError, NodeAnswerError: the node cannot be asked.
        """
        if time.monotonic() - self._tip_read_at < self.gateway.settings.event_poll_seconds:
            return self._tip
        tip: int = await self._once("tip", self._read_tip)
        return tip

    async def block(self, height: int) -> list[dict[str, Any]]:
        """The events of committed block ``height`` (see :func:`read_block_events`).

        Raises:
            NotFoundError, NodeUnavailableError, NodeAnswerError: as read_block_events.
        """
        events = self._blocks.get(height)
        if events is not None:
            self._blocks.move_to_end(height)
            return events
        read: list[dict[str, Any]] = await self._once(("block", height),
                                                      partial(self._read_block, height))
        return read

    async def _read_tip(self) -> int:
        tip = (await self.gateway.node.status()).latest_height
        self._tip, self._tip_read_at = max(self._tip, tip), time.monotonic()
        return self._tip

    async def _read_block(self, height: int) -> list[dict[str, Any]]:
        events = await read_block_events(self.gateway, height)
        self._blocks[height] = events
        while len(self._blocks) > self.keep_blocks:
            self._blocks.popitem(last=False)
        return events

    async def _once(self, key: Hashable, read: Callable[[], Awaitable[Any]]) -> Any:
        """``read()``, shared with every caller asking for ``key`` while it runs; a caller that
        leaves (is cancelled) does not cancel it for the others."""
        future = self._reading.get(key)
        if future is None:
            future = asyncio.ensure_future(read())
            self._reading[key] = future
            future.add_done_callback(partial(self._read_done, key))
        return await asyncio.shield(future)

    def _read_done(self, key: Hashable, future: asyncio.Future[Any]) -> None:
        self._reading.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved, even if every caller has left


def shared_reads(app: Starlette) -> SharedReads:
    """The app's :class:`SharedReads` (made on first use)."""
    reads = getattr(app.state, "event_shared_reads", None)
    if not isinstance(reads, SharedReads):
        reads = SharedReads(app.state.gateway)
        app.state.event_shared_reads = reads
    return reads


async def follow_events(reads: SharedReads, start: Position | None,
                        event_filter: EventFilter) -> AsyncGenerator[dict[str, Any] | None]:
    """The matching events after ``start`` (None: from the next block), block after block as
    the chain commits them, forever. Yields None whenever it waits (for a block or for the
    node), so a consumer can send heartbeats. Node failures are retried, never skipped."""
    gateway = reads.gateway
    poll = gateway.settings.event_poll_seconds
    failing = False
    while start is None:
        start = await live_position(gateway, None)
        if start is None:
            if not failing:
                log.warning("events: the node cannot be reached; retrying every %s s", poll)
                failing = True
            yield None
            await asyncio.sleep(poll)
    height, tip = start[0], 0
    while True:
        try:
            if height > tip:
                tip = await reads.tip()
            if height > tip:
                yield None
                await asyncio.sleep(poll)
                continue
            events = await reads.block(height)
        except (NodeUnavailableError, NodeAnswerError) as exc:
            if not failing:
                log.warning("events: reading block %d failed (%s); retrying every %s s",
                            height, exc, poll)
                failing = True
            yield None
            await asyncio.sleep(poll)
            continue
        failing = False
        for event in events:
            if (height, event["n"]) > start and event_filter.matches(event):
                yield event
        yield None  # a block with nothing to send still lets the consumer send a heartbeat
        height += 1


# -- shutdown


def _closing(app: Starlette) -> asyncio.Event:
    closing = getattr(app.state, "event_streams_closing", None)
    if not isinstance(closing, asyncio.Event):
        closing = asyncio.Event()
        app.state.event_streams_closing = closing
    return closing


def end_streams(app: object) -> None:
    """End every open event stream of ``app`` (SSE and WebSocket) and any opened later; any
    other ASGI app is left alone.

    The server calls it when it starts to stop: an open stream would otherwise hold the
    server's wait for its connections forever.
    """
    if isinstance(app, Starlette):
        _closing(app).set()


async def _first_of(*jobs: Awaitable[object]) -> int:
    """Run ``jobs`` until the first ends, cancel the rest (also when cancelled itself), and
    return the index of the one that ended."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(index for index, task in enumerate(tasks) if task in done)
    if not tasks[first].cancelled() and tasks[first].exception() is not None:
        log.debug("events: stream ended: %r", tasks[first].exception())
    return first


# -- Server-Sent Events


def sse_frame(event: dict[str, Any]) -> str:
    name = event["type"] if re.fullmatch(r"[A-Za-z0-9_.:-]+", event["type"]) else "message"
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {name}\ndata: {data}\n\n"


async def sse_frames(events: AsyncGenerator[dict[str, Any] | None], *,
                     heartbeat: float = HEARTBEAT_SECONDS) -> AsyncGenerator[str]:
    """Events as SSE frames, with a comment when the stream was silent ``heartbeat`` s."""
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    last_write = time.monotonic()
    async with contextlib.aclosing(events):
        async for event in events:
            if event is not None:
                yield sse_frame(event)
            elif time.monotonic() - last_write >= heartbeat:
                yield ": keep-alive\n\n"
            else:
                continue
            last_write = time.monotonic()


class EventStreamResponse(Response):
    """A ``text/event-stream`` answer that ends when the client leaves or the server stops."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncGenerator[str], closing: asyncio.Event) -> None:
        self.frames, self.closing = frames, closing
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})

        async def pump() -> None:
            async for frame in self.frames:
                await send({"type": "http.response.body", "body": frame.encode(),
                            "more_body": True})

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            ended = await _first_of(pump(), client_gone(), self.closing.wait())
        finally:
            await self.frames.aclose()
        if ended != 1:  # the client is still there: end the response properly
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


# -- routes

router = APIRouter(tags=["events"])

GatewayDep = Annotated[Gateway, Depends(gateway_of)]
ModuleParam = Annotated[list[str] | None, Query(
    description="only events of these modules (repeat or comma-separate)",
    examples=[["bank"], ["bank", "identity"]])]
TypeParam = Annotated[list[str] | None, Query(
    alias="type", description="only events of these types (repeat or comma-separate)",
    examples=[["coins_transferred"]])]
AccountParam = Annotated[str | None, Query(
    description="only events with an attribute equal to this account's address or DID",
    examples=[f"did:city:{ADDRESS}", ADDRESS], max_length=80)]
AfterParam = Annotated[str | None, Query(
    description="resume: the events strictly after this event id", examples=["42.0"],
    max_length=40)]
STREAM_DESCRIPTION = f"""\
Events of committed blocks as they commit, as Server-Sent Events: each event's `id:` is its
event id, `event:` its type and `data:` the event as JSON (the shape of the history route's
items). A comment line comes after {HEARTBEAT_SECONDS:g} s of silence.

Start: `Last-Event-ID` (sent by a reconnecting EventSource; wins over the rest), else `after`
(both: the events strictly after that id), else `from_height` (the events of that block on;
above the tip the stream waits), else the next block. Ids increase strictly and events are
read back from the chain, so resuming with the last id received gives every later event exactly
once, across gateway restarts.

`WS /v1/events/ws` is the same stream over a WebSocket with the same query parameters (and
`after` for resuming): one JSON event per text message. A bad parameter gets a message
`{{"error": <problem>}}`, then close code 1008.
"""

PROBLEM_SCHEMA = {"$ref": "#/components/schemas/ProblemAnswer"}  # PROBLEMS puts it there
STREAM_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": description,
             "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}
    for status, description in list[tuple[int | str, str]]([
        (400, "a bad parameter (the field is named): unknown module or type, bad account or id"),
        (429, "rate limited (see Retry-After)"),
        ("4XX", "any other client error")])}


@router.get(
    "/v1/events", summary="Live events (Server-Sent Events) with resume",
    description=STREAM_DESCRIPTION, response_class=EventStreamResponse, status_code=200,
    responses={**STREAM_PROBLEMS,
               200: {"description": "an endless event stream",
                     "content": {"text/event-stream": {"example": SSE_EXAMPLE,
                                                       "schema": {"type": "string"}}}}})
async def stream_events(
    request: Request,
    gateway: GatewayDep,
    module: ModuleParam = None,
    types: TypeParam = None,
    account: AccountParam = None,
    from_height: Annotated[int | None, Query(
        ge=1, le=2**62, description="resume: the events of this block on", examples=[42])] = None,
    after: AfterParam = None,
    last_event_id: Annotated[str | None, Header(
        alias="Last-Event-ID", description="resume (EventSource): the events strictly after "
        "this event id", examples=["42.0"], max_length=40)] = None,
) -> EventStreamResponse:
    event_filter = build_filter(gateway, module, types, account)
    start = await live_position(gateway, start_position(from_height, after, last_event_id))
    return EventStreamResponse(
        sse_frames(follow_events(shared_reads(request.app), start, event_filter)),
        _closing(request.app))


def _close_reason(text: str) -> str:
    """A WebSocket close reason: at most 123 bytes of UTF-8."""
    return text.encode()[:123].decode(errors="ignore")


@router.websocket("/v1/events/ws")
async def stream_events_ws(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    query = websocket.query_params
    try:
        event_filter = build_filter(gateway, query.getlist("module"), query.getlist("type"),
                                    query.get("account"))
        start = start_position(parse_height(query.get("from_height"), "from_height"),
                               query.get("after"), websocket.headers.get("last-event-id"))
    except Problem as problem:
        await websocket.accept()
        await websocket.send_json({"error": problem.to_value(websocket.url.path)})
        await websocket.close(code=1008, reason=_close_reason(problem.detail))
        return
    start = await live_position(gateway, start)
    closing = _closing(websocket.app)
    await websocket.accept()

    async def pump() -> None:
        followed = follow_events(shared_reads(websocket.app), start, event_filter)
        async with contextlib.aclosing(followed) as events:
            async for event in events:
                if event is not None:
                    await websocket.send_text(json.dumps(event, separators=(",", ":")))

    async def client_gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    ended = await _first_of(pump(), client_gone(), closing.wait())
    if ended != 1:
        with contextlib.suppress(Exception):
            await websocket.close(code=1001, reason="the gateway is stopping")


@router.get(
    "/v1/events/history", response_model=EventPage, responses=PROBLEMS,
    summary="Past events as cursor-paginated JSON",
    description="The events of blocks `from_height`..`to_height` (default: the tip now) that "
                "match the filters, oldest first, the same ids as the stream. Pass the same "
                "parameters with `cursor=next_cursor` for the next page. A page reads at most "
                f"{SCAN_BLOCKS_PER_PAGE} blocks: when it stops there, it may have fewer than "
                "`limit` items (even none) and `next_cursor` is the last height it read. "
                "`next_cursor` is null once `to_height` is covered; when `to_height` is above "
                "the tip the last page's cursor lets you continue once more blocks commit.")
async def list_events(
    gateway: GatewayDep,
    module: ModuleParam = None,
    types: TypeParam = None,
    account: AccountParam = None,
    from_height: Annotated[int, Query(
        ge=1, le=2**62, description="the first block to read", examples=[1])] = 1,
    to_height: Annotated[int | None, Query(
        ge=1, le=2**62, description="the last block to read (default: the tip now)",
        examples=[42])] = None,
    cursor: Annotated[str | None, Query(
        description="next_cursor of the previous page", examples=["42.0"], max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="page size", examples=[20])] = 20,
) -> EventPage:
    event_filter = build_filter(gateway, module, types, account)
    if to_height is not None and to_height < from_height:
        raise Problem.api("invalid_request", f"to_height {to_height} is below from_height "
                          f"{from_height}", field="to_height")
    position: Position = (from_height, -1)
    if cursor is not None:
        text = cursor.strip()
        if HEIGHT_CURSOR.match(text):
            position = (int(text) + 1, -1)
        else:
            position = parse_event_id(text, "cursor")
        position = max(position, (from_height, -1))
    with node_problems():
        tip = (await gateway.node.status()).latest_height
    last = tip if to_height is None else min(to_height, tip)
    items: list[dict[str, Any]] = []
    height = position[0]
    end = min(last, height + SCAN_BLOCKS_PER_PAGE - 1)
    while height <= end:
        heights = range(height, min(height + READ_AHEAD, end + 1))
        with node_problems("the events of a block"):
            blocks = await asyncio.gather(*(read_block_events(gateway, h) for h in heights))
        for events in blocks:
            for event in events:
                if (event["height"], event["n"]) <= position or not event_filter.matches(event):
                    continue
                items.append(event)
                if len(items) == limit:
                    done = event["height"] == last and event["n"] == len(events) - 1
                    complete = done and (to_height is None or to_height <= tip)
                    return EventPage(items=[EventAnswer(**item) for item in items],
                                     next_cursor=None if complete else event["id"])
        height = heights[-1] + 1
    complete = height > last and (to_height is None or to_height <= tip)
    if complete:
        next_cursor = None
    elif height == position[0] and position[1] >= 0:  # read nothing: stay where we were
        next_cursor = f"{position[0]}.{position[1]}"
    else:
        next_cursor = str(height - 1)
    return EventPage(items=[EventAnswer(**item) for item in items], next_cursor=next_cursor)
