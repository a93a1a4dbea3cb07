"""Event subscription: follow the chain's events through a gateway's Server-Sent Events stream,
reconnecting after a drop (or a gateway restart) from the last event received, so a subscriber
sees every event exactly once and in order.

Events are the gateway's word (the chain's results are not proven event by event); a verifying
client checks what matters with a proven query or tx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from citychain.client.errors import GatewayUnavailableError

__all__ = ["ChainEvent", "EventFilter", "SseParser", "aiter_events", "iter_events"]

EVENTS_PATH = "/v1/events"


@dataclass(frozen=True)
class ChainEvent:
    """One event: ``id`` is ``<height>.<n>`` (``n``: its position among the block's events)."""

    id: str
    height: int
    n: int
    tx_index: int | None
    tx_hash: str | None
    module: str
    type: str
    attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> ChainEvent:
        return cls(str(value["id"]), int(value["height"]), int(value["n"]),
                   None if value.get("tx_index") is None else int(value["tx_index"]),
                   None if value.get("tx_hash") is None else str(value["tx_hash"]),
                   str(value["module"]), str(value["type"]),
                   {str(k): str(v) for k, v in dict(value["attributes"]).items()})


@dataclass(frozen=True)
class EventFilter:
    """What to subscribe to and where to start (``after`` wins over ``from_height``; neither:
    the next block)."""

    modules: Sequence[str] = ()
    types: Sequence[str] = ()
    account: str | None = None
    from_height: int | None = None
    after: str | None = None

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.modules:
            params["module"] = ",".join(self.modules)
        if self.types:
            params["type"] = ",".join(self.types)
        if self.account:
            params["account"] = self.account
        if self.from_height is not None:
            params["from_height"] = self.from_height
        if self.after is not None:
            params["after"] = self.after
        return params


class SseParser:
    """Turns lines of a ``text/event-stream`` into the ``data`` of each complete message."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """One line (without its newline); returns the message's data when ``line`` ends it."""
        if line == "":
            data, self._data = "\n".join(self._data), []
            return data or None
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        return None


def _decode(data: str) -> ChainEvent:
    try:
        return ChainEvent.from_value(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise GatewayUnavailableError(f"the gateway sent an event that is not what the API "
                                      f"documents: {exc!r}", status=200) from None


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    from citychain.client.api import error_for_response  # the one problem -> exception map

    response.read()
    raise error_for_response(EVENTS_PATH, response)


def iter_events(http: httpx.Client, selector: EventFilter, *, reconnect: bool = True,
                retry_seconds: float = 1.0, max_retries: int | None = None
                ) -> Iterator[ChainEvent]:
    """Follow events until the caller stops iterating.

    After a dropped connection it reconnects with ``Last-Event-ID`` (the last event yielded), so
    nothing is skipped or repeated; ``max_retries`` consecutive failures (None: no limit) end
    it with the last error.

    Raises:
        InvalidRequestError: a bad filter or start (the field is named).
        GatewayUnavailableError: the gateway cannot be reached (once retries are exhausted, or
            at once with ``reconnect=False``).
    """
    last_id: str | None = selector.after
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            with http.stream("GET", EVENTS_PATH, params=selector.params(), headers=headers,
                             timeout=httpx.Timeout(10.0, read=None)) as response:
                _raise_for(response)
                failures = 0
                parser = SseParser()
                for line in response.iter_lines():
                    data = parser.feed(line)
                    if data is not None:
                        event = _decode(data)
                        last_id = event.id
                        yield event
        except httpx.HTTPError as exc:
            failures += 1
            if not reconnect or (max_retries is not None and failures > max_retries):
                raise GatewayUnavailableError(f"the event stream failed: {type(exc).__name__}: "
                                              f"{exc}") from None
        if not reconnect:
            return
        time.sleep(retry_seconds)


async def aiter_events(http: httpx.AsyncClient, selector: EventFilter, *,
                       reconnect: bool = True, retry_seconds: float = 1.0,
                       max_retries: int | None = None) -> AsyncIterator[ChainEvent]:
    """The async form of :func:`iter_events` (same resume rule, same errors)."""
    last_id: str | None = selector.after
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            async with http.stream("GET", EVENTS_PATH, params=selector.params(),
                                   headers=headers,
                                   timeout=httpx.Timeout(10.0, read=None)) as response:
                if not response.is_success:
                    await response.aread()
                    _raise_for(response)
                failures = 0
                parser = SseParser()
                async for line in response.aiter_lines():
                    data = parser.feed(line)
                    if data is not None:
                        event = _decode(data)
                        last_id = event.id
                        yield event
        except httpx.HTTPError as exc:
            failures += 1
            if not reconnect or (max_retries is not None and failures > max_retries):
                raise GatewayUnavailableError(f"the event stream failed: {type(exc).__name__}: "
                                              f"{exc}") from None
        if not reconnect:
            return
        await asyncio.sleep(retry_seconds)


def event_filter(modules: Iterable[str] | str | None, types: Iterable[str] | str | None,
                 account: str | None, from_height: int | None,
                 after: str | None) -> EventFilter:
    """An EventFilter from the clients' keyword arguments (a name or several)."""
    def names(value: Iterable[str] | str | None) -> tuple[str, ...]:
        if value is None:
            return ()
        return (value,) if isinstance(value, str) else tuple(value)

    return EventFilter(names(modules), names(types), account, from_height, after)
