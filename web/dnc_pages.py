"""Do-not-call lists: system-wide and per campaign — the page, the file upload and the JSON API.

Routes (all ``Permission.MANAGE_LEADS``):

- ``GET /dnc`` — the lists, paginated, phones masked; ``?q=`` finds one full number,
  ``?list=all|system|<campaign id>`` narrows to one list, ``?page=N``.
- ``POST /dnc/add`` (phones typed one per line), ``POST /dnc/upload`` (CSV/XLSX/XLS: the ``phone``
  / ``电话`` column, else the first), ``POST /dnc/remove`` (typed phones, or checked entries).
- ``GET /api/dnc?phone=…[&campaign_id=…]``, ``POST /api/dnc`` and ``DELETE /api/dnc`` with
  ``{"phones": [...], "campaign_id": null | id, "reason": "..."}``.

Numbers are normalised with the hub's default region; invalid ones are reported (line, row or
index) and the valid ones applied. Every change is audited (``dnc_added`` / ``dnc_removed``).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub import lead_import
from hub.access import requires
from hub.identity import Principal
from hub.intake import SpreadsheetError, mask_phone, normalise_phone
from hub.intake.number_lists import Numbers, normalise_all, read_number_file, whole_number
from hub.permissions import Permission
from storage import audit
from storage import campaigns as campaign_store
from storage import dnc as dnc_store
from web.csrf import csrf_ok
from web.i18n import _
from web.pages import render

PAGE_SIZE = 50
MAX_PHONES = 10_000  # per typed form or API request; bigger lists go through the file upload
MAX_FORM_BYTES = 1 << 20
MAX_FILE_ROWS = 500_000  # a do-not-call file is one column; this bounds the numbers held in memory
WRITE_CHUNK = 10_000
INVALID_SHOWN = 100
_SPLIT = re.compile(r"[\r\n,;，；]+")
_DIGITS = re.compile(r"[0-9]{1,18}")


class BadInput(Exception):
    """The request cannot be applied; ``message`` tells the user why. Nothing was changed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- shared input checks -----------------------------------------------------------------------


async def _campaign(hub: Any, value: object) -> int | None:
    """A campaign id from a form field or JSON (``""``/None = the system-wide list)."""
    if value is None or value == "":
        return None
    campaign_id = whole_number(value, 2**31)
    if campaign_id is None:
        raise BadInput(_("The list must be a campaign id, or empty for the system-wide list."))
    async with hub.db() as s:
        exists = await campaign_store.get_campaign(s, campaign_id) is not None
    if not exists:
        raise BadInput(_("There is no campaign %(id)s.") % {"id": campaign_id})
    return campaign_id


