"""The audit log: who did what sensitive thing, when, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry


async def record(
    session: AsyncSession,
    *,
    actor_id: int | None,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    ip: str = "",
) -> None:
    """Append one audit entry in the caller's transaction (the caller commits)."""
    await session.execute(
        insert(AuditEntry).values(actor_id=actor_id, action=action, target=target, detail=detail or {}, ip=ip)
    )
