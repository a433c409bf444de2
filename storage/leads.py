"""Lead queries: the atomic claim, dispositions, leases and stock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

_LEAD_COLUMNS = "id, name, phone_e164, area, attributes, status, owner_id, callback_at, attempts"


@dataclass(frozen=True, slots=True)
class HeldLead:
    """A lead as the agent holding it may see it (the hub masks the phone before sending it)."""

    id: int
    name: str
    phone_e164: str
    area: str
    attributes: dict[str, Any]
    status: str
    owner_id: int | None
    callback_at: datetime | None
    attempts: int


@dataclass(frozen=True, slots=True)
class ContactRecord:
    at: datetime
    outcome: str
    note: str
    agent_name: str


@dataclass(frozen=True, slots=True)
class DispositionEffect:
    """What a disposition does to its lead (decided by the hub's rules, applied here)."""

    status: str
    next_attempt_at: datetime
    callback_at: datetime | None


class NotYourLead(Exception):
    """The lead does not exist or is not held by this agent."""


def _row(row: Any) -> HeldLead:
    return HeldLead(**row._mapping)


async def held_lead(session: AsyncSession, agent_id: int) -> HeldLead | None:
    """The lead this agent holds now, if any."""
    row = (
        await session.execute(
            text(f"SELECT {_LEAD_COLUMNS} FROM leads WHERE held_by = :agent"), {"agent": agent_id}
        )
    ).first()
    return _row(row) if row else None


# Owned leads first, then the shared pool, in one statement: each probe reads the head of its own
# partial index (leads_claimable / leads_pool_claimable), and the pool probe is gated off when an
# owned lead was found, so it neither scans nor locks. SKIP LOCKED lets concurrent claimers pass
# each other; the unique partial index leads_one_per_agent makes a second held lead impossible.
_DISPENSABLE = "held_by IS NULL AND deleted_at IS NULL AND status <> 'closed' AND next_attempt_at <= now()"
_CLAIM = text(f"""
WITH own AS (
    SELECT id FROM leads WHERE owner_id = :agent AND {_DISPENSABLE}
    ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
), pool AS (
    SELECT id FROM leads WHERE owner_id IS NULL AND {_DISPENSABLE} AND NOT EXISTS (SELECT 1 FROM own)
    ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE leads SET held_by = :agent, lease_expires_at = now() + make_interval(secs => :lease)
WHERE leads.id IN (SELECT id FROM own UNION ALL SELECT id FROM pool)
RETURNING {_LEAD_COLUMNS}
""")


async def claim_next_lead(
    session: AsyncSession, agent_id: int, lease_s: float, *, holds_none: bool = False
) -> HeldLead | None:
    """Atomically give the agent one lead: the one already held, else their own, else the pool's.

    ``holds_none`` skips the look-up of a held lead when the caller just released it. Commits.
    Returns None when nothing is dispensable now.
    """
    if not holds_none:
        current = await held_lead(session, agent_id)
        if current is not None:
            return current
    try:
        row = (await session.execute(_CLAIM, {"agent": agent_id, "lease": lease_s})).first()
    except IntegrityError:
        # The same agent claimed concurrently (two sockets): keep the lead it already got.
        await session.rollback()
        return await held_lead(session, agent_id)
    await session.commit()
    return _row(row) if row is not None else None


async def next_due(session: AsyncSession, agent_id: int) -> datetime | None:
    """When the agent's earliest not-yet-due lead becomes due (None if there is none)."""
    return (
        await session.execute(
            text(
                "SELECT min(next_attempt_at) FROM leads WHERE (owner_id = :agent OR owner_id IS NULL)"
                " AND held_by IS NULL AND deleted_at IS NULL AND status <> 'closed'"
            ),
            {"agent": agent_id},
        )
    ).scalar()


async def remaining_stock(session: AsyncSession, agent_id: int, cap: int) -> int:
    """How many unfinished leads the agent can still work, counted up to ``cap`` only (cheap).

    Two bounded probes (own leads, then the pool) so each reads one index range.
    """
    return (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM leads WHERE owner_id = :agent"
                "  AND (held_by IS NULL OR held_by = :agent) AND deleted_at IS NULL AND status <> 'closed'"
                "  LIMIT :cap) own)"
                " + (SELECT count(*) FROM (SELECT 1 FROM leads WHERE owner_id IS NULL"
                "  AND (held_by IS NULL OR held_by = :agent) AND deleted_at IS NULL AND status <> 'closed'"
                "  LIMIT :cap) pool)"
            ),
            {"agent": agent_id, "cap": cap},
        )
    ).scalar_one()