def _reason(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(_("The reason must be text."))
    reason = value.strip()
    if len(reason) > dnc_store.REASON_MAX:
        raise BadInput(_("The reason is too long (at most %(n)s characters).") % {"n": dnc_store.REASON_MAX})
    return reason


def _typed(text: str) -> list[str]:
    values = [v.strip() for v in _SPLIT.split(text) if v.strip()]
    if not values:
        raise BadInput(_("Enter at least one phone number."))
    if len(values) > MAX_PHONES:
        raise BadInput(_("At most %(n)s numbers at once; upload a file for more.") % {"n": MAX_PHONES})
    return values


def _no_valid(numbers: Numbers) -> None:
    if not numbers.valid:
        raise BadInput(_("None of the numbers is a valid phone number."))


def _list_target(campaign_id: int | None) -> str:
    return "dnc:system" if campaign_id is None else f"dnc:campaign:{campaign_id}"


# --- applying changes (audited) ----------------------------------------------------------------


async def _add(
    hub: Any, principal: Principal, numbers: Numbers, campaign_id: int | None, reason: str, via: str
) -> int:
    async with hub.db() as s:
        added = 0
        for start in range(0, len(numbers.valid), WRITE_CHUNK):
            added += await dnc_store.add_numbers(
                s,
                numbers.valid[start : start + WRITE_CHUNK],
                campaign_id=campaign_id,
                reason=reason,
                added_by=principal.id,
            )
        await audit.record(
            s,
            actor_id=principal.id,
            action="dnc_added",
            target=_list_target(campaign_id),
            detail={"added": added, "valid": len(numbers.valid), "invalid": len(numbers.invalid), "via": via},
        )
        await s.commit()
    return added


async def _remove(
    hub: Any,
    principal: Principal,
    *,
    campaign_id: int | None,
    phones: list[str],
    entry_ids: list[int],
    via: str,
) -> int:
    async with hub.db() as s:
        if entry_ids:
            removed = await dnc_store.remove_entries(s, entry_ids)
            target, detail = "dnc:entries", {"selected": len(entry_ids)}
        else:
            removed = await dnc_store.remove_numbers(s, phones, campaign_id=campaign_id)
            target, detail = _list_target(campaign_id), {"valid": len(phones)}
        await audit.record(
            s,
            actor_id=principal.id,
            action="dnc_removed",
            target=target,
            detail={"removed": removed, **detail, "via": via},
        )
        await s.commit()
    return removed


# --- the page ----------------------------------------------------------------------------------


def _page_number(value: str | None) -> int:
    return whole_number(value, 100_000) or 1


async def _render(
    request: Request, status: int = 200, *, result: dict[str, Any] | None = None, error: str = ""
) -> Response:
    hub = request.app.state.hub
    q = request.query_params.get("q", "").strip()
    chosen = request.query_params.get("list", "all")
    page = _page_number(request.query_params.get("page"))
    phone = normalise_phone(q, hub.settings.default_region) if q else None
    if q and phone is None and not error:
        error = _("“%(q)s” is not a valid phone number: search for a full number.") % {"q": q[:40]}
    async with hub.db() as s:
        campaigns = await dnc_store.campaigns(s)
        campaign_ids = {cid for cid, _name in campaigns}
        campaign_id = whole_number(chosen)
        campaign_id = campaign_id if campaign_id in campaign_ids else None
        if q and phone is None:
            total, entries = 0, []
        else:
            total, entries = await dnc_store.list_entries(
                s,
                phone=phone,
                campaign_id=campaign_id,
                system_only=chosen == "system",
                offset=(page - 1) * PAGE_SIZE,
                limit=PAGE_SIZE,
            )
    pages = max(1, -(-total // PAGE_SIZE))
    return render(
        request,
        "dnc.html",
        status,
        entries=[(e, mask_phone(e.phone_e164)) for e in entries],
        total=total,
        page=page,
        pages=pages,
        q=q,
        chosen=chosen if chosen in ("all", "system") or campaign_id is not None else "all",
        campaigns=campaigns,
        result=result,
        error=error,
    )


def _result(title: str, counts: list[tuple[str, str, int]], numbers: Numbers | None = None) -> dict[str, Any]:
    invalid = numbers.invalid[:INVALID_SHOWN] if numbers else []
    return {
        "title": title,
        "counts": counts,
        "invalid": invalid,
        "more_invalid": len(numbers.invalid) - len(invalid) if numbers else 0,
    }


def _too_large(request: Request, limit: int) -> bool:
    length = whole_number(request.headers.get("content-length", ""))
    return length is None or length > limit


async def _checked_form(request: Request) -> FormData:
    if _too_large(request, MAX_FORM_BYTES):
        raise BadInput(_("The form is too large; upload a file instead."), 413)
    form = await request.form()
    if not csrf_ok(request, form.get("csrf")):
        raise BadInput(_("The form expired. Please reload the page and try again."))
    return form


@requires(Permission.MANAGE_LEADS)
async def dnc_page(request: Request) -> Response:
    return await _render(request)


@requires(Permission.MANAGE_LEADS)
async def dnc_add(request: Request) -> Response:
    hub = request.app.state.hub
    try:
        form = await _checked_form(request)
        campaign_id = await _campaign(hub, form.get("campaign"))
        reason = _reason(form.get("reason"))
        numbers = normalise_all(_typed(str(form.get("phones", ""))), hub.settings.default_region, "row", 1)
        _no_valid(numbers)
    except BadInput as exc:
        return await _render(request, exc.status, error=exc.message)
    added = await _add(hub, request.state.principal, numbers, campaign_id, reason, "page")
    return await _render(request, result=_added_result(numbers, added))


def _added_result(numbers: Numbers, added: int) -> dict[str, Any]:
    counts = [
        ("total", _("numbers read"), numbers.total),
        ("added", _("newly listed"), added),
        ("already", _("already listed"), len(numbers.valid) - added),
        ("invalid", _("invalid"), len(numbers.invalid)),
    ]
    repeated = numbers.total - len(numbers.invalid) - len(numbers.valid)
    if repeated:
        counts.append(("repeated", _("repeated"), repeated))
    return _result(_("Numbers added to the do-not-call list"), counts, numbers)


@requires(Permission.MANAGE_LEADS)
async def dnc_upload(request: Request) -> Response:
    hub = request.app.state.hub
    settings = hub.settings
    if _too_large(request, settings.upload_max_bytes + 64 * 1024):
        limit_mb = settings.upload_max_bytes // (1 << 20)
        return await _render(
            request, 413, error=_("The file is too large: the limit is %(mb)s MB.") % {"mb": limit_mb}
        )
    path: Path | None = None
    try:
        async with request.form(max_files=1) as form:
            if not csrf_ok(request, form.get("csrf")):
                raise BadInput(_("The form expired. Please reload the page and try again."))
            campaign_id = await _campaign(hub, form.get("campaign"))
            reason = _reason(form.get("reason"))
            upload = form.get("file")
            if upload is None or isinstance(upload, str) or not upload.filename:
                raise BadInput(_("Choose a file of numbers to upload."))
            try:
                path, _size = await lead_import.save_upload(settings, upload)
            except lead_import.ImportRefused as exc:
                raise BadInput(exc.message) from None
        max_rows = min(settings.import_max_rows, MAX_FILE_ROWS)
        try:
            numbers = await asyncio.to_thread(read_number_file, path, settings.default_region, max_rows)
        except SpreadsheetError as exc:
            raise BadInput(exc.message) from None
        if numbers.total == 0:
            raise BadInput(_("The file has no numbers."))
        _no_valid(numbers)
    except BadInput as exc:
        return await _render(request, exc.status, error=exc.message)
    finally:
        if path is not None:
            await asyncio.to_thread(path.unlink, missing_ok=True)
    added = await _add(hub, request.state.principal, numbers, campaign_id, reason, "upload")
    return await _render(request, result=_added_result(numbers, added))


@requires(Permission.MANAGE_LEADS)
async def dnc_remove(request: Request) -> Response:
    hub = request.app.state.hub
    try:
        form = await _checked_form(request)
        selected = form.getlist("entry")
        numbers = Numbers()
        if selected:
            if not all(whole_number(v) for v in selected):
                raise BadInput(_("The selection is not valid. Please reload the page and try again."))
            campaign_id = None
        else:
            campaign_id = await _campaign(hub, form.get("campaign"))
            numbers = normalise_all(
                _typed(str(form.get("phones", ""))), hub.settings.default_region, "row", 1
            )
            _no_valid(numbers)
    except BadInput as exc:
        return await _render(request, exc.status, error=exc.message)
    entry_ids = [int(str(v)) for v in selected]  # checked above
    removed = await _remove(
        request.app.state.hub,
        request.state.principal,
        campaign_id=campaign_id,
        phones=numbers.valid,
        entry_ids=entry_ids,
        via="page",
    )
    counts = [("removed", _("removed"), removed)]
    if not entry_ids:
        counts += [
            ("not_listed", _("were not listed"), len(numbers.valid) - removed),
            ("invalid", _("invalid"), len(numbers.invalid)),
        ]
    return await _render(
        request, result=_result(_("Numbers removed from the do-not-call list"), counts, numbers)
    )


# --- the JSON API ------------------------------------------------------------------------------


def _error(exc: BadInput) -> JSONResponse:
    return JSONResponse({"error": "bad_request", "message": exc.message}, status_code=exc.status)


async def _api_body(request: Request) -> tuple[list[str], Any, Any]:
    """``{"phones": [...], "campaign_id": ..., "reason": ...}`` from a JSON request."""
    if "json" not in request.headers.get("content-type", ""):
        raise BadInput("send Content-Type: application/json", 415)
    if _too_large(request, MAX_FORM_BYTES):
        raise BadInput("the request body is too large", 413)
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BadInput('send JSON {"phones": ["..."], "campaign_id": null, "reason": "..."}')
    phones = body.get("phones")
    if not isinstance(phones, list) or not phones or not all(isinstance(p, str) for p in phones):
        raise BadInput('"phones" must be a non-empty list of strings')
    if len(phones) > MAX_PHONES:
        raise BadInput(f"at most {MAX_PHONES} phones per request")
    return phones, body.get("campaign_id"), body.get("reason")


@requires(Permission.MANAGE_LEADS)
async def api_dnc_check(request: Request) -> Response:
    """``GET /api/dnc?phone=…[&campaign_id=…]`` → whether it is blocked, and the lists it is on."""
    hub = request.app.state.hub
    raw = request.query_params.get("phone", "")
    phone = normalise_phone(raw, hub.settings.default_region)
    try:
        if phone is None:
            raise BadInput("?phone= must be a valid phone number")
        campaign_id = await _campaign(hub, request.query_params.get("campaign_id") or None)
    except BadInput as exc:
        return _error(exc)
    async with hub.db() as s:
        blocked = await dnc_store.is_blocked(s, phone, campaign_id)
        _total, entries = await dnc_store.list_entries(s, phone=phone, limit=1000)
    return JSONResponse(
        {
            "phone": phone,
            "campaign_id": campaign_id,
            "blocked": blocked,
            "lists": [
                {"campaign_id": e.campaign_id, "reason": e.reason, "added_at": e.created_at.isoformat()}
                for e in entries
            ],
        }
    )


@requires(Permission.MANAGE_LEADS)
async def api_dnc_add(request: Request) -> Response:
    """``POST /api/dnc`` → ``{"added", "already_listed", "invalid": [{"index", "value"}]}``."""
    hub = request.app.state.hub
    try:
        phones, campaign, reason_value = await _api_body(request)
        campaign_id = await _campaign(hub, campaign)
        reason = _reason(reason_value)
        numbers = normalise_all(phones, hub.settings.default_region, "index", 0)
        _no_valid(numbers)
    except BadInput as exc:
        return _error(exc)
    added = await _add(hub, request.state.principal, numbers, campaign_id, reason, "api")
    return JSONResponse(
        {
            "campaign_id": campaign_id,
            "added": added,
            "already_listed": len(numbers.valid) - added,
            "invalid": numbers.invalid,
        }
    )


@requires(Permission.MANAGE_LEADS)
async def api_dnc_remove(request: Request) -> Response:
    """``DELETE /api/dnc`` → ``{"removed", "not_listed", "invalid": [{"index", "value"}]}``."""
    hub = request.app.state.hub
    try:
        phones, campaign, reason_value = await _api_body(request)
        campaign_id = await _campaign(hub, campaign)
        _reason(reason_value)  # not stored, but a malformed request is refused all the same
        numbers = normalise_all(phones, hub.settings.default_region, "index", 0)
        _no_valid(numbers)
    except BadInput as exc:
        return _error(exc)
    removed = await _remove(
        hub, request.state.principal, campaign_id=campaign_id, phones=numbers.valid, entry_ids=[], via="api"
    )
    return JSONResponse(
        {
            "campaign_id": campaign_id,
            "removed": removed,
            "not_listed": len(numbers.valid) - removed,
            "invalid": numbers.invalid,
        }
    )


ROUTES: list[BaseRoute] = [
    Route("/dnc", dnc_page, methods=["GET"]),
    Route("/dnc/add", dnc_add, methods=["POST"]),
    Route("/dnc/upload", dnc_upload, methods=["POST"]),
    Route("/dnc/remove", dnc_remove, methods=["POST"]),
    Route("/api/dnc", api_dnc_check, methods=["GET"]),
    Route("/api/dnc", api_dnc_add, methods=["POST"]),
    Route("/api/dnc", api_dnc_remove, methods=["DELETE"]),
]
