"""Writing leads from the registration stream: one lead per event, however often the event arrives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import campaigns

SOURCE = "registration"


@dataclass(frozen=True, slots=True)
class Registration:
    """One sign-up from the education app, cleaned: the event id makes it idempotent."""

    event_id: str
    name: str
    phone_e164: str
    attributes: dict[str, Any] = field(default_factory=dict)


async def campaign_named(session: AsyncSession, name: str, kind: str) -> int:
    """The id of the campaign called ``name``, created (with ``kind``, audited) if missing; commits.

    The rules are :func:`storage.campaigns.campaign_named`'s: safe when several processes call it at
    once, and :class:`storage.campaigns.CampaignError` (``kind_mismatch``) if the existing campaign
    has another kind.
    """
    campaign = await campaigns.campaign_named(session, name, kind)
    await session.commit()
    return campaign.id


# One statement for the whole batch with a fixed text, so asyncpg prepares it once; the unique
# partial index on source_event_id drops events seen before.
_INSERT_LEADS = text(
    """
    WITH inserted AS (
        INSERT INTO leads (campaign_id, name, phone_e164, attributes, source, source_event_id)
        SELECT :campaign_id, r.name, r.phone, CAST(r.attributes AS jsonb), :source, r.event_id
        FROM unnest(
            CAST(:event_ids AS text[]), CAST(:names AS text[]),
            CAST(:phones AS text[]), CAST(:attributes AS text[])
        ) AS r(event_id, name, phone, attributes)
        ORDER BY r.event_id
        ON CONFLICT (source_event_id) WHERE source_event_id IS NOT NULL DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM inserted
    """
)


async def insert_registrations(
    session: AsyncSession, registrations: list[Registration], campaign_id: int
) -> int:
    """Insert the leads of these registrations in one transaction; returns how many were new.

    A registration whose ``event_id`` already made a lead (in an earlier call, or earlier in this
    list) is skipped by ``ON CONFLICT DO NOTHING`` on the unique ``leads_source_event`` index, so
    replaying a batch creates nothing twice. Rows are written in event order, so concurrent
    consumers lock in the same order and cannot deadlock.
    """
    if not registrations:
        return 0
    unique = sorted({r.event_id: r for r in reversed(registrations)}.values(), key=lambda r: r.event_id)
    created = (
        await session.execute(
            _INSERT_LEADS,
            {
                "campaign_id": campaign_id,
                "source": SOURCE,
                "event_ids": [r.event_id for r in unique],
                "names": [r.name for r in unique],
                "phones": [r.phone_e164 for r in unique],
                "attributes": [json.dumps(r.attributes, ensure_ascii=False) for r in unique],
            },
        )
    ).scalar_one()
    await session.commit()
    return created
