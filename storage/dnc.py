"""Do-not-call lists: numbers never to be dialled, system-wide (campaign NULL) or per campaign."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

REASON_MAX = 64  # dnc_numbers.reason is varchar(64)


@dataclass(frozen=True, slots=True)
class DncEntry:
    """One listed number, as the DNC page shows it (the page masks the phone)."""

    id: int
    phone_e164: str
    campaign_id: int | None
    campaign_name: str
    reason: str
    added_by: str
    created_at: datetime


def _unique(phones: list[str]) -> list[str]:
    return list(dict.fromkeys(phones))


async def add_numbers(
    session: AsyncSession, phones: list[str], *, campaign_id: int | None, reason: str, added_by: int | None
) -> int:
    """List E.164 numbers (system-wide when ``campaign_id`` is None); returns how many were new.

    Idempotent: a number already on that list keeps its first reason. Does not commit.
    """
    phones = _unique(phones)
    if not phones:
        return 0
    result = await session.execute(
        text(
            "INSERT INTO dnc_numbers (phone_e164, campaign_id, reason, added_by)"
            " SELECT p, :campaign, :reason, :added_by FROM unnest(CAST(:phones AS varchar[])) AS p"
            " ON CONFLICT (phone_e164, campaign_id) DO NOTHING RETURNING id"
        ),
        {"phones": phones, "campaign": campaign_id, "reason": reason[:REASON_MAX], "added_by": added_by},
    )
    return len(result.all())


async def remove_numbers(session: AsyncSession, phones: list[str], *, campaign_id: int | None) -> int:
    """Take E.164 numbers off one list (system-wide when None); returns how many were listed.

    Does not commit.
    """
    if not phones:
        return 0
    result = await session.execute(
        text(
            "DELETE FROM dnc_numbers WHERE phone_e164 = ANY(:phones)"
            " AND campaign_id IS NOT DISTINCT FROM :campaign RETURNING id"
        ),
        {"phones": _unique(phones), "campaign": campaign_id},
    )
    return len(result.all())


async def remove_entries(session: AsyncSession, entry_ids: list[int]) -> int:
    """Delete list entries by their ids (the page's checkboxes); returns how many existed.

    Does not commit.
    """
    if not entry_ids:
        return 0
    result = await session.execute(
        text("DELETE FROM dnc_numbers WHERE id = ANY(:ids) RETURNING id"), {"ids": entry_ids}
    )
    return len(result.all())


async def is_blocked(session: AsyncSession, phone: str, campaign_id: int | None) -> bool:
    """Whether the number is on the system-wide list or on this campaign's list."""
    return bool(
        (
            await session.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM dnc_numbers WHERE phone_e164 = :phone"
                    " AND (campaign_id IS NULL OR campaign_id = :campaign))"
                ),
                {"phone": phone, "campaign": campaign_id},
            )
        ).scalar()
    )


def _filters(phone: str | None, campaign_id: int | None, system_only: bool) -> tuple[str, dict[str, Any]]:
    clauses, params = ["true"], {}
    if phone is not None:
        clauses.append("d.phone_e164 = :phone")
        params["phone"] = phone
    if system_only:
        clauses.append("d.campaign_id IS NULL")
    elif campaign_id is not None:
        clauses.append("d.campaign_id = :campaign")
        params["campaign"] = campaign_id
    return " AND ".join(clauses), params


async def list_entries(
    session: AsyncSession,
    *,
    phone: str | None = None,
    campaign_id: int | None = None,
    system_only: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[DncEntry]]:
    """One page of list entries, newest first, and the total that match.

    ``phone`` (E.164) narrows to one number; ``campaign_id`` to one campaign's list and
    ``system_only`` to the system-wide list; neither means every list.
    """
    where, params = _filters(phone, campaign_id, system_only)
    total = (
        await session.execute(text(f"SELECT count(*) FROM dnc_numbers d WHERE {where}"), params)
    ).scalar()
    rows = await session.execute(
        text(
            "SELECT d.id, d.phone_e164, d.campaign_id, coalesce(c.name, '') AS campaign_name, d.reason,"
            " coalesce(u.display_name, '') AS added_by, d.created_at"
            " FROM dnc_numbers d LEFT JOIN campaigns c ON c.id = d.campaign_id"
            f" LEFT JOIN users u ON u.id = d.added_by WHERE {where}"
            " ORDER BY d.created_at DESC, d.id DESC OFFSET :offset LIMIT :limit"
        ),
        {**params, "offset": offset, "limit": limit},
    )
    return int(total or 0), [DncEntry(**r._mapping) for r in rows]


async def campaigns(session: AsyncSession) -> list[tuple[int, str]]:
    """Every campaign as (id, name), for choosing a list."""
    rows = await session.execute(text("SELECT id, name FROM campaigns ORDER BY name"))
    return [(r[0], r[1]) for r in rows]
