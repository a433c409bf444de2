"""What the contact policy reads and writes: its settings, a lead's contact facts, cleared holds.

The policy itself (``hub.policy``) is pure; this module loads the facts it decides on and records
the verdict. Clearing a held lead for dialling happens under a transaction-scoped advisory lock on
the phone number, so checks of the same number run one at a time and each sees the holds cleared
before it: two agents can never both be cleared past a number's cap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SYSTEM_POLICY = "contact.system"  # limits on top of every campaign
DEFAULT_POLICY = "contact.default"  # leads of no campaign, and new campaigns


async def setting(session: AsyncSession, key: str) -> dict[str, Any] | None:
    return (
        await session.execute(text("SELECT value FROM system_settings WHERE key = :k"), {"k": key})
    ).scalar()


async def put_setting(session: AsyncSession, key: str, value: dict[str, Any], actor_id: int | None) -> None:
    """Store a system-wide setting (the caller commits)."""
    await session.execute(
        text(
            "INSERT INTO system_settings (key, value, updated_by) VALUES (:k, CAST(:v AS jsonb), :actor)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(),"
            " updated_by = EXCLUDED.updated_by"
        ),
        {"k": key, "v": json.dumps(value, ensure_ascii=False), "actor": actor_id},
    )


async def campaign_policies(session: AsyncSession) -> dict[int, dict[str, Any] | None]:
    """Each campaign's stored contact policy (None: the default applies)."""
    rows = await session.execute(text("SELECT id, settings -> 'contact' FROM campaigns"))
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True, slots=True)
class LeadContact:
    """A lead's facts for the policy; the attempts of its number include holds cleared elsewhere."""

    lead_id: int
    phone_e164: str
    campaign_id: int | None
    status: str
    callback_at: datetime | None
    last_outcome: str | None
    on_dnc: bool
    lead_attempts: tuple[datetime, ...]
    phone_attempts: tuple[datetime, ...]


_FACTS = text(
    """
    SELECT l.id, l.phone_e164, l.campaign_id, l.status, l.callback_at, l.last_outcome,
        EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = l.phone_e164
                AND (d.campaign_id IS NULL OR d.campaign_id = l.campaign_id)) AS on_dnc,
        ARRAY(SELECT c.created_at FROM contact_attempts c WHERE c.lead_id = l.id ORDER BY 1) AS lead_times,
        ARRAY(
            SELECT c.created_at FROM contact_attempts c WHERE c.phone_e164 = l.phone_e164
            UNION ALL
            SELECT o.cleared_at FROM leads o
            WHERE o.phone_e164 = l.phone_e164 AND o.cleared_at IS NOT NULL AND o.id <> l.id
            ORDER BY 1
        ) AS phone_times
    FROM leads l WHERE l.id = :lead
    """
)


async def lead_contact(session: AsyncSession, lead_id: int) -> LeadContact | None:
    row = (await session.execute(_FACTS, {"lead": lead_id})).first()
    if row is None:
        return None
    return LeadContact(
        row.id,
        row.phone_e164,
        row.campaign_id,
        row.status,
        row.callback_at,
        row.last_outcome,
        row.on_dnc,
        tuple(row.lead_times),
        tuple(row.phone_times),
    )


_NUMBER_FACTS = text(
    """
    SELECT EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = :phone
                   AND (d.campaign_id IS NULL OR d.campaign_id = CAST(:campaign AS integer))) AS on_dnc,
        ARRAY(
            SELECT c.created_at FROM contact_attempts c WHERE c.phone_e164 = :phone
            UNION ALL
            SELECT o.cleared_at FROM leads o WHERE o.phone_e164 = :phone AND o.cleared_at IS NOT NULL
            ORDER BY 1
        ) AS phone_times
    """
)


async def number_contact(session: AsyncSession, phone_e164: str, campaign_id: int | None) -> LeadContact:
    """The facts of a new lead with this number in this campaign (lead id 0, never contacted)."""
    row = (await session.execute(_NUMBER_FACTS, {"phone": phone_e164, "campaign": campaign_id})).one()
    return LeadContact(0, phone_e164, campaign_id, "new", None, None, row.on_dnc, (), tuple(row.phone_times))


async def hold_of(session: AsyncSession, lead_id: int) -> tuple[str, int | None, datetime | None] | None:
    """A lead's number, holder and clearing time (the cheap look-up before the lock)."""
    row = (
        await session.execute(
            text("SELECT phone_e164, held_by, cleared_at FROM leads WHERE id = :lead"), {"lead": lead_id}
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


async def lock_number(session: AsyncSession, phone_e164: str) -> None:
    """Serialise policy checks of this number until the transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:p, 7))"), {"p": phone_e164})


async def clear_hold(session: AsyncSession, lead_id: int, agent_id: int, at: datetime) -> bool:
    """Mark the agent's held lead as cleared for dialling; False if the agent no longer holds it."""
    done = await session.execute(
        text("UPDATE leads SET cleared_at = :at WHERE id = :lead AND held_by = :agent RETURNING id"),
        {"at": at, "lead": lead_id, "agent": agent_id},
    )
    return done.first() is not None


async def defer_hold(
    session: AsyncSession, lead_id: int, agent_id: int, until: datetime | None, *, close: bool
) -> None:
    """Give back a held lead the policy refused: due again at ``until``, or closed for good."""
    await session.execute(
        text(
            "UPDATE leads SET held_by = NULL, lease_expires_at = NULL, cleared_at = NULL,"
            " next_attempt_at = coalesce(:until, next_attempt_at),"
            " status = CASE WHEN :close THEN 'closed' ELSE status END"
            " WHERE id = :lead AND held_by = :agent"
        ),
        {"until": until, "close": close, "lead": lead_id, "agent": agent_id},
    )


async def reschedule(session: AsyncSession, lead_id: int, earliest: datetime | None, *, close: bool) -> None:
    """After a contact: the lead is due no sooner than the policy's earliest time (or closed)."""
    await session.execute(
        text(
            "UPDATE leads SET next_attempt_at = greatest(next_attempt_at, coalesce(:at, next_attempt_at)),"
            " status = CASE WHEN :close AND status <> 'closed' THEN 'closed' ELSE status END"
            " WHERE id = :lead AND held_by IS NULL"
        ),
        {"at": earliest, "close": close, "lead": lead_id},
    )
