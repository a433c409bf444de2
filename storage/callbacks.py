"""Booked callbacks as supervisors see them: what is coming up, and moving one to another agent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit


@dataclass(frozen=True, slots=True)
class BookedCallback:
    lead_id: int
    name: str
    phone_e164: str
    due_at: datetime
    agent_id: int | None  # None: anyone
    agent_name: str
    held_by: int | None


async def booked(session: AsyncSession, limit: int = 200) -> list[BookedCallback]:
    """Open callbacks, soonest first (those being worked right now included)."""
    rows = await session.execute(
        text(
            "SELECT l.id, l.name, l.phone_e164, l.next_attempt_at, l.callback_agent_id,"
            " coalesce(u.display_name, ''), l.held_by FROM leads l"
            " LEFT JOIN users u ON u.id = l.callback_agent_id"
            " WHERE l.status = 'callback' AND l.deleted_at IS NULL"
            " ORDER BY l.next_attempt_at, l.id LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [BookedCallback(*r) for r in rows]


async def reassign(
    session: AsyncSession, lead_id: int, agent_id: int | None, *, actor_id: int, ip: str = ""
) -> bool:
    """Promise the callback to ``agent_id`` (None: anyone), audited; False if it is no open callback.

    The caller checks that the agent may work the lead. Does not commit.
    """
    moved = await session.execute(
        text(
            "UPDATE leads l SET callback_agent_id = :agent"
            " FROM (SELECT callback_agent_id AS before FROM leads WHERE id = :lead FOR UPDATE) b"
            " WHERE l.id = :lead AND l.status = 'callback'"
            " AND l.deleted_at IS NULL RETURNING b.before"
        ),
        {"lead": lead_id, "agent": agent_id},
    )
    row = moved.first()
    if row is None:
        return False
    await audit.record(
        session,
        actor_id=actor_id,
        action="callback_reassigned",
        target=f"lead:{lead_id}",
        detail={"from": row[0], "to": agent_id},
        ip=ip,
    )
    return True
