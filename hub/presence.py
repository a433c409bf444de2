"""Live agent presence and dial state in Redis, with TTLs refreshed by heartbeats.

Postgres stays the source of truth for leads and calls; everything here can be rebuilt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from hub.agent_state import AgentState


@dataclass(frozen=True, slots=True)
class Presence:
    agent_id: int
    state: AgentState
    reason: str
    since: float  # epoch seconds
    process: str  # hub process holding the socket, "" when disconnected
    call_id: str
    lead_id: int | None
    last_call: str  # "lead_id:call_id" of the agent's latest call, to link the disposition

    def call_for_lead(self, lead_id: int) -> str | None:
        """The agent's latest call if it was to this lead."""
        lead, _, call = self.last_call.partition(":")
        return call if call and lead == str(lead_id) else None

    def as_event(self) -> dict[str, object]:
        return {
            "type": "agent.state",
            "state": self.state.value,
            "reason": self.reason,
            "since": int(self.since * 1000),
        }


class PresenceStore:
    """Agent presence hashes ``{prefix}agent:{id}`` and call hashes ``{prefix}call:{id}``."""

    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_s

    def _agent_key(self, agent_id: int) -> str:
        return f"{self._prefix}agent:{agent_id}"

    def _call_key(self, call_id: str) -> str:
        return f"{self._prefix}call:{call_id}"

    async def get(self, agent_id: int) -> Presence | None:
        return self._parse(agent_id, await self._redis.hgetall(self._agent_key(agent_id)))

    @staticmethod
    def _parse(agent_id: int, data: dict[bytes, bytes]) -> Presence | None:
        if not data:
            return None
        return Presence(
            agent_id=agent_id,
            state=AgentState(data.get(b"state", b"offline").decode()),
            reason=data.get(b"reason", b"").decode(),
            since=float(data.get(b"since", b"0")),
            process=data.get(b"process", b"").decode(),
            call_id=data.get(b"call_id", b"").decode(),
            lead_id=int(data[b"lead_id"]) if data.get(b"lead_id") else None,
            last_call=data.get(b"last_call", b"").decode(),
        )

    async def set_state(self, agent_id: int, state: AgentState, reason: str) -> Presence:
        """Set the agent's state; one round trip that also returns the whole presence."""
        key = self._agent_key(agent_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"state": state.value, "reason": reason, "since": time.time()})
            pipe.expire(key, self._ttl)
            pipe.hgetall(key)
            *_, data = await pipe.execute()
        presence = self._parse(agent_id, data)
        assert presence is not None
        return presence

    async def connected(self, agent_id: int, process: str) -> None:
        key = self._agent_key(agent_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "process", process)
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def set_lead(self, agent_id: int, lead_id: int | None) -> None:
        """Record which lead the agent has on screen (Postgres ``held_by`` stays the truth)."""
        await self._redis.hset(self._agent_key(agent_id), "lead_id", "" if lead_id is None else str(lead_id))

    async def disconnected(self, agent_id: int) -> None:
        # Keep the state until the TTL runs out, so a quick reconnect restores it.
        await self._redis.hset(self._agent_key(agent_id), "process", "")

    async def heartbeat(self, agent_ids: list[int]) -> None:
        """Refresh the TTL of every agent connected to this process."""
        if not agent_ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.expire(self._agent_key(agent_id), self._ttl)
            await pipe.execute()

    async def set_call(self, agent_id: int, call_id: str, fields: dict[str, str | int | float]) -> None:
        """Record a live call's dial state, and link it from the agent's presence."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._call_key(call_id), mapping=fields)
            pipe.expire(self._call_key(call_id), 4 * 3600)
            link = {"call_id": call_id}
            if "lead_id" in fields:
                link["last_call"] = f"{fields['lead_id']}:{call_id}"
            pipe.hset(self._agent_key(agent_id), mapping=link)
            await pipe.execute()

    async def get_call(self, call_id: str) -> dict[str, str]:
        data = await self._redis.hgetall(self._call_key(call_id))
        return {k.decode(): v.decode() for k, v in data.items()}

    async def end_call(self, agent_id: int, call_id: str) -> None:
        """Forget a finished call (only unlinks the agent if it still points at this call)."""
        await self._redis.delete(self._call_key(call_id))
        current = await self._redis.hget(self._agent_key(agent_id), "call_id")
        if current is not None and current.decode() == call_id:
            await self._redis.hset(self._agent_key(agent_id), "call_id", "")
