"""What the contact policy reads and writes: its settings, a lead's contact facts, cleared holds.

The policy itself (``hub.policy``) is pure; this module loads the facts it decides on and records
the verdict. Clearing a claimed lead for dialling happens in the claim itself (storage.dispatch),
under a transaction-scoped advisory lock on the phone number.
"""

from __future__ import annotations

import json
import uuid
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


# lineup_lead_facts (migration 0006) is the same read the claim makes under the number's lock.
_FACTS = text("SELECT * FROM lineup_lead_facts(:lead)")


async def lead_contact(session: AsyncSession, lead_id: int) -> LeadContact | None:
    row = (await session.execute(_FACTS, {"lead": lead_id})).first()
    if row is None:
        return None
    return LeadContact(
        lead_id,
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
                   AND (d.campaign_id IS NULL OR d.campaign_id = CAST(:campaign AS integer) OR :any_list))
        AS on_dnc,
        ARRAY(
            SELECT c.created_at FROM contact_attempts c WHERE c.phone_e164 = :phone
            UNION ALL
            SELECT o.cleared_at FROM leads o WHERE o.phone_e164 = :phone AND o.cleared_at IS NOT NULL
            ORDER BY 1
        ) AS phone_times
    """
)


async def number_contact(
    session: AsyncSession, phone_e164: str, campaign_id: int | None, *, any_list: bool = False
) -> LeadContact:
    """The facts of a new lead with this number in this campaign (lead id 0, never contacted).

    ``any_list``: the number counts as do-not-call when any campaign's list has it (a manual call
    belongs to no campaign, so every list applies).
    """
    params = {"phone": phone_e164, "campaign": campaign_id, "any_list": any_list}
    row = (await session.execute(_NUMBER_FACTS, params)).one()
    return LeadContact(0, phone_e164, campaign_id, "new", None, None, row.on_dnc, (), tuple(row.phone_times))


async def lock_number(session: AsyncSession, phone_e164: str) -> None:
    """Take the number's lock until the transaction ends: the lock the claim takes (migration 0006)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:phone, 7))"), {"phone": phone_e164}
    )


async def record_manual_attempt(
    session: AsyncSession, *, agent_id: int, phone_e164: str, call_id: uuid.UUID, at: datetime
) -> None:
    """A number dialled by hand counts as an attempt on it (no lead; the caller commits)."""
    await session.execute(
        text(
            "INSERT INTO contact_attempts (created_at, lead_id, agent_id, outcome, call_id, phone_e164)"
            " VALUES (:at, NULL, :agent, 'manual', :call, :phone)"
        ),
        {"at": at, "agent": agent_id, "call": call_id, "phone": phone_e164},
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
