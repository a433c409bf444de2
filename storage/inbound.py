"""Inbound calls: the numbers customers call and their agent groups, caller lookup, inbound call rows.

The routing path (the caller's card, the call row) speaks asyncpg on the hub's hot-path pool: the
gateway waits on its answer. The rest uses SQLAlchemy sessions like every other module.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from asyncpg import Pool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit

STRATEGIES = ("sticky", "longest_idle")


@dataclass(frozen=True, slots=True)
class GroupAgent:
    agent_id: int
    extension: str


@dataclass(frozen=True, slots=True)
class InboundGroup:
    """A dialled number (DID) and the agents who answer it (those with a phone extension)."""

    did: str
    name: str
    strategy: str
    ring_timeout_s: int
    agents: tuple[GroupAgent, ...]


# Numbers with their group: the agents who are active and have a phone extension, by id.
_GROUPS = text(
    """
    SELECT n.did, n.name, n.strategy, n.ring_timeout_s,
        coalesce(array_agg(u.id ORDER BY u.id) FILTER (WHERE u.id IS NOT NULL), '{}') AS ids,
        coalesce(array_agg(u.sip_extension ORDER BY u.id) FILTER (WHERE u.id IS NOT NULL), '{}') AS extensions
    FROM inbound_numbers n
    LEFT JOIN inbound_number_agents a ON a.did = n.did
    LEFT JOIN users u ON u.id = a.user_id AND u.active AND u.sip_extension <> ''
    WHERE CAST(:did AS varchar) IS NULL OR n.did = CAST(:did AS varchar)
    GROUP BY n.did ORDER BY n.did
    """
)


async def _groups(session: AsyncSession, did: str | None) -> list[InboundGroup]:
    rows = await session.execute(_GROUPS, {"did": did})
    return [
        InboundGroup(r.did, r.name, r.strategy, r.ring_timeout_s, tuple(map(GroupAgent, r.ids, r.extensions)))
        for r in rows
    ]


async def inbound_group(session: AsyncSession, did: str) -> InboundGroup | None:
    """The group of a dialled number, or None when nobody serves it."""
    found = await _groups(session, did)
    return found[0] if found else None


async def inbound_numbers(session: AsyncSession) -> list[InboundGroup]:
    """Every inbound number with its group, by number."""
    return await _groups(session, None)


async def save_inbound_number(
    session: AsyncSession,
    *,
    did: str,
    name: str,
    strategy: str,
    ring_timeout_s: int,
    agent_ids: list[int],
    actor_id: int | None,
    ip: str = "",
) -> None:
    """Create or replace a number's settings and group, audited (the caller commits)."""
    await session.execute(
        text(
            "INSERT INTO inbound_numbers (did, name, strategy, ring_timeout_s)"
            " VALUES (:did, :name, :strategy, :timeout)"
            " ON CONFLICT (did) DO UPDATE SET name = EXCLUDED.name, strategy = EXCLUDED.strategy,"
            " ring_timeout_s = EXCLUDED.ring_timeout_s"
        ),
        {"did": did, "name": name, "strategy": strategy, "timeout": ring_timeout_s},
    )
    await session.execute(text("DELETE FROM inbound_number_agents WHERE did = :did"), {"did": did})
    if agent_ids:
        await session.execute(
            text(
                "INSERT INTO inbound_number_agents (did, user_id)"
                " SELECT :did, unnest(CAST(:ids AS integer[])) ON CONFLICT DO NOTHING"
            ),
            {"did": did, "ids": agent_ids},
        )
    await audit.record(
        session,
        actor_id=actor_id,
        action="inbound_number.save",
        target=did,
        detail={"name": name, "strategy": strategy, "ring_timeout_s": ring_timeout_s, "agents": agent_ids},
        ip=ip,
    )


@dataclass(frozen=True, slots=True)
class RecentContact:
    at: datetime
    outcome: str
    note: str
    agent_name: str


@dataclass(frozen=True, slots=True)
class CustomerCard:
    """What the agent's screen pop shows of a caller who is a known lead."""

    lead_id: int
    name: str
    area: str
    status: str
    owner_id: int | None
    owner_name: str | None
    notes: str
    attributes: dict[str, object]
    held_by: int | None
    recent: tuple[RecentContact, ...]


# The caller's latest active lead, its owner, and the number's last contacts: one round trip, since
# the gateway waits on the routing answer.
_CARD = """
SELECT l.id, coalesce(nullif(c.name, ''), l.name) AS name, l.area, l.status, l.owner_id,
    u.display_name AS owner_name, l.notes, l.attributes::text AS attributes, l.held_by,
    (SELECT coalesce(json_agg(r ORDER BY r.at DESC), '[]')::text FROM (
        SELECT a.created_at AS at, a.outcome, a.note, coalesce(au.display_name, '') AS agent
        FROM contact_attempts a LEFT JOIN users au ON au.id = a.agent_id
        WHERE a.phone_e164 = $1 ORDER BY a.created_at DESC LIMIT $2) r) AS recent
FROM leads l LEFT JOIN users u ON u.id = l.owner_id LEFT JOIN customers c ON c.phone_e164 = l.phone_e164
WHERE l.phone_e164 = $1 AND l.deleted_at IS NULL
ORDER BY l.created_at DESC, l.id DESC LIMIT 1
"""


