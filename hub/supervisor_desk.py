"""Supervisors' live feed: the warnings agents get (quotas, low stock), pushed as they happen.

An alert raised in any hub process goes through Redis (the bus's supervisors channel) to every
process, and each pushes it to the supervisors whose sockets it holds. The day's latest alerts
are also kept in a capped Redis list, so a supervisor who connects (or reconnects) is first sent
what happened before (the ``snapshot``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from hub.bus import Bus
from hub.connection import AgentConnection
from hub.identity import Principal
from hub.protocol import Command, error
from hub.quota_desk import QuotaDesk

RECENT_ALERTS = 100
RECENT_TTL_S = 2 * 24 * 3600


class SupervisorDesk:
    """The supervisor sockets of this process, and the alerts they are sent (one per process)."""

    def __init__(self, redis: Redis, bus: Bus, quota_desk: QuotaDesk, prefix: str) -> None:
        self._redis = redis
        self._bus = bus
        self._quota_desk = quota_desk
        self._prefix = prefix
        self.connections: set[AgentConnection] = set()

    async def connect(self, conn: AgentConnection) -> None:
        """Start a supervisor's feed with today's alerts so far, newest first."""
        self.connections.add(conn)
        conn.push({"type": "snapshot", "alerts": await self.recent()})

    async def disconnect(self, conn: AgentConnection) -> None:
        self.connections.discard(conn)

    async def handle(self, conn: AgentConnection, command: Command) -> None:
        """The feed only listens: ``ping`` is answered, anything else is refused."""
        if command.type == "ping":
            conn.push({"type": "pong", "id": command.id})
        else:
            conn.push(error("forbidden", f"the supervisor feed takes no {command.type}", command.id))

    def deliver(self, event: dict[str, Any]) -> None:
        """Push an alert to this process's supervisors (called by the bus)."""
        for conn in list(self.connections):
            conn.push(event)

    async def alert(self, agent: Principal, warning: dict[str, Any]) -> None:
        """Tell every supervisor of a warning an agent was just sent."""
        who = {"id": agent.id, "name": agent.display_name}
        event = {**warning, "agent": who, "at": int(time.time() * 1000)}
        key = await self._recent_key()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, json.dumps(event))
            pipe.ltrim(key, 0, RECENT_ALERTS - 1)
            pipe.expire(key, RECENT_TTL_S)
            await pipe.execute()
        await self._bus.publish_to_supervisors(event)

    async def recent(self) -> list[dict[str, Any]]:
        """Today's latest alerts, newest first."""
        return [json.loads(raw) for raw in await self._redis.lrange(await self._recent_key(), 0, -1)]

    async def _recent_key(self) -> str:
        return f"{self._prefix}supervisor-alerts:{(await self._quota_desk.today()).isoformat()}"
