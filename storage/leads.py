"""Lead queries: the atomic claim, dispositions, leases and stock."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import dnc

_LEAD_COLUMNS = (
    "id, name, phone_e164, area, attributes, status, owner_id, callback_at, attempts, campaign_id, notes"
)


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
    campaign_id: int | None
    notes: str


@dataclass(frozen=True, slots=True)
class ContactRecord:
    at: datetime
    outcome: str
    note: str
    agent_name: str


@dataclass(frozen=True, slots=True)
class DispositionEffect:
    """What a disposition does to its lead (decided by the hub's rules, applied here).

    ``move_to_campaign`` hands the lead to another campaign's shared pool (TMK → sales), with
    ``append_notes`` and ``attributes`` added for the agent who gets it next.
    """

    status: str
    next_attempt_at: datetime
    callback_at: datetime | None
    callback_agent_id: int | None = None  # a callback promised by this agent; None: anyone
    move_to_campaign: int | None = None
    append_notes: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


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


# Which shared-pool leads an agent may work: those of the active campaigns of the agent's kind
# (sales / tmk) that it belongs to, directly or through its team (as storage.campaigns.
# campaigns_of_agent), and for sales agents (:general) the leads of no campaign.
_MEMBER = (
    "(campaign_id IS NULL AND :general OR campaign_id IN (SELECT c.id FROM campaigns c"
    " WHERE c.active AND c.kind = (SELECT role FROM users WHERE id = :agent) AND (c.id IN"
    " (SELECT campaign_id FROM campaign_agents WHERE user_id = :agent) OR c.id IN"
    " (SELECT ct.campaign_id FROM campaign_teams ct JOIN users u ON u.team_id = ct.team_id"
    " WHERE u.id = :agent))))"
)
# A do-not-call number is never dispensed, whoever owns the lead.
_NOT_DNC = (
    "NOT EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = leads.phone_e164"
    " AND (d.campaign_id IS NULL OR d.campaign_id = leads.campaign_id))"
)
_OPEN = "deleted_at IS NULL AND status <> 'closed'"
_DISPENSABLE = f"held_by IS NULL AND {_OPEN} AND next_attempt_at <= now() AND {_NOT_DNC}"

# A callback promised by this agent first, then owned leads, then the shared pool, in one
# statement: each probe reads the head of its own partial index (leads_callbacks, leads_claimable,
# leads_pool_claimable), and a later probe is gated off when an earlier one found a lead, so it
# neither scans nor locks. Callbacks promised by other agents are theirs until they pass to anyone.
# SKIP LOCKED lets concurrent claimers pass each other; the unique partial index
# leads_one_per_agent makes a second held lead impossible.
_NOT_SOMEONE_ELSES = "(callback_agent_id IS NULL OR callback_agent_id = :agent)"
_CLAIM = text(f"""
WITH callback AS (
    SELECT id FROM leads WHERE callback_agent_id = :agent AND status = 'callback' AND {_DISPENSABLE}
    ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED
), own AS (
    SELECT id FROM leads WHERE owner_id = :agent AND {_DISPENSABLE} AND {_NOT_SOMEONE_ELSES}
      AND NOT EXISTS (SELECT 1 FROM callback)
    ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
), pool AS (
    SELECT id FROM leads WHERE owner_id IS NULL AND {_DISPENSABLE} AND {_MEMBER} AND {_NOT_SOMEONE_ELSES}
      AND NOT EXISTS (SELECT 1 FROM callback) AND NOT EXISTS (SELECT 1 FROM own)
    ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE leads SET held_by = :agent, lease_expires_at = now() + make_interval(secs => :lease)
WHERE leads.id IN (SELECT id FROM callback UNION ALL SELECT id FROM own UNION ALL SELECT id FROM pool)
RETURNING {_LEAD_COLUMNS}
""")


async def claim_next_lead(
    session: AsyncSession, agent_id: int, lease_s: float, *, general_pool: bool, holds_none: bool = False
) -> HeldLead | None:
    """Atomically give the agent one lead: the one already held, else their own, else the pool's.

    ``general_pool``: the agent may also take shared leads of no campaign (sales agents).
    ``holds_none`` skips the look-up of a held lead when the caller just released it. Commits.
    Returns None when nothing is dispensable now.
    """
    if not holds_none:
        current = await held_lead(session, agent_id)
        if current is not None:
            return current
    params = {"agent": agent_id, "lease": lease_s, "general": general_pool}
    try:
        row = (await session.execute(_CLAIM, params)).first()
    except IntegrityError:
        # The same agent claimed concurrently (two sockets): keep the lead it already got.
        await session.rollback()
        return await held_lead(session, agent_id)
    await session.commit()
    return _row(row) if row is not None else None


async def next_due(session: AsyncSession, agent_id: int, *, general_pool: bool) -> datetime | None:
    """When the agent's earliest not-yet-due lead becomes due (None if there is none)."""
    return (
        await session.execute(
            text(
                f"SELECT min(next_attempt_at) FROM leads WHERE held_by IS NULL AND {_OPEN} AND {_NOT_DNC}"
                f" AND (owner_id = :agent OR owner_id IS NULL AND {_MEMBER})"
            ),
            {"agent": agent_id, "general": general_pool},
        )
    ).scalar()


async def remaining_stock(session: AsyncSession, agent_id: int, cap: int, *, general_pool: bool) -> int:
    """How many unfinished leads the agent can still work, counted up to ``cap`` only (cheap).

    Two bounded probes (own leads, then the pool) so each reads one index range.
    """
    return (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM leads WHERE owner_id = :agent"
                f"  AND (held_by IS NULL OR held_by = :agent) AND {_OPEN} LIMIT :cap) own)"
                " + (SELECT count(*) FROM (SELECT 1 FROM leads WHERE owner_id IS NULL"
                f"  AND (held_by IS NULL OR held_by = :agent) AND {_OPEN} AND {_MEMBER} LIMIT :cap) pool)"
            ),
            {"agent": agent_id, "cap": cap, "general": general_pool},
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
    mark_dnc: bool = False,
) -> None:
    """Release the agent's lead with its new status and record the contact, in one transaction.

    ``find_call`` looks up the agent's latest call to the lead when the caller does not know it;
    ``mark_dnc`` puts the lead's number on the system-wide do-not-call list.
    Raises NotYourLead (and changes nothing) unless the agent holds the lead.
    """
    moved = effect.move_to_campaign is not None
    updated = (
        await session.execute(
            text(
                "UPDATE leads SET held_by = NULL, lease_expires_at = NULL, cleared_at = NULL,"
                " status = :status, next_attempt_at = :next, callback_at = :callback_at,"
                " callback_agent_id = :callback_agent,"
                " attempts = attempts + 1,"
                " last_outcome = :outcome, notes = notes || :notes, attributes = attributes || :attributes,"
                " campaign_id = CASE WHEN :moved THEN :campaign ELSE campaign_id END,"
                " owner_id = CASE WHEN :moved THEN NULL ELSE owner_id END"
                " WHERE id = :lead AND held_by = :agent RETURNING phone_e164"
            ),
            {
                "status": effect.status,
                "next": effect.next_attempt_at,
                "callback_at": effect.callback_at,
                "callback_agent": effect.callback_agent_id,
                "outcome": outcome,
                "notes": effect.append_notes,
                "attributes": json.dumps(effect.attributes, ensure_ascii=False),
                "moved": moved,
                "campaign": effect.move_to_campaign,
                "lead": lead_id,
                "agent": agent_id,
            },
        )
    ).first()
    if updated is None:
        await session.rollback()
        raise NotYourLead(lead_id)
    if mark_dnc:
        await dnc.add_numbers(
            session, [updated[0]], campaign_id=None, reason="agent_disposition", added_by=agent_id
        )
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
            "INSERT INTO contact_attempts"
            " (lead_id, agent_id, outcome, note, call_id, callback_at, phone_e164)"
            " VALUES (:lead, :agent, :outcome, :note, :call, :callback_at, :phone)"
        ),
        {
            "phone": updated[0],
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


async def pass_stale_callbacks(session: AsyncSession, grace_s: float) -> int:
    """Personal callbacks due for longer than ``grace_s`` become anyone's; returns how many."""
    rows = await session.execute(
        text(
            "UPDATE leads SET callback_agent_id = NULL WHERE status = 'callback'"
            " AND callback_agent_id IS NOT NULL AND held_by IS NULL AND deleted_at IS NULL"
            " AND next_attempt_at < now() - make_interval(secs => :grace) RETURNING id"
        ),
        {"grace": grace_s},
    )
    passed = len(rows.all())
    await session.commit()
    return passed


@dataclass(frozen=True, slots=True)
class DueCallback:
    lead_id: int
    agent_id: int
    name: str
    phone_e164: str
    due_at: datetime


async def due_callbacks(
    session: AsyncSession, agent_ids: list[int], since: datetime | None
) -> tuple[datetime, list[DueCallback]]:
    """Personal callbacks of these agents that fell due after ``since``; and the database's now."""
    now = (await session.execute(text("SELECT now()"))).scalar_one()
    if not agent_ids:
        return now, []
    rows = await session.execute(
        text(
            "SELECT id, callback_agent_id, name, phone_e164, next_attempt_at FROM leads"
            " WHERE callback_agent_id = ANY(:agents) AND status = 'callback' AND held_by IS NULL"
            " AND deleted_at IS NULL AND next_attempt_at <= :now"
            " AND (CAST(:since AS timestamptz) IS NULL OR next_attempt_at > :since)"
            " ORDER BY next_attempt_at"
        ),
        {"agents": agent_ids, "now": now, "since": since},
    )
    return now, [DueCallback(*r) for r in rows]


async def release_expired_leases(session: AsyncSession) -> list[tuple[int, int]]:
    """Return leads whose holder has been gone past the lease to the pool; (lead, agent) pairs."""
    rows = await session.execute(
        text(
            "WITH expired AS (SELECT id, held_by FROM leads"
            " WHERE held_by IS NOT NULL AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)"
            " UPDATE leads SET held_by = NULL, lease_expires_at = NULL, cleared_at = NULL"
            " FROM expired WHERE leads.id = expired.id RETURNING leads.id, expired.held_by"
        )
    )
    released = [(r[0], r[1]) for r in rows]
    await session.commit()
    return released