async def customer_card(pool: Pool, phone_e164: str, recent: int = 5) -> CustomerCard | None:
    """The caller's latest active lead with its owner and last contacts, or None for a new number."""
    row = await pool.fetchrow(_CARD, phone_e164, recent)
    if row is None:
        return None
    contacts = tuple(
        RecentContact(datetime.fromisoformat(r["at"]), r["outcome"], r["note"], r["agent"])
        for r in json.loads(row["recent"])
    )
    return CustomerCard(
        row["id"],
        row["name"],
        row["area"],
        row["status"],
        row["owner_id"],
        row["owner_name"],
        row["notes"],
        json.loads(row["attributes"]),
        row["held_by"],
        contacts,
    )


async def start_inbound_call(
    pool: Pool,
    *,
    call_id: uuid.UUID,
    started_at: datetime,
    agent_id: int | None,
    lead_id: int | None,
    phone_e164: str,
    did: str,
    gateway_call_id: str,
    state: str = "ringing",
    cause: str | None = None,
) -> None:
    """Record an inbound call (idempotent on its id: a re-route only changes the agent).

    A call rejected before any agent rang is recorded ``ended`` with its cause.
    """
    ended = state == "ended"
    await pool.execute(
        "INSERT INTO calls (id, started_at, direction, agent_id, lead_id, phone_e164, state, did,"
        " gateway_call_id, ringing_at, ended_at, duration_s, hangup_cause)"
        " VALUES ($1, $2, 'in', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (id, started_at) DO UPDATE SET agent_id = EXCLUDED.agent_id",
        call_id,
        started_at,
        agent_id,
        lead_id,
        phone_e164,
        state,
        did,
        gateway_call_id,
        None if ended else started_at,
        started_at if ended else None,
        0.0 if ended else None,
        cause,
    )


async def hold_caller_lead(session: AsyncSession, agent_id: int, lead_id: int, lease_s: float) -> bool:
    """Put the caller's lead on the agent who answered: the agent's other held lead goes back.

    False (and nothing changes) when another agent holds the caller's lead or it was deleted.
    Commits.
    """
    # First the lead that waited on the agent's screen, not yet called: an agent holds one lead.
    await session.execute(
        text(
            "UPDATE leads SET held_by = NULL, lease_expires_at = NULL, cleared_at = NULL"
            " WHERE held_by = :agent AND id <> :lead"
        ),
        {"agent": agent_id, "lead": lead_id},
    )
    taken = (
        await session.execute(
            text(
                "UPDATE leads SET held_by = :agent, lease_expires_at = now() + make_interval(secs => :lease)"
                " WHERE id = :lead AND deleted_at IS NULL AND (held_by IS NULL OR held_by = :agent)"
                " RETURNING id"
            ),
            {"agent": agent_id, "lead": lead_id, "lease": lease_s},
        )
    ).first()
    if taken is None:
        await session.rollback()
        return False
    await session.commit()
    return True


async def add_caller_lead(
    session: AsyncSession, *, agent_id: int, phone_e164: str, name: str, notes: str, lease_s: float
) -> int:
    """A new customer who called in: a lead owned and held by the agent who answered (commits)."""
    await session.execute(
        text(
            "UPDATE leads SET held_by = NULL, lease_expires_at = NULL, cleared_at = NULL"
            " WHERE held_by = :agent"
        ),
        {"agent": agent_id},
    )
    lead_id = (
        await session.execute(
            text(
                "INSERT INTO leads (name, phone_e164, owner_id, status, source, notes, held_by,"
                " lease_expires_at) VALUES (:name, :phone, :agent, 'new', 'inbound', :notes, :agent,"
                " now() + make_interval(secs => :lease)) RETURNING id"
            ),
            {"name": name, "phone": phone_e164, "agent": agent_id, "notes": notes, "lease": lease_s},
        )
    ).scalar_one()
    await session.commit()
    return int(lead_id)


async def some_lead_phone(session: AsyncSession) -> str | None:
    """The number of some active lead, picked at random without scanning the table."""
    return (
        await session.execute(
            text(
                "SELECT phone_e164 FROM leads WHERE deleted_at IS NULL"
                " AND id >= (SELECT floor(random() * (max(id) + 1)) FROM leads) ORDER BY id LIMIT 1"
            )
        )
    ).scalar()
