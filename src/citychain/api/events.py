"""Live events (Server-Sent Events and WebSocket) with resume; filled in by the events work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["events"])
