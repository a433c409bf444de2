"""Lead queries: the held lead, dispositions, leases and stock (the claim is storage.dispatch)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
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


# Unheld leads still to be worked; the claim's partial indexes (migration 0006) share this predicate.
_WAITING = "held_by IS NULL AND deleted_at IS NULL"
_LISTS = "SELECT list FROM lineup_agent_lists(:agent, :general)"


async def next_due(session: AsyncSession, agent_id: int, *, general_pool: bool) -> datetime | None:
    """When the agent's earliest not-yet-due lead becomes due (None if there is none).

    Asked when nothing is dispensable now. One bounded probe per index of the claim: the agent's
    callbacks, callbacks for anyone on the agent's lists, and retries owned or on those lists.
    Fresh leads are due from the start (a refused one becomes a retry), so they are not asked.
    """
    return (
        await session.execute(
            text(
                f"WITH lists AS ({_LISTS}) SELECT least("
                f" (SELECT min(next_attempt_at) FROM leads WHERE callback_agent_id = :agent"
                f"   AND status = 'callback' AND {_WAITING}),"
                f" (SELECT min(next_attempt_at) FROM leads WHERE status = 'callback'"
                f"   AND callback_agent_id IS NULL AND {_WAITING}"
                f"   AND (owner_id = :agent OR coalesce(campaign_id, 0) IN (SELECT list FROM lists))),"
                f" (SELECT min(next_attempt_at) FROM leads WHERE coalesce(owner_id, 0) = :agent"
                f"   AND status = 'retry'"
                f"   AND {_WAITING} AND (callback_agent_id IS NULL OR callback_agent_id = :agent)),"
                f" (SELECT min(due) FROM lists, LATERAL (SELECT min(next_attempt_at) AS due FROM leads"
                f"   WHERE coalesce(owner_id, 0) = 0 AND coalesce(campaign_id, 0) = lists.list"
                f"   AND status = 'retry'"
                f"   AND {_WAITING} AND (callback_agent_id IS NULL OR callback_agent_id = :agent)) pool))"
            ),
            {"agent": agent_id, "general": general_pool},
        )
    ).scalar()


async def remaining_stock(session: AsyncSession, agent_id: int, cap: int, *, general_pool: bool) -> int:
    """How many leads the agent can still work besides the one held, counted up to ``cap`` (cheap).

    Bounded probes of the claim's indexes, each reading at most ``cap`` entries: the agent's
    callbacks, its own fresh leads and retries, and the shared ones on its lists.
    """
    mine = "(callback_agent_id IS NULL OR callback_agent_id = :agent)"
    probes = [f"SELECT 1 FROM leads WHERE callback_agent_id = :agent AND status = 'callback' AND {_WAITING}"]
    for status in ("new", "retry"):  # one partial index each
        probes += [
            f"SELECT 1 FROM leads WHERE coalesce(owner_id, 0) = :agent AND status = '{status}'"
            f" AND {_WAITING} AND {mine}",
            f"SELECT 1 FROM leads WHERE coalesce(owner_id, 0) = 0 AND status = '{status}'"
            f" AND {_WAITING} AND {mine}"
            f" AND coalesce(campaign_id, 0) IN ({_LISTS})",
        ]
    bounded = " + ".join(f"(SELECT count(*) FROM ({probe} LIMIT :cap) p)" for probe in probes)
    counts = (
        await session.execute(
            text(f"SELECT {bounded}"), {"agent": agent_id, "cap": cap, "general": general_pool}
        )
    ).scalar_one()
    return min(counts, cap)


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
                # A lead handed to another campaign starts afresh there: the contact policy's
                # pause after the outcome does not apply (its caps still count the attempt).
                " last_outcome = CASE WHEN :moved THEN 'handed_off' ELSE :outcome END,"
                " notes = notes || :notes, attributes = attributes || :attributes,"
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
