"""Import jobs: the batch row as a progress record, a staging table fed by COPY, and the set-based
clean-up that turns staged rows into leads (de-duplication, do-not-call scrub, inserts).

Python holds one chunk of rows at a time and Postgres settles each chunk while Python reads the
next; what must be remembered across chunks is in Postgres (the leads made so far carry the batch
id; refused phones are in a temporary table), so memory stays flat whatever the file size.
The whole import is one transaction: a failed import leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.models import ImportBatch

STAGING = "import_staging"


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


async def begin_import(conn: AsyncConnection) -> None:
    """Open the import's transaction and its temporary tables (dropped at commit or rollback).

    ``import_staging`` holds one chunk of staging CSV at a time (columns:
    :data:`hub.intake.staging.STAGING_COLUMNS`); ``import_seen`` the phones refused so far as
    do-not-call or existing leads.
    """
    await conn.begin()
    # Chunk-sized sorts and hashes stay in memory; JIT compiling costs more than it saves on
    # chunk-sized statements (its estimate is driven by the size of `leads`).
    await conn.execute(text("SET LOCAL work_mem = '64MB'"))
    await conn.execute(text("SET LOCAL jit = off"))
    await conn.execute(
        text(
            f"CREATE TEMP TABLE {STAGING} (row_number integer NOT NULL, phone_e164 text,"
            " repeat boolean NOT NULL, name text NOT NULL, area text NOT NULL, property text, extras jsonb,"
            " cells text NOT NULL) ON COMMIT DROP"
        )
    )
    await conn.execute(text("CREATE TEMP TABLE import_seen (phone_e164 text PRIMARY KEY) ON COMMIT DROP"))


@dataclass(slots=True)
class Settled:
    """Verdicts of the rows settled so far."""

    invalid: int = 0
    duplicate: int = 0
    dnc: int = 0
    inserted: int = 0

    def add(self, other: Settled) -> None:
        self.invalid += other.invalid
        self.duplicate += other.duplicate
        self.dnc += other.dnc
        self.inserted += other.inserted


# One statement settles a chunk. Verdicts for a row, in order:
# - no valid phone: invalid_phone;
# - its phone was in an earlier row of the file (the first row wins): duplicate_in_file. Earlier in
#   this chunk: `repeat`, decided by the parser; an earlier chunk made it a lead: that lead has
#   this batch id; an earlier chunk refused it: `import_seen` (only refused phones are remembered,
#   a few per cent of a file);
# - on a do-not-call list (system-wide or this campaign's): dnc;
# - an existing lead (not deleted, created within the window; 0 = ever): duplicate_existing;
# - else a new lead.
# All parts see the snapshot before the statement, so this chunk's new leads are not "existing".
# One probe of leads answers both lead questions: a phone with a lead of this batch has no other
# lead in the window (its first row would have been refused), so any match decides.
# The look-ups are index probes per row (LATERAL, OFFSET 0): left to itself the planner may hash
# every lead in the window once per chunk, a cost that grows with the table instead of the chunk.
_SETTLE_CHUNK = text(
    f"""
    WITH verdicts AS MATERIALIZED (
        SELECT s.*, CASE
            WHEN s.phone_e164 IS NULL THEN 'invalid_phone'
            WHEN s.repeat OR known.this_file
                OR EXISTS (SELECT 1 FROM import_seen x WHERE x.phone_e164 = s.phone_e164)
                THEN 'duplicate_in_file'
            WHEN EXISTS (
                SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = s.phone_e164
                AND (d.campaign_id IS NULL OR d.campaign_id = CAST(:campaign AS integer)) OFFSET 0
            ) THEN 'dnc'
            WHEN known.this_file IS NOT NULL THEN 'duplicate_existing'
        END AS reason
        FROM {STAGING} s
        LEFT JOIN LATERAL (
            SELECT l.batch_id IS NOT DISTINCT FROM :batch AS this_file FROM leads l
            WHERE NOT s.repeat AND l.phone_e164 = s.phone_e164 AND l.deleted_at IS NULL
            AND (l.batch_id = :batch OR :window = 0 OR l.created_at >= now() - make_interval(days => :window))
            LIMIT 1
        ) known ON true
    ), remembered AS (
        INSERT INTO import_seen (phone_e164)
        SELECT phone_e164 FROM verdicts WHERE reason IN ('dnc', 'duplicate_existing')
    ), rejected AS (
        INSERT INTO import_rejects (batch_id, row_number, reason, cells)
        SELECT :batch, row_number, reason, cells FROM verdicts WHERE reason IS NOT NULL
        RETURNING reason
    ), inserted AS (
        INSERT INTO leads (batch_id, campaign_id, name, phone_e164, area, attributes, source)
        SELECT :batch, CAST(:campaign AS integer), name, phone_e164, area,
            CASE WHEN property IS NULL THEN coalesce(extras, '{{}}')
            ELSE coalesce(extras, '{{}}') || jsonb_build_object('楼盘', property) END,
            'import'
        FROM verdicts WHERE reason IS NULL ORDER BY row_number
        RETURNING 1
    )
    SELECT count(*) FILTER (WHERE reason = 'invalid_phone'),
        count(*) FILTER (WHERE reason IN ('duplicate_in_file', 'duplicate_existing')),
        count(*) FILTER (WHERE reason = 'dnc'),
        (SELECT count(*) FROM inserted)
    FROM rejected
    """
)


async def settle_chunk(
    conn: AsyncConnection,
    chunk_csv: list[bytes],
    columns: tuple[str, ...],
    *,
    batch_id: int,
    campaign_id: int | None,
    dedup_window_days: int,
) -> Settled:
    """COPY one chunk of staging CSV (in pieces of whole lines) and turn it into leads and rejected
    rows, in the import's transaction opened by :func:`begin_import`; returns the chunk's verdicts."""
    if not any(chunk_csv):
        return Settled()

    async def pieces() -> AsyncIterator[bytes]:
        for piece in chunk_csv:
            yield piece

    await conn.execute(text(f"TRUNCATE {STAGING}"))
    await (await _driver(conn)).copy_to_table(
        STAGING,
        source=pieces(),
        columns=list(columns),
        format="csv",
        force_not_null=["name", "area", "cells"],
    )
    invalid, duplicate, dnc, inserted = (
        await conn.execute(
            _SETTLE_CHUNK, {"batch": batch_id, "campaign": campaign_id, "window": dedup_window_days}
        )
    ).one()
    return Settled(invalid=invalid, duplicate=duplicate, dnc=dnc, inserted=inserted)


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's, for COPY."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def rejects(
    session: AsyncSession, batch_id: int, after_row: int, limit: int
) -> list[tuple[int, str, list[str]]]:
    """A page of a batch's rejected rows in row order (for the CSV download)."""
    rows = await session.execute(
        text(
            "SELECT row_number, reason, string_to_array(cells, chr(31)) FROM import_rejects"
            " WHERE batch_id = :b AND row_number > :after"
            " ORDER BY row_number LIMIT :limit"
        ),
        {"b": batch_id, "after": after_row, "limit": limit},
    )
    return [(r[0], r[1], r[2]) for r in rows]
