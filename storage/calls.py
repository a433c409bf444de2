"""Call records (partitioned by month on ``started_at``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Call


async def start_call(
    session: AsyncSession,
    *,
    call_id: uuid.UUID,
    started_at: datetime,
    direction: str,
    agent_id: int | None,
    lead_id: int | None,
    phone_e164: str,
) -> None:
    """Insert a call in state ``dialing`` (commits)."""
    await session.execute(
        insert(Call).values(
            id=call_id,
            started_at=started_at,
            direction=direction,
            agent_id=agent_id,
            lead_id=lead_id,
            phone_e164=phone_e164,
            state="dialing",
        )
    )
    await session.commit()


async def update_call(
    session: AsyncSession, call_id: uuid.UUID, started_at: datetime, **values: object
) -> None:
    """Set columns of one call; ``started_at`` prunes the search to its partition (commits)."""
    await session.execute(
        update(Call).where(Call.id == call_id, Call.started_at == started_at).values(**values)
    )
    await session.commit()


async def link_lead(session: AsyncSession, call_id: uuid.UUID, started_at: datetime, lead_id: int) -> None:
    """Attach a call to the lead made for its caller during the call (commits)."""
    await update_call(session, call_id, started_at, lead_id=lead_id)
