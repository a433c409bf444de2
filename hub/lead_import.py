"""Lead import, first version: file → rows → cleaned candidates → new leads in Postgres.

The uploaded file is deleted as soon as the import ends, whether it succeeded or not.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import UploadFile

from hub.intake import (
    CandidateLead,
    ImportCounts,
    RejectedRow,
    SpreadsheetError,
    TemplateError,
    clean_rows,
    detect_columns,
    read_rows,
)
from hub.settings import Settings
from storage import audit
from storage.db import create_engine, session_factory
from storage.lead_intake import NewLead, create_batch, finish_batch, insert_leads, known_phones

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("lineup.import")

CHUNK = 1000
REJECTED_SHOWN = 50


class ImportRefused(Exception):
    """The file cannot be imported; ``message`` tells the uploader why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ImportResult:
    batch_id: int
    filename: str
    counts: ImportCounts
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the first few, for the page

    def as_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "filename": self.filename, **self.counts.as_dict()}


def _parse(
    path: Path, region: str, max_rows: int
) -> tuple[list[CandidateLead], list[RejectedRow], ImportCounts]:
    """Read and clean the whole file (CPU work: runs in a thread)."""
    try:
        rows = read_rows(path, max_rows=max_rows)
        header = next(rows, None)
        if header is None:
            raise ImportRefused("empty_file", "The file has no rows.")
        columns = detect_columns(header)
        counts = ImportCounts()
        good: list[CandidateLead] = []
        bad: list[RejectedRow] = []
        for result in clean_rows(rows, columns, region=region, counts=counts):
            (good if isinstance(result, CandidateLead) else bad).append(result)  # type: ignore[arg-type]
    except (SpreadsheetError, TemplateError) as exc:
        raise ImportRefused(exc.code, exc.message) from None
    if counts.total == 0:
        raise ImportRefused("no_rows", "The file has a header but no data rows.")
    return good, bad, counts


async def run_import(
    db: async_sessionmaker[AsyncSession],
    path: Path,
    filename: str,
    *,
    actor_id: int | None,
    settings: Settings,
) -> ImportResult:
    """Import one file: clean, drop phones that already have a lead, insert the rest in chunks."""
    good, bad, counts = await asyncio.to_thread(
        _parse, path, settings.default_region, settings.upload_max_rows
    )
    rejected = [{"row": r.row_number, "reason": r.reason, "cells": r.raw} for r in bad[:REJECTED_SHOWN]]
    async with db() as s:
        batch_id = await create_batch(s, filename, actor_id)
        try:
            for start in range(0, len(good), CHUNK):
                chunk = good[start : start + CHUNK]
                existing = await known_phones(s, [c.phone_e164 for c in chunk])
                fresh = [c for c in chunk if c.phone_e164 not in existing]
                counts.duplicate += len(chunk) - len(fresh)
                rejected += [
                    {
                        "row": c.row_number,
                        "reason": "duplicate_existing",
                        "cells": [c.name or "", c.phone_e164],
                    }
                    for c in chunk
                    if c.phone_e164 in existing
                ][: max(0, REJECTED_SHOWN - len(rejected))]
                counts.inserted += await insert_leads(s, [_new_lead(c) for c in fresh], batch_id)
        except Exception:
            await s.rollback()
            await finish_batch(s, batch_id, "failed", counts.as_dict())
            raise
        await finish_batch(s, batch_id, "done", counts.as_dict())
        await audit.record(
            s,
            actor_id=actor_id,
            action="leads_imported",
            target=f"batch:{batch_id}",
            detail={"filename": filename, **counts.as_dict()},
        )
        await s.commit()
    log.info(
        "event=import_done batch=%s %s", batch_id, " ".join(f"{k}={v}" for k, v in counts.as_dict().items())
    )
    return ImportResult(batch_id, filename, counts, rejected)


def _new_lead(c: CandidateLead) -> NewLead:
    attributes: dict[str, Any] = dict(c.attributes)
    if c.property:
        attributes["楼盘"] = c.property
    return NewLead(name=c.name or "", phone_e164=c.phone_e164, area=c.area or "", attributes=attributes)


def _copy_capped(source: BinaryIO, path: Path, limit: int) -> int:
    size = 0
    with path.open("wb") as out:
        while chunk := source.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise ImportRefused("too_large", f"The file is larger than {limit // (1 << 20)} MB.")
            out.write(chunk)
    return size


async def save_upload(settings: Settings, upload: UploadFile) -> Path:
    """Copy an upload to the upload folder, refusing empty files and files over the size limit."""
    path = settings.upload_dir / f"{uuid.uuid4().hex}.upload"
    try:
        await asyncio.to_thread(settings.upload_dir.mkdir, parents=True, exist_ok=True)
        size = await asyncio.to_thread(_copy_capped, upload.file, path, settings.upload_max_bytes)
        if size == 0:
            raise ImportRefused("empty_file", "The file is empty.")
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return path


async def import_file(hub: Hub, path: Path, filename: str, *, actor_id: int | None) -> ImportResult:
    """Import an uploaded file in the hub, then delete it and wake idle agents."""
    try:
        result = await run_import(hub.db, path, filename, actor_id=actor_id, settings=hub.settings)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    if result.counts.inserted:
        await hub.leads_available()
    return result


async def import_path(settings: Settings, path: Path, *, keep_source: bool) -> ImportResult:
    """``lineup import FILE``: the same import, outside a running hub."""
    if not await asyncio.to_thread(path.is_file):
        raise ImportRefused("not_found", f"No such file: {path}")
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        return await run_import(session_factory(engine), path, path.name, actor_id=None, settings=settings)
    finally:
        await engine.dispose()
        if not keep_source:
            await asyncio.to_thread(path.unlink, missing_ok=True)
