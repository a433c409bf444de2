"""One agent socket: a bounded send queue and a writer task around a Starlette WebSocket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.identity import Principal
from hub.protocol import EventStamper

log = logging.getLogger("lineup.ws")

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
# A client that cannot keep up is dropped with this code; it reconnects and gets a snapshot.
CLOSE_TOO_SLOW = 4408
CLOSE_KICKED = 4409

Renderer = Callable[[dict[str, Any]], str]


class AgentConnection:
    """Pushes stamped events to one socket without ever blocking the hub."""

    def __init__(self, websocket: WebSocket, agent: Principal, render: Renderer, queue_size: int) -> None:
        self.websocket = websocket
        self.agent = agent
        self._render = render
        self._stamper = EventStamper()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self._writer: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.agent.id}")

    def push(self, event: dict[str, Any], *, stamp: bool = True) -> None:
        """Queue an event; a full queue means the client is too slow and gets disconnected."""
        if self.closed.is_set():
            return
        frame = self._render(self._stamper.stamp(event) if stamp else event)
        if not frame:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("event=ws_too_slow agent=%s", self.agent.id)
            self.close(CLOSE_TOO_SLOW)

    def close(self, code: int) -> None:
        if self.closed.is_set():
            return
        self.close_code = code
        self.closed.set()
        # Wake the writer even when the queue is full.
        while True:
            try:
                self._queue.put_nowait(None)
                break
            except asyncio.QueueFull:
                self._queue.get_nowait()

    async def _write(self) -> None:
        try:
            while True:
                frame = await self._queue.get()
                if frame is None:
                    break
                await self.websocket.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self.closed.set()
            if self.close_code is not None:
                try:
                    await self.websocket.close(self.close_code)
                except (RuntimeError, OSError):
                    pass

    async def finish(self) -> None:
        self.close(self.close_code or 1000)
        if self._writer:
            await asyncio.gather(self._writer, return_exceptions=True)
