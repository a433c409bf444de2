"""Import jobs: the batch row as a progress record, a staging table fed by COPY, and the set-based
clean-up that turns staged rows into leads (de-duplication, do-not-call scrub, inserts).

Python holds one chunk of rows at a time; duplicates and the do-not-call scrub are decided by
Postgres over the whole file, so memory stays flat whatever the file size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.models import ImportBatch

STAGING = "import_staging"


@dataclass(frozen=True, slots=True)
class StagedRow:
    row_number: int
    phone_e164: str
    name: str
    area: str
    attributes: str  # JSON text, ready for COPY
    cells: str  # JSON text of the row as read, for the rejected-rows download


@dataclass(frozen=True, slots=True)
class RejectRow:
    row_number: int
    reason: str
    cells: str  # JSON text


async def create_batch(
    session: AsyncSession,
    *,
    filename: str,
    created_by: int | None,
    campaign_id: int | None,
    bytes_total: int,
    mapping: dict[str, Any],
    status: str,
) -> int:
    """A new import batch (commits)."""
    batch = ImportBatch(
        filename=filename[:255],
        created_by=created_by,
        campaign_id=campaign_id,
        bytes_total=bytes_total,
        mapping=mapping,
        status=status,
    )
    session.add(batch)
    await session.commit()
    return batch.id


async def get_batch(session: AsyncSession, batch_id: int) -> ImportBatch | None:
    return await session.get(ImportBatch, batch_id, populate_existing=True)


async def latest_batches(session: AsyncSession, limit: int = 20) -> list[ImportBatch]:
    return list(
        (await session.execute(select(ImportBatch).order_by(ImportBatch.id.desc()).limit(limit))).scalars()
    )


async def set_batch(session: AsyncSession, batch_id: int, **values: Any) -> None:
    """Update a batch's status, progress or counts (commits)."""
    await session.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(**values))
    await session.commit()


async def fail_stale_batches(session: AsyncSession, started_before: datetime) -> list[int]:
    """Mark jobs whose worker died (still running long after start) as failed; returns their ids."""
    rows = await session.execute(
        update(ImportBatch)
        .where(
            ImportBatch.status.in_(("queued", "running", "uploaded")), ImportBatch.created_at < started_before
        )
        .values(status="failed", error="the import was interrupted; please upload the file again")
        .returning(ImportBatch.id)
    )
    ids = [r[0] for r in rows]
    await session.commit()
    return ids


async def create_staging(conn: AsyncConnection) -> None:
    """A temporary table for this connection's import (gone when the connection closes)."""
    await conn.execute(
        text(
            f"CREATE TEMP TABLE {STAGING} (row_number integer NOT NULL, phone_e164 text NOT NULL,"
            " name text NOT NULL, area text NOT NULL, attributes jsonb NOT NULL, cells jsonb NOT NULL)"
        )
    )


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's, for COPY."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def copy_staged(conn: AsyncConnection, rows: list[StagedRow]) -> None:
    """COPY a chunk of cleaned rows into the staging table."""
    if rows:
        await (await _driver(conn)).copy_records_to_table(
            STAGING,
            records=[(r.row_number, r.phone_e164, r.name, r.area, r.attributes, r.cells) for r in rows],
            columns=["row_number", "phone_e164", "name", "area", "attributes", "cells"],
        )


async def copy_rejects(conn: AsyncConnection, batch_id: int, rows: list[RejectRow]) -> None:
    """COPY a chunk of rejected rows (invalid phones) straight into import_rejects."""
    if rows:
        await (await _driver(conn)).copy_records_to_table(
            "import_rejects",
            records=[(batch_id, r.row_number, r.reason, r.cells) for r in rows],
            columns=["batch_id", "row_number", "reason", "cells"],
        )


@dataclass(frozen=True, slots=True)
class Settled:
    duplicate: int
    dnc: int
    inserted: int


