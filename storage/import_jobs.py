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


# One staged row: (row_number, phone_e164 or None, name, area, attribute values, cells, reject reason).
# Cells and attribute values travel as text[] (encoded by asyncpg in C); JSON is built in SQL, and
# only for the rows that need it.
StagedRow = tuple[int, str | None, str, str, list[str | None], list[str], str | None]


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
    """This job's temporary tables (gone with the connection): one chunk of rows, and the phones seen."""
    await conn.execute(
        text(
            f"CREATE TEMP TABLE {STAGING} (row_number integer NOT NULL, phone_e164 text, name text NOT NULL,"
            " area text NOT NULL, attr_values text[] NOT NULL, cells text[] NOT NULL, reason text)"
        )
    )
    await conn.execute(text("CREATE TEMP TABLE import_seen (phone_e164 text PRIMARY KEY)"))


async def copy_chunk(conn: AsyncConnection, rows: list[StagedRow]) -> None:
    """COPY one chunk of cleaned and rejected rows into the staging table."""
    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(
        STAGING,
        records=rows,
        columns=["row_number", "phone_e164", "name", "area", "attr_values", "cells", "reason"],
    )


@dataclass(frozen=True, slots=True)
class Settled:
    duplicate: int
    dnc: int
    inserted: int


async def settle_chunk(
    conn: AsyncConnection,
    *,
    batch_id: int,
    campaign_id: int | None,
    dedup_window_days: int,
    attribute_keys: list[str],
) -> Settled:
    """Turn the staged chunk into leads, inside the job's one transaction; returns its counts.

    Verdicts for a phone: invalid (decided in Python), a repeat within the file (the first row
    wins, across chunks through ``import_seen``), on a do-not-call list (system-wide or this
    campaign), an existing lead (not deleted, created within the window; 0 = ever), else a new lead
    whose customer is upserted by phone. Rejected rows keep their cells for the download.
    """
    params = {"batch": batch_id, "campaign": campaign_id, "window": dedup_window_days, "keys": attribute_keys}
    steps = [
        "INSERT INTO import_rejects (batch_id, row_number, reason, cells)"
        f" SELECT :batch, row_number, reason, to_jsonb(cells) FROM {STAGING} WHERE reason IS NOT NULL",
        f"CREATE TEMP TABLE import_firsts ON COMMIT DROP AS SELECT * FROM (SELECT DISTINCT ON (phone_e164) *"
        f" FROM {STAGING} WHERE reason IS NULL ORDER BY phone_e164, row_number) f"
        " WHERE NOT EXISTS (SELECT 1 FROM import_seen s WHERE s.phone_e164 = f.phone_e164)",
        "INSERT INTO import_seen SELECT phone_e164 FROM import_firsts",
        "INSERT INTO import_rejects (batch_id, row_number, reason, cells) SELECT :batch, s.row_number,"
        f" 'duplicate_in_file', to_jsonb(s.cells) FROM {STAGING} s WHERE s.reason IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM import_firsts f WHERE f.row_number = s.row_number)",
        "CREATE TEMP TABLE import_dnc ON COMMIT DROP AS SELECT f.row_number, f.cells FROM import_firsts f"
        " WHERE EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = f.phone_e164"
        "  AND (d.campaign_id IS NULL OR d.campaign_id = CAST(:campaign AS integer)))",
        "INSERT INTO import_rejects (batch_id, row_number, reason, cells)"
        " SELECT :batch, row_number, 'dnc', to_jsonb(cells) FROM import_dnc",
        "CREATE TEMP TABLE import_known ON COMMIT DROP AS SELECT f.row_number, f.cells FROM import_firsts f"
        " WHERE EXISTS (SELECT 1 FROM leads l WHERE l.phone_e164 = f.phone_e164 AND l.deleted_at IS NULL"
        "  AND (:window = 0 OR l.created_at >= now() - make_interval(days => :window)))"
        " AND NOT EXISTS (SELECT 1 FROM import_dnc d WHERE d.row_number = f.row_number)",
        "INSERT INTO import_rejects (batch_id, row_number, reason, cells)"
        " SELECT :batch, row_number, 'duplicate_existing', to_jsonb(cells) FROM import_known",
        "DELETE FROM import_firsts f"
        " WHERE EXISTS (SELECT 1 FROM import_dnc d WHERE d.row_number = f.row_number)"
        " OR EXISTS (SELECT 1 FROM import_known k WHERE k.row_number = f.row_number)",
        "INSERT INTO customers (phone_e164, name, area) SELECT phone_e164, name, area FROM import_firsts"
        " ON CONFLICT (phone_e164) DO NOTHING",
        "INSERT INTO leads (customer_id, batch_id, campaign_id, name, phone_e164, area, attributes, source)"
        " SELECT c.id, :batch, :campaign, f.name, f.phone_e164, f.area,"
        " jsonb_strip_nulls(jsonb_object(CAST(:keys AS text[]), f.attr_values)), 'import'"
        " FROM import_firsts f JOIN customers c ON c.phone_e164 = f.phone_e164 ORDER BY f.row_number",
    ]
    for sql in steps:
        await conn.execute(text(sql), params)
    duplicate, dnc, known, fresh = (
        await conn.execute(
            text(
                f"SELECT (SELECT count(*) FROM {STAGING} WHERE reason IS NULL)"
                " - (SELECT count(*) FROM import_firsts) - (SELECT count(*) FROM import_dnc)"
                " - (SELECT count(*) FROM import_known),"
                " (SELECT count(*) FROM import_dnc), (SELECT count(*) FROM import_known),"
                " (SELECT count(*) FROM import_firsts)"
            )
        )
    ).one()
    for table in ("import_firsts", "import_dnc", "import_known"):
        await conn.execute(text(f"DROP TABLE {table}"))
    await conn.execute(text(f"TRUNCATE {STAGING}"))
    return Settled(duplicate=duplicate + known, dnc=dnc, inserted=fresh)


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
