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
    call_ended: float = 0.0  # epoch seconds the agent's latest call ended

    @property
    def free_since(self) -> float:
        """Since when the agent has been free: their state's start or their last call's end."""
        return max(self.since, self.call_ended)

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
            call_ended=float(data.get(b"call_ended", b"0")),
        )

    async def get_many(self, agent_ids: list[int]) -> list[Presence | None]:
        """Several agents' presence in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.hgetall(self._agent_key(agent_id))
            found = await pipe.execute()
        return [self._parse(a, d) for a, d in zip(agent_ids, found, strict=True)]

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

    async def live_call_ids(self) -> list[str]:
        """Every call with dial state here (all processes'), by a scan of the call keys."""
        prefix = self._call_key("")
        return [k.decode()[len(prefix) :] async for k in self._redis.scan_iter(match=prefix + "*", count=500)]

    async def get_call(self, call_id: str) -> dict[str, str]:
        data = await self._redis.hgetall(self._call_key(call_id))
        return {k.decode(): v.decode() for k, v in data.items()}

    async def end_call(self, agent_id: int | None, call_id: str) -> None:
        """Forget a finished call (only unlinks the agent if it still points at this call)."""
        await self._redis.delete(self._call_key(call_id), self._failed_key(call_id))
        if agent_id is None:
            return
        current = await self._redis.hget(self._agent_key(agent_id), "call_id")
        if current is not None and current.decode() == call_id:
            ended = {"call_id": "", "call_ended": time.time()}
            await self._redis.hset(self._agent_key(agent_id), mapping=ended)

    # -- inbound calls: the agent whose phone rings ----------------------------------------------

    def _reserved_key(self, agent_id: int) -> str:
        return f"{self._prefix}ringing:{agent_id}"

    def _failed_key(self, call_id: str) -> str:
        return f"{self._prefix}call-failed:{call_id}"

    async def reserve_agent(self, agent_id: int, call_id: str, ttl_s: int) -> bool:
        """Claim a free agent for one inbound call; False if another call got them first."""
        return bool(await self._redis.set(self._reserved_key(agent_id), call_id, nx=True, ex=ttl_s))

    async def release_agent(self, agent_id: int, call_id: str) -> None:
        """Drop the agent's reservation if it is still for this call."""
        key = self._reserved_key(agent_id)
        held = await self._redis.get(key)
        if held is not None and held.decode() == call_id:
            await self._redis.delete(key)

    async def unring_agent(self, agent_id: int, call_id: str) -> None:
        """The agent's phone failed this call: it may ring someone else, never them again."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._call_key(call_id), mapping={"agent_id": "", "extension": ""})
            pipe.sadd(self._failed_key(call_id), agent_id)
            pipe.expire(self._failed_key(call_id), 4 * 3600)
            await pipe.execute()
        current = await self._redis.hget(self._agent_key(agent_id), "call_id")
        if current is not None and current.decode() == call_id:
            await self._redis.hset(self._agent_key(agent_id), "call_id", "")
        await self.release_agent(agent_id, call_id)

    async def failed_agents(self, call_id: str) -> set[int]:
        """The agents whose phone already failed this call."""
        return {int(a) for a in await self._redis.smembers(self._failed_key(call_id))}

    async def link_lead_to_call(self, agent_id: int, call_id: str, lead_id: int) -> None:
        """A lead was made for the caller: the call and the agent's disposition point at it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._call_key(call_id), "lead_id", lead_id)
            pipe.hset(self._agent_key(agent_id), "last_call", f"{lead_id}:{call_id}")
            await pipe.execute()
