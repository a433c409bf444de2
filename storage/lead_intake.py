"""Writing new leads in bulk (demo data, tests, small programmatic batches)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Lead


@dataclass(frozen=True, slots=True)
class NewLead:
    name: str
    phone_e164: str
    area: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    owner_id: int | None = None


async def insert_leads(
    session: AsyncSession, leads: list[NewLead], batch_id: int | None, campaign_id: int | None = None
) -> int:
    """Insert one chunk of leads in one transaction; returns the count."""
    if not leads:
        return 0
    await session.execute(
        insert(Lead),
        [
            {
                "batch_id": batch_id,
                "campaign_id": campaign_id,
                "owner_id": lead.owner_id,
                "name": lead.name,
                "phone_e164": lead.phone_e164,
                "area": lead.area,
                "attributes": lead.attributes,
            }
            for lead in leads
        ],
    )
    await session.commit()
    return len(leads)