async def lead_history(session: AsyncSession, lead_id: int, limit: int = 10) -> list[ContactRecord]:
    """The lead's latest contacts, newest first."""
    rows = await session.execute(
        text(
            "SELECT c.created_at AS at, c.outcome, c.note, coalesce(u.display_name, '') AS agent_name"
            " FROM contact_attempts c LEFT JOIN users u ON u.id = c.agent_id"
            " WHERE c.lead_id = :lead ORDER BY c.created_at DESC LIMIT :limit"
        ),
        {"lead": lead_id, "limit": limit},
    )
    return [ContactRecord(**r._mapping) for r in rows]


async def record_disposition(
    session: AsyncSession,
    *,
    lead_id: int,
    agent_id: int,
    outcome: str,
    note: str,
    effect: DispositionEffect,
    call_id: uuid.UUID | None,
    find_call: bool = False,
) -> None:
    """Release the agent's lead with its new status and record the contact, in one transaction.

    ``find_call`` looks up the agent's latest call to the lead when the caller does not know it.
    Raises NotYourLead (and changes nothing) unless the agent holds the lead.
    """
    updated = (
        await session.execute(
            text(
                "UPDATE leads SET held_by = NULL, lease_expires_at = NULL, status = :status,"
                " next_attempt_at = :next, callback_at = :callback_at, attempts = attempts + 1,"
                " last_outcome = :outcome WHERE id = :lead AND held_by = :agent RETURNING id"
            ),
            {
                "status": effect.status,
                "next": effect.next_attempt_at,
                "callback_at": effect.callback_at,
                "outcome": outcome,
                "lead": lead_id,
                "agent": agent_id,
            },
        )
    ).first()
    if updated is None:
        await session.rollback()
        raise NotYourLead(lead_id)
    if call_id is None and find_call:
        call_id = (
            await session.execute(
                text(
                    "SELECT id FROM calls WHERE lead_id = :lead AND agent_id = :agent"
                    " ORDER BY started_at DESC LIMIT 1"
                ),
                {"lead": lead_id, "agent": agent_id},
            )
        ).scalar()
    await session.execute(
        text(
            "INSERT INTO contact_attempts (lead_id, agent_id, outcome, note, call_id, callback_at)"
            " VALUES (:lead, :agent, :outcome, :note, :call, :callback_at)"
        ),
        {
            "lead": lead_id,
            "agent": agent_id,
            "outcome": outcome,
            "note": note,
            "call": call_id,
            "callback_at": effect.callback_at,
        },
    )
    await session.commit()


async def refresh_leases(session: AsyncSession, agent_ids: list[int], lease_s: float) -> None:
    """Extend the leases of the leads held by connected agents."""
    if not agent_ids:
        return
    await session.execute(
        text(
            "UPDATE leads SET lease_expires_at = now() + make_interval(secs => :lease)"
            " WHERE held_by = ANY(:agents)"
        ),
        {"lease": lease_s, "agents": agent_ids},
    )
    await session.commit()


async def release_expired_leases(session: AsyncSession) -> list[tuple[int, int]]:
    """Return leads whose holder has been gone past the lease to the pool; (lead, agent) pairs."""
    rows = await session.execute(
        text(
            "WITH expired AS (SELECT id, held_by FROM leads"
            " WHERE held_by IS NOT NULL AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)"
            " UPDATE leads SET held_by = NULL, lease_expires_at = NULL"
            " FROM expired WHERE leads.id = expired.id RETURNING leads.id, expired.held_by"
        )
    )
    released = [(r[0], r[1]) for r in rows]
    await session.commit()
    return released
