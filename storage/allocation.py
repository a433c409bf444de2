"""Allocation queries: unowned leads, eligible agents, and the guarded bulk assignment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# A lead can be allocated while nobody owns or holds it and it is still alive: the same predicate
# as the partial index leads_pool_claimable, so counting and listing the pool reads that index.
# Allocation shares out sales work: leads of no campaign or of a sales campaign, never a listed
# do-not-call number, to sales agents. TMK campaigns are worked from their shared pool.
UNOWNED = (
    "owner_id IS NULL AND held_by IS NULL AND deleted_at IS NULL AND status <> 'closed'"
    " AND (campaign_id IS NULL OR campaign_id IN (SELECT id FROM campaigns WHERE kind = 'sales'))"
    " AND NOT EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = leads.phone_e164"
    " AND (d.campaign_id IS NULL OR d.campaign_id = leads.campaign_id))"
)
AGENT_ROLES = ("sales",)


@dataclass(frozen=True, slots=True)
class EligibleAgent:
    """An active agent who may be given leads."""

    id: int
    name: str
    tier: str
    team_id: int | None


@dataclass(frozen=True, slots=True)
class TeamChoice:
    id: int
    name: str
    agents: int  # active sales/TMK members


@dataclass(frozen=True, slots=True)
class BatchChoice:
    id: int
    filename: str
    created_at: datetime
    unowned: int  # leads of the batch that can be allocated now


@dataclass(frozen=True, slots=True)
class AssignResult:
    """What an assignment did: leads given per agent, and leads skipped because taken meanwhile."""

    assigned: dict[int, int]
    skipped: int

    @property
    def total(self) -> int:
        return sum(self.assigned.values())


async def candidate_lead_ids(
    session: AsyncSession, *, batch_id: int | None = None, campaign_id: int | None = None
) -> list[int]:
    """Ids of the leads that can be allocated now (optionally of one batch / campaign), ascending."""
    conditions = [UNOWNED]
    params: dict[str, int] = {}
    if batch_id is not None:
        conditions.append("batch_id = :batch")
        params["batch"] = batch_id
    if campaign_id is not None:
        conditions.append("campaign_id = :campaign")
        params["campaign"] = campaign_id
    rows = await session.execute(
        text(f"SELECT id FROM leads WHERE {' AND '.join(conditions)} ORDER BY id"), params
    )
    return [r[0] for r in rows]


async def unowned_count(session: AsyncSession) -> int:
    """How many leads wait in the shared pool, all batches together."""
    return (await session.execute(text(f"SELECT count(*) FROM leads WHERE {UNOWNED}"))).scalar_one()


async def eligible_agents(session: AsyncSession, *, team_id: int | None = None) -> list[EligibleAgent]:
    """Active sales and TMK users (optionally of one team), by tier then name."""
    team_clause = " AND team_id = :team" if team_id is not None else ""
    rows = await session.execute(
        text(
            "SELECT id, display_name AS name, upper(tier) AS tier, team_id FROM users"
            f" WHERE active AND role = ANY(:roles){team_clause} ORDER BY upper(tier), display_name, id"
        ),
        {"roles": list(AGENT_ROLES), **({"team": team_id} if team_id is not None else {})},
    )
    return [EligibleAgent(**r._mapping) for r in rows]


async def teams(session: AsyncSession) -> list[TeamChoice]:
    """Every team with its number of active agents, by name."""
    rows = await session.execute(
        text(
            "SELECT t.id, t.name, count(u.id) AS agents FROM teams t"
            " LEFT JOIN users u ON u.team_id = t.id AND u.active AND u.role = ANY(:roles)"
            " GROUP BY t.id, t.name ORDER BY t.name"
        ),
        {"roles": list(AGENT_ROLES)},
    )
    return [TeamChoice(**r._mapping) for r in rows]


async def team(session: AsyncSession, team_id: int) -> TeamChoice | None:
    """One team (with its agent count), or None when there is no such team."""
    row = (
        await session.execute(
            text(
                "SELECT t.id, t.name, count(u.id) AS agents FROM teams t"
                " LEFT JOIN users u ON u.team_id = t.id AND u.active AND u.role = ANY(:roles)"
                " WHERE t.id = :id GROUP BY t.id, t.name"
            ),
            {"roles": list(AGENT_ROLES), "id": team_id},
        )
    ).first()
    return TeamChoice(**row._mapping) if row else None


# import_batches has a status column of its own, so the lead conditions are spelled out qualified.
_BATCHES = """
SELECT b.id, b.filename, b.created_at,
       (SELECT count(*) FROM leads l WHERE l.batch_id = b.id AND l.owner_id IS NULL AND l.held_by IS NULL
          AND l.deleted_at IS NULL AND l.status <> 'closed') AS unowned
FROM import_batches b
"""


async def recent_batches(session: AsyncSession, limit: int = 50) -> list[BatchChoice]:
    """The latest import batches, newest first, each with its count of allocatable leads."""
    rows = await session.execute(
        text(_BATCHES + " ORDER BY b.created_at DESC, b.id DESC LIMIT :limit"), {"limit": limit}
    )
    return [BatchChoice(**r._mapping) for r in rows]


async def batch(session: AsyncSession, batch_id: int) -> BatchChoice | None:
    """One import batch (with its allocatable count), or None when there is no such batch."""
    row = (await session.execute(text(_BATCHES + " WHERE b.id = :id"), {"id": batch_id})).first()
    return BatchChoice(**row._mapping) if row else None


# Rows are locked in id order first (so two allocations running at once cannot deadlock: the
# second waits, then finds the leads owned and skips them). A lead claimed or assigned between
# the plan and this statement fails the re-checked guard and is skipped, never taken from the
# agent who holds it; claimers pass our locked rows by with SKIP LOCKED.
_ASSIGN = text(f"""
WITH wanted AS (
    SELECT * FROM unnest(CAST(:lead_ids AS bigint[]), CAST(:owner_ids AS integer[])) AS w(lead_id, owner_id)
), locked AS MATERIALIZED (
    SELECT id FROM leads WHERE id IN (SELECT lead_id FROM wanted) AND {UNOWNED}
    ORDER BY id FOR UPDATE
), done AS (
    UPDATE leads SET owner_id = wanted.owner_id
    FROM locked JOIN wanted ON wanted.lead_id = locked.id
    WHERE leads.id = locked.id AND leads.owner_id IS NULL AND leads.held_by IS NULL
    RETURNING leads.owner_id
)
SELECT owner_id, count(*) AS n FROM done GROUP BY owner_id
""")


async def assign(session: AsyncSession, assignments: Mapping[int, Sequence[int]]) -> AssignResult:
    """Make each agent the owner of its leads in one statement, in the caller's transaction.

    ``assignments`` maps agent id → lead ids. Leads that are owned, held, deleted or closed by now
    are left alone and counted in ``skipped``. The caller commits (with its audit entry).
    Raises ValueError if a lead is given to two agents.
    """
    lead_ids = [lead for leads in assignments.values() for lead in leads]
    owner_ids = [agent for agent, leads in assignments.items() for _ in leads]
    if len(set(lead_ids)) != len(lead_ids):
        raise ValueError("a lead is assigned to more than one agent")
    assigned = {agent: 0 for agent in assignments}
    if not lead_ids:
        return AssignResult(assigned, 0)
    rows = await session.execute(_ASSIGN, {"lead_ids": lead_ids, "owner_ids": owner_ids})
    for owner_id, n in rows:
        assigned[owner_id] = n
    return AssignResult(assigned, len(lead_ids) - sum(assigned.values()))
