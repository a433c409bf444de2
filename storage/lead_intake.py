"""Writing new leads: import batches, customers upserted by phone, leads inserted in bulk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Customer, Lead


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
    """Insert one chunk of leads (customers upserted by phone) in one transaction; returns the count."""
    if not leads:
        return 0
    customer_rows = {
        lead.phone_e164: {"phone_e164": lead.phone_e164, "name": lead.name, "area": lead.area}
        for lead in leads
    }
    stmt = pg_insert(Customer).values(list(customer_rows.values()))
    await session.execute(stmt.on_conflict_do_nothing(index_elements=[Customer.phone_e164]))
    rows = await session.execute(
        select(Customer.phone_e164, Customer.id).where(Customer.phone_e164.in_(list(customer_rows)))
    )
    ids = {phone: customer_id for phone, customer_id in rows}
    await session.execute(
        insert(Lead),
        [
            {
                "customer_id": ids[lead.phone_e164],
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
