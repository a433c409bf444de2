"""Cross-process delivery through Redis pub/sub.

Every agent has a channel ``{prefix}to-agent:{id}``; the process holding that agent's socket is
subscribed to it, so an event raised in any hub process reaches the agent. One broadcast channel
``{prefix}broadcast`` carries process-wide hints (e.g. "new leads are available"), and
``{prefix}to-supervisors`` the alerts every connected supervisor sees.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = logging.getLogger("lineup.bus")

AgentHandler = Callable[[int, dict[str, Any]], Awaitable[None]]
BroadcastHandler = Callable[[dict[str, Any]], Awaitable[None]]
SupervisorHandler = Callable[[dict[str, Any]], None]


class Bus:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._pubsub: PubSub = redis.pubsub(ignore_subscribe_messages=True)
        self._agent_prefix = f"{prefix}to-agent:"
        self._broadcast = f"{prefix}broadcast"
        self._supervisors = f"{prefix}to-supervisors"
        self._task: asyncio.Task[None] | None = None
        self._on_agent: AgentHandler | None = None
        self._on_broadcast: BroadcastHandler | None = None
        self._on_supervisors: SupervisorHandler | None = None

    async def start(
        self, on_agent: AgentHandler, on_broadcast: BroadcastHandler, on_supervisors: SupervisorHandler
    ) -> None:
        self._on_agent, self._on_broadcast, self._on_supervisors = on_agent, on_broadcast, on_supervisors
        await self._pubsub.subscribe(self._broadcast, self._supervisors)
        self._task = asyncio.create_task(self._listen(), name="bus-listener")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._pubsub.aclose()

    async def publish_to_agent(self, agent_id: int, message: dict[str, Any]) -> int:
        """Deliver to whichever process holds the agent; returns how many processes heard it."""
        return int(await self._redis.publish(f"{self._agent_prefix}{agent_id}", json.dumps(message)))

    async def broadcast(self, message: dict[str, Any]) -> None:
        await self._redis.publish(self._broadcast, json.dumps(message))

    async def publish_to_supervisors(self, event: dict[str, Any]) -> None:
        """Deliver an event to every supervisor connected to any process."""
        await self._redis.publish(self._supervisors, json.dumps(event))

    async def follow_agent(self, agent_id: int) -> None:
        await self._pubsub.subscribe(f"{self._agent_prefix}{agent_id}")

    async def unfollow_agent(self, agent_id: int) -> None:
        await self._pubsub.unsubscribe(f"{self._agent_prefix}{agent_id}")

    async def _listen(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=bus_receive_failed")
                await asyncio.sleep(1.0)
                continue
            if message is None:
                continue
            try:
                await self._dispatch(message)
            except Exception:
                log.exception("event=bus_dispatch_failed")

    async def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        payload = json.loads(message["data"])
        if channel == self._broadcast:
            assert self._on_broadcast is not None
            await self._on_broadcast(payload)
        elif channel == self._supervisors:
            assert self._on_supervisors is not None
            self._on_supervisors(payload)
        elif channel.startswith(self._agent_prefix):
            assert self._on_agent is not None
            await self._on_agent(int(channel[len(self._agent_prefix) :]), payload)
