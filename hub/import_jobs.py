"""Lead import jobs: stream a file, encode rows for COPY, let Postgres settle them chunk by chunk.

A job runs in its own worker process (``python -m hub.import_worker``) so a million-row import
never stalls the hub's event loop; ``lineup import`` runs the same ``run_import`` in-process.
Progress is written to the batch row and published on Redis (``{prefix}import:{id}``) for the
page's live progress bar. The source file is deleted when the job ends, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.import_parser import ImportRefused, parsed_chunks
from hub.intake import SpreadsheetError, estimate_rows
from hub.intake.staging import STAGING_COLUMNS, StagingChunk
from hub.settings import Settings
from storage import audit
from storage import import_jobs as job_store
from storage.db import session_factory

log = logging.getLogger("lineup.import")

REJECT_REASONS = {
    "invalid_phone": "invalid phone",
    "duplicate_in_file": "repeated in this file",
    "duplicate_existing": "already a lead",
    "dnc": "on a do-not-call list",
}


@dataclass
class JobResult:
    batch_id: int
    filename: str
    status: str
    counts: dict[str, int]
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "filename": self.filename,
            "status": self.status,
            **self.counts,
            **({"error": self.error} if self.error else {}),
        }


def progress_channel(settings: Settings, batch_id: int) -> str:
    return f"{settings.redis_prefix}import:{batch_id}"


class _Progress:
    """Writes progress to the batch row and Redis at most a few times a second."""

    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis | None,
        settings: Settings,
        batch_id: int,
        estimate: int | None,
    ) -> None:
        self._db = session_factory(engine)
        self._redis = redis
        self._channel = progress_channel(settings, batch_id)
        self._batch_id = batch_id
        self._estimate = estimate
        self._last = 0.0

    async def report(
        self, status: str, counts: dict[str, int], *, force: bool = False, error: str = ""
    ) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        values: dict[str, Any] = {"status": status, **counts}
        if error:
            values["error"] = error
        if status in ("done", "failed"):
            values["finished_at"] = datetime.now(UTC)
        async with self._db() as s:
            await job_store.set_batch(s, self._batch_id, **values)
        if self._redis is not None:
            rows = counts.get("rows_read", 0)
            percent = (
                100
                if status == "done"
                else (min(99, int(100 * rows / self._estimate)) if self._estimate else None)
            )
            message = {"id": self._batch_id, "status": status, "percent": percent, "error": error, **counts}
            await self._redis.publish(self._channel, json.dumps(message))


async def run_import(
    engine: AsyncEngine,
    redis: Redis | None,
    settings: Settings,
    batch_id: int,
    path: Path,
    *,
    mapping: dict[str, int] | None,
    campaign_id: int | None,
    actor_id: int | None,
) -> JobResult:
    """Run one import job to the end; never raises for bad files (the batch says what went wrong)."""
    db = session_factory(engine)
    counts = {"rows_read": 0, "total": 0, "invalid": 0, "duplicate": 0, "dnc": 0, "inserted": 0}
    estimate = await asyncio.to_thread(_safe_estimate, path)
    progress = _Progress(engine, redis, settings, batch_id, estimate)
    async with db() as s:
        batch = await job_store.get_batch(s, batch_id)
        filename = batch.filename if batch else path.name
    status, error = "failed", ""
    try:
        await progress.report("running", counts, force=True)
        async with engine.connect() as conn:
            await job_store.begin_import(conn)
            await _stream(conn, path, batch_id, mapping, campaign_id, settings, counts, progress)
            await conn.commit()
        status = "done"
    except ImportRefused as exc:
        error = exc.message
    except Exception:
        log.exception("event=import_failed batch=%s", batch_id)
        error = "The import failed because of an error on our side; nothing was imported. Please try again."
    finally:
        if status != "done":  # the transaction rolled back: no verdict stands
            counts.update(invalid=0, duplicate=0, dnc=0, inserted=0)
        await asyncio.to_thread(path.unlink, missing_ok=True)
    await progress.report(status, counts, force=True, error=error)
    async with db() as s:
        await audit.record(
            s,
            actor_id=actor_id,
            action="leads_imported",
            target=f"batch:{batch_id}",
            detail={"filename": filename, "status": status, **counts},
        )
        await s.commit()
    log.info("event=import_%s batch=%s %s", status, batch_id, " ".join(f"{k}={v}" for k, v in counts.items()))
    return JobResult(batch_id, filename, status, counts, error)


def _safe_estimate(path: Path) -> int | None:
    try:
        return estimate_rows(path)
    except (SpreadsheetError, OSError):
        return None


async def _stream(
    conn: Any,
    path: Path,
    batch_id: int,
    mapping: dict[str, int] | None,
    campaign_id: int | None,
    settings: Settings,
    counts: dict[str, int],
    progress: _Progress,
) -> None:
    """Settle each chunk in Postgres while the parser process reads the next (a pipeline: the
    parser and Postgres each keep a core busy)."""
    chunks: asyncio.Queue[StagingChunk | None] = asyncio.Queue(maxsize=2)  # at most two chunks in memory
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def produce() -> None:
        try:
            parsed = parsed_chunks(
                path,
                mapping,
                region=settings.default_region,
                max_rows=settings.import_max_rows,
                chunk_rows=settings.import_chunk_rows,
            )
            for chunk in parsed:
                asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()
                if stop.is_set():
                    parsed.close()  # stops the parser process
                    break
        finally:
            asyncio.run_coroutine_threadsafe(chunks.put(None), loop).result()

    producer = loop.run_in_executor(None, produce)
    settled = job_store.Settled()
    try:
        while (chunk := await chunks.get()) is not None:
            settled.add(
                await job_store.settle_chunk(
                    conn,
                    chunk.pieces,
                    STAGING_COLUMNS,
                    batch_id=batch_id,
                    campaign_id=campaign_id,
                    dedup_window_days=settings.dedup_window_days,
                )
            )
            counts["rows_read"] += chunk.rows_read
            counts["total"] += chunk.staged
            counts.update(asdict(settled))
            await progress.report("running", counts)
    finally:
        stop.set()
        while not producer.done():  # unblock the producer if we stopped early
            if chunks.empty():
                await asyncio.sleep(0.01)
            else:
                chunks.get_nowait()
    await producer  # re-raises ImportRefused from the parser
    if counts["total"] == 0:
        raise ImportRefused("no_rows", "The file has a header but no data rows.")


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process: this hub's resolved settings (bundled URLs included)."""
    return {
        **os.environ,
        "LINEUP_DATABASE_URL": settings.database_url,
        "LINEUP_REDIS_URL": settings.redis_url,
        "LINEUP_REDIS_PREFIX": settings.redis_prefix,
        "LINEUP_DEFAULT_REGION": settings.default_region,
        "LINEUP_IMPORT_MAX_ROWS": str(settings.import_max_rows),
        "LINEUP_IMPORT_CHUNK_ROWS": str(settings.import_chunk_rows),
        "LINEUP_DEDUP_WINDOW_DAYS": str(settings.dedup_window_days),
    }


async def spawn_worker(
    settings: Settings,
    batch_id: int,
    path: Path,
    *,
    mapping: dict[str, int] | None,
    campaign_id: int | None,
    actor_id: int | None,
) -> asyncio.subprocess.Process:
    """Start ``python -m hub.import_worker`` for one batch; it outlives the request and the page."""
    args = {
        "batch_id": batch_id,
        "path": str(path),
        "mapping": mapping,
        "campaign_id": campaign_id,
        "actor_id": actor_id,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub.import_worker",
        json.dumps(args),
        env=worker_env(settings),
        stdin=asyncio.subprocess.DEVNULL,
    )
