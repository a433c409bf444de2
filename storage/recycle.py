"""The recycle bin: soft delete, restore and purge of leads, and the retention purge.

Every operation works in chunks of at most ``CHUNK`` leads per transaction and commits after
each one, so deleting or purging millions of leads never holds row locks for long. Callers pass
a counts object that is filled in as chunks commit: when an operation fails part-way, the caller
still knows (and can audit) what was done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHUNK = 5000


@dataclass(frozen=True, slots=True)
class LeadScope:
    """Which leads an operation covers: the given ids, one import batch, or every lead."""

    ids: tuple[int, ...] | None = None
    batch_id: int | None = None

    @classmethod
    def selected(cls, ids: list[int]) -> LeadScope:
        return cls(ids=tuple(dict.fromkeys(ids)))

    @classmethod
    def batch(cls, batch_id: int) -> LeadScope:
        return cls(batch_id=batch_id)

    @classmethod
    def everything(cls) -> LeadScope:
        return cls()

    @property
    def name(self) -> str:
        return "selected" if self.ids is not None else "batch" if self.batch_id is not None else "all"

    def sql(self) -> tuple[str, dict[str, Any]]:
        """A condition on ``leads`` and its parameters."""
        if self.ids is not None:
            return "leads.id = ANY(:scope_ids)", {"scope_ids": list(self.ids)}
        if self.batch_id is not None:
            return "leads.batch_id = :scope_batch", {"scope_batch": self.batch_id}
        return "true", {}

    def describe(self) -> dict[str, Any]:
        """The scope for the audit log (ids are counted, not listed)."""
        if self.ids is not None:
            return {"scope": "selected", "selected": len(self.ids)}
        if self.batch_id is not None:
            return {"scope": "batch", "batch_id": self.batch_id}
        return {"scope": "all"}


@dataclass(slots=True)
class DeleteCounts:
    deleted: int = 0
    skipped_held: int = 0  # an agent holds the lead right now: it stays where it is
    not_found: int = 0  # selected ids that are not active leads

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class RestoreCounts:
    restored: int = 0
    skipped_duplicate: int = 0  # its number has an active lead again: restoring would call twice
    not_found: int = 0  # selected ids that are not in the bin

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class PurgeCounts:
    leads: int = 0
    contact_attempts: int = 0
    calls_anonymised: int = 0
    customers: int = 0
    import_rejects: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class BinLead:
    id: int
    name: str
    phone_e164: str
    batch_id: int | None
    deleted_at: datetime


@dataclass(frozen=True, slots=True)
class BatchChoice:
    id: int
    filename: str
    created_at: datetime
    inserted: int


# --- soft delete and restore -------------------------------------------------------------------

# A held lead is re-checked by the UPDATE itself, so a lead claimed while the chunk was read is
# left alone too (READ COMMITTED re-evaluates the WHERE on the row's newest version).
_DELETE = """
WITH chunk AS (
    SELECT id FROM leads WHERE deleted_at IS NULL AND id > :after AND {scope} ORDER BY id LIMIT :chunk
), moved AS (
    UPDATE leads SET deleted_at = :now FROM chunk
    WHERE leads.id = chunk.id AND leads.deleted_at IS NULL AND leads.held_by IS NULL
    RETURNING leads.id
)
SELECT (SELECT max(id) FROM chunk), (SELECT count(*) FROM chunk), (SELECT count(*) FROM moved)
"""

# One lead per number comes back: not when an active lead already has the number (an import
# since the delete), and only the first of several deleted leads sharing one.
_RESTORE = """
WITH chunk AS (
    SELECT id, phone_e164 FROM leads WHERE deleted_at IS NOT NULL AND id > :after AND {scope}
    ORDER BY id LIMIT :chunk
), firsts AS (
    SELECT min(id) AS id FROM chunk GROUP BY phone_e164
), moved AS (
    UPDATE leads SET deleted_at = NULL FROM firsts
    WHERE leads.id = firsts.id AND leads.deleted_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM leads a WHERE a.phone_e164 = leads.phone_e164 AND a.deleted_at IS NULL)
    RETURNING leads.id
)
SELECT (SELECT max(id) FROM chunk), (SELECT count(*) FROM chunk), (SELECT count(*) FROM moved)
"""


async def _move(
    session: AsyncSession, statement: str, scope: LeadScope, chunk: int, now: datetime | None = None
) -> tuple[int, int]:
    """Run a chunked move over the scope; (rows seen, rows moved)."""
    condition, params = scope.sql()
    query = text(statement.format(scope=condition))
    after, seen, moved = 0, 0, 0
    while True:
        last, chunk_seen, chunk_moved = (
            await session.execute(query, {**params, "after": after, "chunk": chunk, "now": now})
        ).one()
        await session.commit()
        seen += chunk_seen
        moved += chunk_moved
        if last is None or chunk_seen < chunk:
            return seen, moved
        after = last


async def soft_delete(
    session: AsyncSession, scope: LeadScope, counts: DeleteCounts, *, chunk: int = CHUNK
) -> DeleteCounts:
    """Move the scope's active leads to the bin, leaving leads an agent holds where they are.

    Commits per chunk; ``counts`` is updated as it goes and returned.
    """
    now = (await session.execute(text("SELECT now()"))).scalar_one()
    seen, moved = await _move(session, _DELETE, scope, chunk, now)
    counts.deleted += moved
    counts.skipped_held += seen - moved
    if scope.ids is not None:
        counts.not_found += len(scope.ids) - seen
    return counts


async def restore(
    session: AsyncSession, scope: LeadScope, counts: RestoreCounts, *, chunk: int = CHUNK
) -> RestoreCounts:
    """Bring the scope's leads back from the bin (skipping numbers that have an active lead).

    Commits per chunk; ``counts`` is updated as it goes and returned.
    """
    seen, moved = await _move(session, _RESTORE, scope, chunk)
    counts.restored += moved
    counts.skipped_duplicate += seen - moved
    if scope.ids is not None:
        counts.not_found += len(scope.ids) - seen
    return counts


# --- purge -------------------------------------------------------------------------------------


async def erase_leads(session: AsyncSession, lead_ids: list[int], counts: PurgeCounts) -> None:
    """Delete these leads and their personal data in contact history, in the caller's transaction.

    Contact attempts (outcome and the agent's note) are deleted; calls are kept as the agents'
    work record (durations, causes) with the number blanked; customers left without a lead and
    import rejects of batches left without a lead go too.
    """
    if not lead_ids:
        return
    ids = {"ids": lead_ids}
    attempts = await session.execute(
        text("DELETE FROM contact_attempts WHERE lead_id = ANY(:ids) RETURNING id"), ids
    )
    counts.contact_attempts += len(attempts.all())
    calls = await session.execute(
        text("UPDATE calls SET phone_e164 = '' WHERE lead_id = ANY(:ids) AND phone_e164 <> '' RETURNING id"),
        ids,
    )
    counts.calls_anonymised += len(calls.all())
    gone = (
        await session.execute(
            text("DELETE FROM leads WHERE id = ANY(:ids) RETURNING phone_e164, batch_id"), ids
        )
    ).all()
    counts.leads += len(gone)
    phones = sorted({r.phone_e164 for r in gone})
    batch_ids = sorted({r.batch_id for r in gone if r.batch_id is not None})
    customers = await session.execute(
        text(
            "DELETE FROM customers c WHERE c.phone_e164 = ANY(:phones)"
            " AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.phone_e164 = c.phone_e164) RETURNING c.id"
        ),
        {"phones": phones},
    )
    counts.customers += len(customers.all())
    if batch_ids:
        rejects = await session.execute(
            text(
                "DELETE FROM import_rejects r WHERE r.batch_id = ANY(:ids)"
                " AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.batch_id = r.batch_id) RETURNING r.batch_id"
            ),
            {"ids": batch_ids},
        )
        counts.import_rejects += len(rejects.all())


async def _purge_where(
    session: AsyncSession, condition: str, params: dict[str, Any], counts: PurgeCounts, chunk: int
) -> None:
    # SKIP LOCKED: a lead being claimed or restored right now is left for the next run rather than
    # waited for; a held lead is never purged from under its agent.
    select = text(
        f"SELECT id FROM leads WHERE {condition} AND held_by IS NULL AND id > :after"
        " ORDER BY id LIMIT :chunk FOR UPDATE SKIP LOCKED"
    )
    after = 0
    while True:
        ids = list((await session.execute(select, {**params, "after": after, "chunk": chunk})).scalars())
        await erase_leads(session, ids, counts)
        await session.commit()
        if len(ids) < chunk:
            return
        after = ids[-1]


async def purge_bin(
    session: AsyncSession, scope: LeadScope, counts: PurgeCounts, *, chunk: int = CHUNK
) -> PurgeCounts:
    """Permanently delete the scope's leads that are in the bin (see ``erase_leads``).

    Commits per chunk; ``counts`` is updated as it goes and returned.
    """
    condition, params = scope.sql()
    await _purge_where(session, f"deleted_at IS NOT NULL AND {condition}", params, counts, chunk)
    return counts


async def purge_leads_created_before(
    session: AsyncSession, cutoff: datetime, chunk: int = CHUNK, counts: PurgeCounts | None = None
) -> PurgeCounts:
    """Retention: permanently delete every lead created before ``cutoff``, in the bin or not.

    Leads an agent holds wait for the next run. Rejected rows of imports made before the cutoff
    are deleted as well. Commits per chunk; returns the counts (``counts`` if given).
    """
    counts = counts if counts is not None else PurgeCounts()
    await _purge_where(session, "created_at < :cutoff", {"cutoff": cutoff}, counts, chunk)
    delete_rejects = text(
        "DELETE FROM import_rejects WHERE (batch_id, row_number) IN ("
        " SELECT r.batch_id, r.row_number FROM import_rejects r JOIN import_batches b ON b.id = r.batch_id"
        " WHERE b.created_at < :cutoff LIMIT :chunk)"
    )
    while True:
        deleted = (await session.execute(delete_rejects, {"cutoff": cutoff, "chunk": chunk})).rowcount
        await session.commit()
        counts.import_rejects += deleted
        if deleted < chunk:
            return counts


# --- reading the bin ---------------------------------------------------------------------------


async def list_bin(session: AsyncSession, *, offset: int = 0, limit: int = 50) -> tuple[int, list[BinLead]]:
    """One page of the bin, most recently deleted first, and the bin's size."""
    total = (await session.execute(text("SELECT count(*) FROM leads WHERE deleted_at IS NOT NULL"))).scalar()
    rows = await session.execute(
        text(
            "SELECT id, name, phone_e164, batch_id, deleted_at FROM leads WHERE deleted_at IS NOT NULL"
            " ORDER BY deleted_at DESC, id DESC OFFSET :offset LIMIT :limit"
        ),
        {"offset": offset, "limit": limit},
    )
    return int(total or 0), [BinLead(**r._mapping) for r in rows]


async def recent_batches(session: AsyncSession, limit: int = 200) -> list[BatchChoice]:
    """The latest import batches, newest first, to choose one to delete or restore."""
    rows = await session.execute(
        text("SELECT id, filename, created_at, inserted FROM import_batches ORDER BY id DESC LIMIT :limit"),
        {"limit": limit},
    )
    return [BatchChoice(**r._mapping) for r in rows]


async def batch_exists(session: AsyncSession, batch_id: int) -> bool:
    """Whether an import batch with this id exists."""
    return bool(
        (
            await session.execute(
                text("SELECT EXISTS (SELECT 1 FROM import_batches WHERE id = :id)"), {"id": batch_id}
            )
        ).scalar()
    )
