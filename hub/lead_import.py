"""The import flow around a job: save the upload, preview and map its columns, start the worker.

Uploads wait under ``var/uploads`` only between the upload and the start of their job (the
mapping step); the job deletes the file when it ends, and a sweeper deletes abandoned uploads.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from starlette.datastructures import UploadFile

from hub.import_jobs import ImportRefused, JobResult, run_import, spawn_worker
from hub.intake import ColumnMap, SpreadsheetError, TemplateError, detect_columns, read_rows
from hub.settings import Settings
from storage import import_jobs as job_store
from storage.db import create_engine, session_factory

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("lineup.import")

PREVIEW_ROWS = 8
FIELDS = ("phone", "name", "area", "property")
ABANDONED_AFTER = timedelta(hours=1)

__all__ = ["ImportRefused", "Preview", "import_path", "preview", "save_upload", "start_job"]


@dataclass
class Preview:
    """The first rows of an upload and the column mapping detected (or the reason there is none)."""

    header: list[str]
    rows: list[list[str]]
    mapping: dict[str, int] = field(default_factory=dict)
    problem: str = ""


def _copy_capped(source: BinaryIO, path: Path, limit: int) -> int:
    size = 0
    with path.open("wb") as out:
        while chunk := source.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise ImportRefused("too_large", f"The file is larger than {limit // (1 << 20)} MB.")
            out.write(chunk)
    return size


async def save_upload(settings: Settings, upload: UploadFile) -> tuple[Path, int]:
    """Copy an upload to the upload folder; refuses empty and oversized files. Returns (path, size)."""
    path = settings.upload_dir / f"{uuid.uuid4().hex}.upload"
    try:
        await asyncio.to_thread(settings.upload_dir.mkdir, parents=True, exist_ok=True)
        size = await asyncio.to_thread(_copy_capped, upload.file, path, settings.upload_max_bytes)
        if size == 0:
            raise ImportRefused("empty_file", "The file is empty.")
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return path, size


def _mapping_of(columns: ColumnMap) -> dict[str, int]:
    return {name: getattr(columns, name) for name in FIELDS if getattr(columns, name) is not None}


def _preview(path: Path, settings: Settings) -> Preview:
    try:
        rows = read_rows(path, max_rows=settings.import_max_rows)
        header = next(rows)
        sample = [r for r in itertools.islice(rows, PREVIEW_ROWS * 3) if any(c.strip() for c in r)][
            :PREVIEW_ROWS
        ]
    except SpreadsheetError as exc:
        raise ImportRefused(exc.code, exc.message) from None
    try:
        return Preview(header, sample, _mapping_of(detect_columns(header)))
    except TemplateError as exc:
        return Preview(header, sample, problem=exc.message)


async def preview(settings: Settings, path: Path) -> Preview:
    """Header, first rows and detected mapping; raises ImportRefused for unreadable files."""
    return await asyncio.to_thread(_preview, path, settings)


def check_mapping(header: list[str], mapping: dict[str, int]) -> dict[str, int]:
    """Validate a user's column mapping against the header; raises ImportRefused with the reason."""
    try:
        return _mapping_of(detect_columns(header, mapping))
    except TemplateError as exc:
        raise ImportRefused(exc.code, exc.message) from None


async def create_upload_batch(
    hub: Hub, path: Path, size: int, filename: str, *, actor_id: int, campaign_id: int | None
) -> int:
    async with hub.db() as s:
        return await job_store.create_batch(
            s,
            filename=filename,
            created_by=actor_id,
            campaign_id=campaign_id,
            bytes_total=size,
            mapping={"path": path.name},
            status="uploaded",
        )


def upload_path(settings: Settings, batch_mapping: dict[str, Any]) -> Path | None:
    """Where an uploaded-but-not-started batch's file waits (None once its job started)."""
    name = batch_mapping.get("path")
    return settings.upload_dir / name if isinstance(name, str) and name.endswith(".upload") else None


async def start_job(
    hub: Hub,
    batch_id: int,
    path: Path,
    *,
    mapping: dict[str, int] | None,
    campaign_id: int | None,
    actor_id: int,
) -> None:
    """Hand the batch to a worker process; the hub reaps it and wakes idle agents when it ends."""
    async with hub.db() as s:
        await job_store.set_batch(s, batch_id, status="queued", mapping={"columns": mapping or {}})
    process = await spawn_worker(
        hub.settings, batch_id, path, mapping=mapping, campaign_id=campaign_id, actor_id=actor_id
    )
    log.info("event=import_started batch=%s pid=%s", batch_id, process.pid)

    async def reap() -> None:
        code = await process.wait()
        log.info("event=import_worker_exited batch=%s code=%s", batch_id, code)
        await hub.leads_available()

    hub.spawn(reap())


async def sweep_abandoned_uploads(hub: Hub) -> None:
    """Delete uploads whose mapping step was never finished, and fail jobs whose worker died."""
    cutoff = datetime.now(UTC) - ABANDONED_AFTER
    async with hub.db() as s:
        for batch_id in await job_store.fail_stale_batches(s, cutoff - timedelta(hours=5)):
            log.warning("event=import_interrupted batch=%s", batch_id)
        for batch in await job_store.latest_batches(s, limit=200):
            path = upload_path(hub.settings, batch.mapping)
            if batch.status == "uploaded" and path is not None and batch.created_at < cutoff:
                await asyncio.to_thread(path.unlink, missing_ok=True)
                await job_store.set_batch(s, batch.id, status="abandoned", mapping={})


async def import_path(settings: Settings, path: Path, *, mapping: dict[str, int] | None = None) -> JobResult:
    """``lineup import FILE``: the same job, run in this process (the source file is kept)."""
    if not await asyncio.to_thread(path.is_file):
        raise ImportRefused("not_found", f"No such file: {path}")
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        settings.upload_dir.mkdir(parents=True, exist_ok=True)
        work = settings.upload_dir / f"{uuid.uuid4().hex}.upload"
        await asyncio.to_thread(shutil.copyfile, path, work)
        async with session_factory(engine)() as s:
            batch_id = await job_store.create_batch(
                s,
                filename=path.name,
                created_by=None,
                campaign_id=None,
                bytes_total=work.stat().st_size,
                mapping={},
                status="queued",
            )
        return await run_import(
            engine, None, settings, batch_id, work, mapping=mapping, campaign_id=None, actor_id=None
        )
    finally:
        await engine.dispose()
