"""Lead import pages and API: upload, map columns, watch progress (pushed), download rejected rows."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hub import lead_import
from hub.access import requires
from hub.identity import Principal
from hub.import_jobs import REJECT_REASONS, ImportRefused, progress_channel
from hub.permissions import Permission
from storage import audit
from storage import import_jobs as job_store
from web.csrf import csrf_ok
from web.i18n import _
from web.pages import client_ip, render
from web.templating import env

log = logging.getLogger("lineup.web.imports")

FINISHED = ("done", "failed", "abandoned")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _too_large(request: Request) -> str | None:
    """Refuse an oversized upload before reading it (browsers always send a form's length)."""
    limit = request.app.state.hub.settings.upload_max_bytes
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > limit + 64 * 1024:
        return _("The file is too large: the limit is %(mb)s MB.") % {"mb": limit // (1 << 20)}
    return None


async def _receive_upload(request: Request, form: Any) -> tuple[int, Path, lead_import.Preview]:
    hub = request.app.state.hub
    principal: Principal = request.state.principal
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        raise ImportRefused("no_file", _("Choose a file to import."))
    path, size = await lead_import.save_upload(hub.settings, upload)
    try:
        preview = await lead_import.preview(hub.settings, path)
    except ImportRefused:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    batch_id = await lead_import.create_upload_batch(
        hub, path, size, upload.filename, actor_id=principal.id, campaign_id=None
    )
    return batch_id, path, preview


@requires(Permission.IMPORT_LEADS)
async def imports_page(request: Request) -> Response:
    async with request.app.state.hub.db() as s:
        batches = await job_store.latest_batches(s)
    return render(request, "imports.html", batches=batches, error="")


@requires(Permission.IMPORT_LEADS)
async def imports_upload(request: Request) -> Response:
    """Upload a file; then the mapping step at /imports/{id}."""
    too_large = _too_large(request)
    if too_large:
        return await _upload_error(request, too_large, 413)
    async with request.form(max_files=1) as form:
        if not csrf_ok(request, form.get("csrf")):
            return await _upload_error(
                request, _("The form expired. Please reload the page and try again."), 400
            )
        try:
            batch_id, _path, _preview = await _receive_upload(request, form)
        except ImportRefused as exc:
            return await _upload_error(request, exc.message, 400)
    return RedirectResponse(f"/imports/{batch_id}", status_code=303)


async def _upload_error(request: Request, message: str, status: int) -> Response:
    async with request.app.state.hub.db() as s:
        batches = await job_store.latest_batches(s)
    return render(request, "imports.html", status, batches=batches, error=message)


async def _batch_or_404(request: Request) -> Any:
    try:
        batch_id = int(request.path_params["batch_id"])
    except ValueError:
        return None
    async with request.app.state.hub.db() as s:
        return await job_store.get_batch(s, batch_id)


@requires(Permission.IMPORT_LEADS)
async def import_detail(request: Request) -> Response:
    """The mapping step (while uploaded), the live progress (while running), or the result."""
    batch = await _batch_or_404(request)
    if batch is None:
        return Response(_("No such import."), status_code=404)
    hub = request.app.state.hub
    preview, error = None, ""
    path = lead_import.upload_path(hub.settings, batch.mapping)
    if batch.status == "uploaded" and path is not None:
        try:
            preview = await lead_import.preview(hub.settings, path)
        except (ImportRefused, OSError):
            error = _("The uploaded file is no longer available; please upload it again.")
    return render(
        request,
        "import_detail.html",
        batch=batch,
        preview=preview,
        error=error,
        fields=_field_labels(),
        finished=batch.status in FINISHED,
    )


def _field_labels() -> list[tuple[str, str]]:
    return [
        ("phone", _("Phone")),
        ("name", _("Name")),
        ("area", _("Area")),
        ("property", _("Property (楼盘)")),
    ]


def _mapping_from_form(form: Any, width: int) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for field, _label in _field_labels():
        value = str(form.get(f"col_{field}", "")).strip()
        if value == "":
            continue
        if not value.isdigit() or int(value) >= width:
            raise ImportRefused(
                "bad_mapping", _("Choose a column from the list for %(field)s.") % {"field": field}
            )
        mapping[field] = int(value)
    if "phone" not in mapping:
        raise ImportRefused("missing_column", _("Choose the column that holds the phone numbers."))
    if len(set(mapping.values())) != len(mapping):
        raise ImportRefused("bad_mapping", _("Each column can be used for one field only."))
    return mapping


@requires(Permission.IMPORT_LEADS)
async def import_start(request: Request) -> Response:
    """Confirm the column mapping and start the job."""
    hub = request.app.state.hub
    principal: Principal = request.state.principal
    batch = await _batch_or_404(request)
    if batch is None:
        return Response(_("No such import."), status_code=404)
    form = await request.form()
    path = lead_import.upload_path(hub.settings, batch.mapping)
    if not csrf_ok(request, form.get("csrf")) or batch.status != "uploaded" or path is None:
        return RedirectResponse(f"/imports/{batch.id}", status_code=303)
    try:
        preview = await lead_import.preview(hub.settings, path)
    except (ImportRefused, OSError):
        return RedirectResponse(f"/imports/{batch.id}", status_code=303)
    try:
        mapping = lead_import.check_mapping(preview.header, _mapping_from_form(form, len(preview.header)))
    except ImportRefused as exc:
        return render(
            request,
            "import_detail.html",
            400,
            batch=batch,
            preview=preview,
            error=exc.message,
            fields=_field_labels(),
            finished=False,
        )
    await lead_import.start_job(
        hub, batch.id, path, mapping=mapping, campaign_id=batch.campaign_id, actor_id=principal.id
    )
    return RedirectResponse(f"/imports/{batch.id}", status_code=303)


def _progress_html(batch: Any, percent: int | None) -> str:
    return env.get_template("fragments/import_progress.html").render(batch=batch, percent=percent)


@requires(Permission.IMPORT_LEADS)
async def import_events(request: Request) -> Response:
    """Server-sent events: the progress fragment on every update, then ``end``."""
    batch = await _batch_or_404(request)
    if batch is None:
        return Response(_("No such import."), status_code=404)
    hub = request.app.state.hub
    batch_id = batch.id

    async def stream() -> AsyncIterator[str]:
        pubsub = Redis(connection_pool=hub.redis.connection_pool).pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(progress_channel(hub.settings, batch_id))
        try:
            # Subscribe first, then read the row: no update can fall between the two.
            async with hub.db() as s:
                current = await job_store.get_batch(s, batch_id)
            yield _sse("progress", _progress_html(current, None))
            while current.status not in FINISHED:
                message = await pubsub.get_message(timeout=15.0)
                if message is None:
                    yield ": keep-alive\n\n"
                    async with hub.db() as s:
                        current = await job_store.get_batch(s, batch_id)
                    continue
                data = json.loads(message["data"])
                async with hub.db() as s:
                    current = await job_store.get_batch(s, batch_id)
                yield _sse("progress", _progress_html(current, data.get("percent")))
            yield _sse("end", "")
        finally:
            await pubsub.aclose()

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _sse(event: str, html: str) -> str:
    data = "\n".join(f"data: {line}" for line in (html.splitlines() or [""]))
    return f"event: {event}\n{data}\n\n"


def escape_cell(value: str) -> str:
    """A cell that a spreadsheet would read as a formula gets a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


@requires(Permission.IMPORT_LEADS)
async def rejected_rows(request: Request) -> Response:
    """Download the rejected rows with the reason per row (CSV, UTF-8 with BOM for Excel); audited."""
    batch = await _batch_or_404(request)
    if batch is None:
        return Response(_("No such import."), status_code=404)
    hub = request.app.state.hub
    principal: Principal = request.state.principal
    async with hub.db() as s:
        await audit.record(
            s,
            actor_id=principal.id,
            action="rejects_exported",
            target=f"batch:{batch.id}",
            ip=client_ip(request),
        )
        await s.commit()

    async def rows() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([_("row"), _("reason"), _("cells")])
        yield ("\ufeff" + buffer.getvalue()).encode()
        after = 0
        while True:
            async with hub.db() as s:
                page = await job_store.rejects(s, batch.id, after, 5000)
            if not page:
                return
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for row_number, reason, cells in page:
                writer.writerow([row_number, _(REJECT_REASONS.get(reason, reason)), *map(escape_cell, cells)])
            after = page[-1][0]
            yield buffer.getvalue().encode()

    filename = f"rejected-{batch.id}.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- JSON API ---------------------------------------------------------------------------------


def _batch_json(batch: Any) -> dict[str, Any]:
    return {
        "id": batch.id,
        "filename": batch.filename,
        "status": batch.status,
        "error": batch.error or None,
        "rows_read": batch.rows_read,
        "total": batch.total,
        "invalid": batch.invalid,
        "duplicate": batch.duplicate,
        "dnc": batch.dnc,
        "inserted": batch.inserted,
        "created_at": batch.created_at.isoformat(),
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
    }


@requires(Permission.IMPORT_LEADS)
async def api_create_import(request: Request) -> Response:
    """``POST /api/imports`` multipart: file, optional mapping (JSON, zero-based columns), campaign_id."""
    hub = request.app.state.hub
    principal: Principal = request.state.principal
    too_large = _too_large(request)
    if too_large:
        return JSONResponse({"error": "too_large", "message": too_large}, 413)
    async with request.form(max_files=1) as form:
        try:
            mapping = _api_mapping(form.get("mapping"))
            campaign = str(form.get("campaign_id") or "")
            if campaign and not campaign.isdigit():
                raise ImportRefused("bad_campaign", "campaign_id must be a number")
            batch_id, path, preview = await _receive_upload(request, form)
        except ImportRefused as exc:
            return JSONResponse({"error": exc.code, "message": exc.message}, 400)
    try:
        if not (mapping or preview.mapping):
            raise ImportRefused("missing_column", preview.problem)
        mapping = lead_import.check_mapping(preview.header, mapping or preview.mapping)
    except ImportRefused as exc:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        async with hub.db() as s:
            await job_store.set_batch(s, batch_id, status="failed", error=exc.message, mapping={})
        return JSONResponse({"error": exc.code, "message": exc.message, "id": batch_id}, 400)
    await lead_import.start_job(
        hub,
        batch_id,
        path,
        mapping=mapping,
        campaign_id=int(campaign) if campaign else None,
        actor_id=principal.id,
    )
    return JSONResponse({"id": batch_id, "status": "queued", "url": f"/api/imports/{batch_id}"}, 202)


def _api_mapping(raw: object) -> dict[str, int] | None:
    if raw in (None, ""):
        return None
    try:
        mapping = json.loads(str(raw))
    except ValueError:
        raise ImportRefused("bad_mapping", 'mapping must be JSON like {"phone": 3, "name": 2}') from None
    if not isinstance(mapping, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in mapping.values()
    ):
        raise ImportRefused("bad_mapping", 'mapping must be JSON like {"phone": 3, "name": 2}')
    return mapping


@requires(Permission.IMPORT_LEADS)
async def api_get_import(request: Request) -> Response:
    batch = await _batch_or_404(request)
    if batch is None:
        return JSONResponse({"error": "not_found", "message": "no such import"}, 404)
    return JSONResponse(_batch_json(batch))


ROUTES: list[BaseRoute] = [
    Route("/imports", imports_page, methods=["GET"]),
    Route("/imports", imports_upload, methods=["POST"]),
    Route("/imports/{batch_id}", import_detail, methods=["GET"]),
    Route("/imports/{batch_id}/start", import_start, methods=["POST"]),
    Route("/imports/{batch_id}/events", import_events, methods=["GET"]),
    Route("/imports/{batch_id}/rejected.csv", rejected_rows, methods=["GET"]),
    Route("/api/imports", api_create_import, methods=["POST"]),
    Route("/api/imports/{batch_id}", api_get_import, methods=["GET"]),
]
