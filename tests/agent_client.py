"""A real websocket client of the agent protocol, recording every frame it receives."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class AgentClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._mailbox: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, ws_base: str, token: str, path: str = "/ws/agent") -> AgentClient:
        return cls(await websockets.connect(f"{ws_base}{path}?token={token}", max_size=2**22))

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, type_: str, **fields: Any) -> int:
        command_id = next(self._ids)
        await self.ws.send(json.dumps({"type": type_, "id": command_id, **fields}))
        return command_id

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str)
        self.raw.append(raw)
        frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def expect(self, type_: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """The first frame of this type (and these field values), received now or earlier.

        A selective receive: frames that do not match stay in the mailbox for later calls, so
        events that race an ack (a call's first state, say) are never lost to the test.
        """
        return await self._take(
            lambda f: f["type"] == type_ and all(f.get(k) == v for k, v in match.items()), timeout
        )

    async def reply(self, command_id: int, timeout: float = 10) -> dict[str, Any]:
        """The ack or error answering a command."""
        return await self._take(
            lambda f: f["type"] in ("ack", "error") and f.get("id") == command_id, timeout
        )

    async def _take(self, wanted: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        for i, frame in enumerate(self._mailbox):
            if wanted(frame):
                return self._mailbox.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if wanted(frame):
                return frame
            self._mailbox.append(frame)