async def settle(
    conn: AsyncConnection, *, batch_id: int, campaign_id: int | None, dedup_window_days: int
) -> Settled:
    """Turn the staged rows into leads in one transaction; returns the set-based counts.

    Order of verdicts for a phone: a repeat within the file (the first row wins), then do-not-call
    (system-wide or this campaign), then an existing lead (not deleted, created within the window;
    window 0 = ever), else a new lead (its customer upserted by phone).
    """
    params = {"batch": batch_id, "campaign": campaign_id, "window": dedup_window_days}
    steps = [
        f"CREATE TEMP TABLE import_firsts ON COMMIT DROP AS SELECT DISTINCT ON (phone_e164) * FROM {STAGING}"
        " ORDER BY phone_e164, row_number",
        "CREATE INDEX ON import_firsts (phone_e164)",
        f"INSERT INTO import_rejects (batch_id, row_number, reason, cells) SELECT :batch, s.row_number,"
        f" 'duplicate_in_file', s.cells FROM {STAGING} s"
        " WHERE NOT EXISTS (SELECT 1 FROM import_firsts f WHERE f.row_number = s.row_number)",
        "CREATE TEMP TABLE import_dnc ON COMMIT DROP AS SELECT f.* FROM import_firsts f WHERE EXISTS"
        " (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = f.phone_e164"
        "  AND (d.campaign_id IS NULL OR d.campaign_id = CAST(:campaign AS integer)))",
        "INSERT INTO import_rejects (batch_id, row_number, reason, cells)"
        " SELECT :batch, row_number, 'dnc', cells FROM import_dnc",
        "CREATE TEMP TABLE import_known ON COMMIT DROP AS SELECT f.* FROM import_firsts f WHERE EXISTS"
        " (SELECT 1 FROM leads l WHERE l.phone_e164 = f.phone_e164 AND l.deleted_at IS NULL"
        "  AND (:window = 0 OR l.created_at >= now() - make_interval(days => :window)))"
        " AND NOT EXISTS (SELECT 1 FROM import_dnc d WHERE d.row_number = f.row_number)",
        "INSERT INTO import_rejects (batch_id, row_number, reason, cells)"
        " SELECT :batch, row_number, 'duplicate_existing', cells FROM import_known",
        "CREATE TEMP TABLE import_fresh ON COMMIT DROP AS SELECT f.* FROM import_firsts f"
        " WHERE NOT EXISTS (SELECT 1 FROM import_dnc d WHERE d.row_number = f.row_number)"
        " AND NOT EXISTS (SELECT 1 FROM import_known k WHERE k.row_number = f.row_number)",
        "INSERT INTO customers (phone_e164, name, area) SELECT phone_e164, name, area FROM import_fresh"
        " ON CONFLICT (phone_e164) DO NOTHING",
        "INSERT INTO leads (customer_id, batch_id, campaign_id, name, phone_e164, area, attributes, source)"
        " SELECT c.id, :batch, :campaign, f.name, f.phone_e164, f.area, f.attributes, 'import'"
        " FROM import_fresh f JOIN customers c ON c.phone_e164 = f.phone_e164 ORDER BY f.row_number",
    ]
    async with conn.begin():
        for sql in steps:
            await conn.execute(text(sql), params)
        counts = (
            await conn.execute(
                text(
                    f"SELECT (SELECT count(*) FROM {STAGING}) - (SELECT count(*) FROM import_firsts),"
                    " (SELECT count(*) FROM import_dnc), (SELECT count(*) FROM import_known),"
                    " (SELECT count(*) FROM import_fresh)"
                )
            )
        ).one()
        await conn.execute(text(f"TRUNCATE {STAGING}"))
    in_file, dnc, known, fresh = counts
    return Settled(duplicate=in_file + known, dnc=dnc, inserted=fresh)


async def rejects(
    session: AsyncSession, batch_id: int, after_row: int, limit: int
) -> list[tuple[int, str, list[str]]]:
    """A page of a batch's rejected rows in row order (for the CSV download)."""
    rows = await session.execute(
        text(
            "SELECT row_number, reason, cells FROM import_rejects WHERE batch_id = :b AND row_number > :after"
            " ORDER BY row_number LIMIT :limit"
        ),
        {"b": batch_id, "after": after_row, "limit": limit},
    )
    return [(r[0], r[1], r[2]) for r in rows]
