"""What the agent quotas read and write: the stored settings, and each agent's counts of a day.

The rules (``hub.quotas``) are pure; this module loads what they decide on. New leads given come
from ``agent_days`` (the claim counts them, migration 0006); calls made are the agent's outbound
calls started since the company's day began, read through ``calls_agent (agent_id, started_at)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.contact import put_setting, setting

QUOTAS = "quotas"  # the system_settings key
AGENT_ROLES = ("sales", "tmk")


@dataclass(frozen=True, slots=True)
class AgentDay:
    """An agent's counts so far on one day (not the ``agent_days`` row: calls are counted too)."""

    new_leads: int = 0  # fresh leads the claim gave the agent
    calls: int = 0  # outbound calls the agent started


@dataclass(frozen=True, slots=True)
class AgentStanding:
    """One active agent and their counts of the day, for the supervisors' page."""

    agent_id: int
    username: str
    display_name: str
    role: str
    team_id: int | None
    team_name: str | None
    tier: str
    new_leads: int
    calls: int


@dataclass(frozen=True, slots=True)
class QuotaScopes:
    """What quotas can be set for: every team, the tiers in use, every agent (active or not)."""

    teams: dict[int, str]
    tiers: list[str]
    agents: dict[int, str]  # id: display name, for sales and TMK users


async def quota_book_json(session: AsyncSession) -> dict[str, Any] | None:
    """The stored quota settings (``hub.quotas.parse_quotas`` reads them), or None if never saved."""
    return await setting(session, QUOTAS)


async def save_quota_book(
    session: AsyncSession, raw: dict[str, Any], actor_id: int | None, ip: str = ""
) -> None:
    """Store validated quota settings and audit the change (``quotas_changed``); the caller commits."""
    before = await setting(session, QUOTAS)
    await put_setting(session, QUOTAS, raw, actor_id)
    await audit.record(
        session,
        actor_id=actor_id,
        action="quotas_changed",
        target=QUOTAS,
        detail={"before": before, "after": raw},
        ip=ip,
    )


_AGENT_DAY = text(
    """
    SELECT
        coalesce((SELECT d.new_leads FROM agent_days d WHERE d.agent_id = :agent AND d.day = :day), 0),
        (SELECT count(*) FROM calls c
         WHERE c.agent_id = :agent AND c.started_at >= :since AND c.direction = 'outbound')
    """
)


async def agent_day(session: AsyncSession, agent_id: int, day: date, day_start_utc: datetime) -> AgentDay:
    """The agent's new leads given on ``day`` and outbound calls started since ``day_start_utc``."""
    row = (await session.execute(_AGENT_DAY, {"agent": agent_id, "day": day, "since": day_start_utc})).one()
    return AgentDay(new_leads=row[0], calls=row[1])


# One index range scan of calls per agent (LATERAL) rather than a count of the whole day's calls.
_STANDING = text(
    """
    SELECT u.id, u.username, u.display_name, u.role, u.team_id, t.name, u.tier,
        coalesce(d.new_leads, 0), made.calls
    FROM users u
    LEFT JOIN teams t ON t.id = u.team_id
    LEFT JOIN agent_days d ON d.agent_id = u.id AND d.day = :day
    CROSS JOIN LATERAL (
        SELECT count(*) AS calls FROM calls c
        WHERE c.agent_id = u.id AND c.started_at >= :since AND c.direction = 'outbound'
    ) made
    WHERE u.active AND u.role IN ('sales', 'tmk')
    ORDER BY t.name NULLS LAST, u.display_name, u.id
    """
)


async def team_standing(session: AsyncSession, day: date, day_start_utc: datetime) -> list[AgentStanding]:
    """Every active sales and TMK agent with their counts of ``day``, by team then name."""
    rows = await session.execute(_STANDING, {"day": day, "since": day_start_utc})
    return [AgentStanding(*row) for row in rows]


async def quota_scopes(session: AsyncSession) -> QuotaScopes:
    """The teams, the tiers of active agents, and the agents quotas may name."""
    teams = await session.execute(text("SELECT id, name FROM teams ORDER BY name"))
    tiers = await session.execute(
        text("SELECT DISTINCT tier FROM users WHERE active AND role IN ('sales', 'tmk') ORDER BY tier")
    )
    agents = await session.execute(
        text("SELECT id, display_name FROM users WHERE role IN ('sales', 'tmk') ORDER BY display_name, id")
    )
    return QuotaScopes(
        teams={r[0]: r[1] for r in teams},
        tiers=[r[0] for r in tiers],
        agents={r[0]: r[1] for r in agents},
    )


async def agent_profiles(session: AsyncSession) -> dict[int, tuple[int | None, str | None]]:
    """Every active agent's team and tier, which pick the quota that applies to them."""
    rows = await session.execute(
        text("SELECT id, team_id, tier FROM users WHERE active AND role IN ('sales', 'tmk')")
    )
    return {r[0]: (r[1], r[2]) for r in rows}
