"""Quotas at work: the daily new-lead cap for the claim, and warnings pushed once a day each.

The rules are pure (hub.quotas); this desk reads the quota book (re-read every few seconds, as
the contact policies), an agent's team and tier, and today's counts (storage.quotas). A warning
is pushed once per agent, kind, level and day whatever the number of hub processes: the first
to add its key to a Redis set pushes it.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.quotas import Quota, QuotaBook, QuotaWarning, day_bounds, quota_book, quota_warnings, warning_key
from storage import quotas as quota_store

BOOK_TTL_S = 5.0
WARNED_TTL_S = 2 * 24 * 3600  # the keys of a day's warnings outlive the day, then go


class QuotaDesk:
    """Quotas for this process's agents (one per hub process)."""

    def __init__(self, db: async_sessionmaker[AsyncSession], redis: Redis, prefix: str) -> None:
        self._db = db
        self._redis = redis
        self._prefix = prefix
        self._book = quota_book(None)
        self._loaded_at = -BOOK_TTL_S
        self._profiles: dict[int, tuple[int | None, str | None]] = {}  # agent → (team, tier)

    async def _fresh(self) -> QuotaBook:
        if time.monotonic() - self._loaded_at > BOOK_TTL_S:
            async with self._db() as s:
                self._book = quota_book(await quota_store.quota_book_json(s))
                self._profiles = await quota_store.agent_profiles(s)
            self._loaded_at = time.monotonic()
        return self._book

    async def quota_of(self, agent_id: int) -> tuple[Quota, date, datetime]:
        """The agent's quota, the company's day and when it began (UTC)."""
        book = await self._fresh()
        team_id, tier = self._profiles.get(agent_id, (None, None))
        day, day_start = day_bounds(book, datetime.now(UTC))
        return book.for_agent(agent_id, team_id, tier), day, day_start

    async def today(self) -> date:
        """The company's calendar day now."""
        return day_bounds(await self._fresh(), datetime.now(UTC))[0]

    async def first_today(self, agent_id: int, key: str) -> bool:
        """Whether ``key`` is new for this agent today (then it is remembered, across processes)."""
        told = f"{self._prefix}quota-told:{agent_id}:{(await self.today()).isoformat()}"
        if not await self._redis.sadd(told, key):
            return False
        await self._redis.expire(told, WARNED_TTL_S)
        return True

    async def new_warnings(self, agent_id: int) -> list[QuotaWarning]:
        """The warnings the agent has earned and not yet been told of today."""
        quota, day, day_start = await self.quota_of(agent_id)
        if quota.is_empty():
            return []
        async with self._db() as s:
            counts = await quota_store.agent_day(s, agent_id, day, day_start)
        earned = quota_warnings(quota, counts, datetime.now(UTC), self._book)
        if not earned:
            return []
        return [w for w in earned if await self.first_today(agent_id, warning_key(w, day))]

    async def cap_reached(self, agent_id: int, quota: Quota, day: date, day_start: datetime) -> bool:
        """Whether the agent has had all the fresh leads of their daily cap (from :meth:`quota_of`)."""
        if quota.daily_new_leads is None:
            return False
        async with self._db() as s:
            counts = await quota_store.agent_day(s, agent_id, day, day_start)
        return counts.new_leads >= quota.daily_new_leads
