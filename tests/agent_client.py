"""A real websocket client of the agent protocol, recording every frame it receives."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class AgentClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.raw: list[str] = []
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
        """Read frames until one of this type (and these field values) arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def reply(self, command_id: int, timeout: float = 10) -> dict[str, Any]:
        """The ack or error answering a command."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if frame["type"] in ("ack", "error") and frame.get("id") == command_id:
                return frame
