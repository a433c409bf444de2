"""Recycle bin: soft-deleted leads, restore, purge, delete all — the page and the JSON API.

Page routes (forms with CSRF):

- ``GET /recycle-bin[?page=N]`` — the bin (masked phones), restore and delete forms.
- ``POST /recycle-bin/delete`` — ``batch_id`` or typed ``ids`` → bin (MANAGE_LEADS).
- ``POST /recycle-bin/restore`` — ``scope=selected`` (checked ``ids``) | ``batch`` | ``all`` (MANAGE_LEADS).
- ``POST /recycle-bin/delete-all`` — ``confirm=DELETE ALL`` (PURGE_LEADS).
- ``POST /recycle-bin/purge`` — ``confirm=PURGE``: erase everything in the bin (PURGE_LEADS).

JSON API (``Content-Type: application/json``):

- ``GET /api/leads/deleted[?page=N]`` (MANAGE_LEADS).
- ``POST /api/leads/delete`` ``{"ids": [...]}`` | ``{"batch_id": n}`` (MANAGE_LEADS).
- ``POST /api/leads/restore`` ``{"ids"}`` | ``{"batch_id"}`` | ``{"all": true}`` (MANAGE_LEADS).
- ``POST /api/leads/delete-all`` ``{"confirm": "DELETE ALL"}`` (PURGE_LEADS).
- ``POST /api/leads/purge`` ``{"confirm": "PURGE"}`` [+ ``"ids"`` | ``"batch_id"``] (PURGE_LEADS).

Leads an agent holds are never deleted (they are counted as ``skipped_held``). Bad input changes
nothing; every operation is audited (``leads_deleted`` / ``leads_restored`` / ``leads_purged``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.identity import Principal
from hub.intake import mask_phone
from hub.intake.number_lists import whole_number
from hub.permissions import Permission, allows
from storage import audit, recycle
from storage.recycle import DeleteCounts, LeadScope, PurgeCounts, RestoreCounts
from web.csrf import csrf_ok
from web.i18n import _
from web.pages import render

PAGE_SIZE = 50
MAX_IDS = 10_000
MAX_BODY_BYTES = 1 << 20
CONFIRM_DELETE_ALL = "DELETE ALL"
CONFIRM_PURGE = "PURGE"
_ID = re.compile(r"[0-9]{1,19}")
_ID_SEPARATORS = re.compile(r"[\s,;，；]+")


class BadInput(Exception):
    """The request cannot be applied; ``message`` tells the user why. Nothing was changed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- operations --------------------------------------------------------------------------------

Counts = DeleteCounts | RestoreCounts | PurgeCounts


@dataclass(frozen=True)
class Operation:
    action: str  # in the audit log
    run: Callable[[AsyncSession, LeadScope, Any], Awaitable[Any]]
    counts: Callable[[], Counts]


DELETE = Operation("leads_deleted", recycle.soft_delete, DeleteCounts)
RESTORE = Operation("leads_restored", recycle.restore, RestoreCounts)
PURGE = Operation("leads_purged", recycle.purge_bin, PurgeCounts)


async def apply(hub: Any, principal: Principal, operation: Operation, scope: LeadScope) -> dict[str, int]:
    """Run an operation in chunks and audit what it did — also what it did before failing."""
    counts = operation.counts()
    complete = False
    try:
        async with hub.db() as s:
            await operation.run(s, scope, counts)
        complete = True
    finally:
        async with hub.db() as s:
            await audit.record(
                s,
                actor_id=principal.id,
                action=operation.action,
                target="leads",
                detail={**scope.describe(), **counts.as_dict(), "complete": complete},
            )
            await s.commit()
    if isinstance(counts, RestoreCounts) and counts.restored:
        await hub.leads_available()
    return counts.as_dict()


# --- input -------------------------------------------------------------------------------------


def ids_from_text(values: list[str]) -> list[int]:
    """Lead ids from checkbox values or a typed list such as ``12, 15 20``."""
    ids: list[int] = []
    for value in values:
        for part in _ID_SEPARATORS.split(value.strip()):
            if not part:
                continue
            if not _ID.fullmatch(part) or not 0 < int(part) < 2**63:
                raise BadInput(
                    _("Lead ids are whole numbers: “%(value)s” is not one.") % {"value": part[:20]}
                )
            ids.append(int(part))
    return _checked_ids(ids)


def _checked_ids(ids: list[int]) -> list[int]:
    if not ids:
        raise BadInput(_("Select at least one lead."))
    if len(ids) > MAX_IDS:
        raise BadInput(_("At most %(n)s leads at once.") % {"n": MAX_IDS})
    return ids


def ids_from_json(value: object) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**63 for v in value
    ):
        raise BadInput('"ids" must be a list of lead ids (whole numbers)')
    return _checked_ids(list(value))


async def batch_scope(hub: Any, value: object) -> LeadScope:
    """The scope of one existing import batch, from a form field or JSON."""
    text_value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text_value, str) or not _ID.fullmatch(text_value) or int(text_value) >= 2**31:
        raise BadInput(_("Choose an import batch."))
    batch_id = int(text_value)
    async with hub.db() as s:
        if not await recycle.batch_exists(s, batch_id):
            raise BadInput(_("There is no import batch %(id)s.") % {"id": batch_id})
    return LeadScope.batch(batch_id)


def _confirmed(value: object, expected: str) -> None:
    if value != expected:
        raise BadInput(_("Type %(word)s exactly to confirm. Nothing was changed.") % {"word": expected})


# --- the page ----------------------------------------------------------------------------------

_LABELS = {
    "deleted": lambda: _("moved to the bin"),
    "skipped_held": lambda: _("skipped: an agent is working on them"),
    "restored": lambda: _("restored"),
    "skipped_duplicate": lambda: _("left in the bin: the number has an active lead"),
    "leads": lambda: _("leads erased"),
    "contact_attempts": lambda: _("contact records erased"),
    "calls_anonymised": lambda: _("calls anonymised"),
    "customers": lambda: _("customers erased"),
    "import_rejects": lambda: _("rejected import rows erased"),
    "not_found": lambda: _("not found, or already moved"),
}


def _result(title: str, counts: dict[str, int]) -> dict[str, Any]:
    shown = [
        (key, _LABELS[key](), n) for key, n in counts.items() if n or key in ("deleted", "restored", "leads")
    ]
    return {"title": title, "counts": shown}


async def _render(
    request: Request, status: int = 200, *, result: dict[str, Any] | None = None, error: str = ""
) -> Response:
    hub = request.app.state.hub
    principal: Principal = request.state.principal
    page = whole_number(request.query_params.get("page", ""), 100_000) or 1
    async with hub.db() as s:
        total, leads = await recycle.list_bin(s, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        batches = await recycle.recent_batches(s)
    return render(
        request,
        "recycle_bin.html",
        status,
        leads=[(lead, mask_phone(lead.phone_e164)) for lead in leads],
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        batches=batches,
        can_purge=allows(principal.role, Permission.PURGE_LEADS),
        confirm_delete_all=CONFIRM_DELETE_ALL,
        confirm_purge=CONFIRM_PURGE,
        result=result,
        error=error,
    )


async def _form(request: Request) -> FormData:
    length = whole_number(request.headers.get("content-length", ""))
    if length is None or length > MAX_BODY_BYTES:
        raise BadInput(_("The form is too large."), 413)
    form = await request.form()
    if not csrf_ok(request, form.get("csrf")):
        raise BadInput(_("The form expired. Please reload the page and try again."))
    return form


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _page_action(
    request: Request, title: str, decide: Callable[[FormData], Awaitable[tuple[Operation, LeadScope]]]
) -> Response:
    try:
        operation, scope = await decide(await _form(request))
    except BadInput as exc:
        return await _render(request, exc.status, error=exc.message)
    counts = await apply(request.app.state.hub, request.state.principal, operation, scope)
    return await _render(request, result=_result(title, counts))


@requires(Permission.MANAGE_LEADS)
async def bin_page(request: Request) -> Response:
    return await _render(request)


@requires(Permission.MANAGE_LEADS)
async def delete_page(request: Request) -> Response:
    async def decide(form: FormData) -> tuple[Operation, LeadScope]:
        batch, typed = _text(form, "batch_id"), _text(form, "ids")
        if batch and typed:
            raise BadInput(_("Choose an import batch or enter lead ids, not both."))
        if batch:
            return DELETE, await batch_scope(request.app.state.hub, batch)
        if typed:
            return DELETE, LeadScope.selected(ids_from_text([typed]))
        raise BadInput(_("Choose an import batch or enter lead ids."))

    return await _page_action(request, _("Leads moved to the recycle bin"), decide)


@requires(Permission.MANAGE_LEADS)
async def restore_page(request: Request) -> Response:
    async def decide(form: FormData) -> tuple[Operation, LeadScope]:
        scope = _text(form, "scope")
        if scope == "selected":
            values = [v for v in form.getlist("ids") if isinstance(v, str)]
            return RESTORE, LeadScope.selected(ids_from_text(values))
        if scope == "batch":
            return RESTORE, await batch_scope(request.app.state.hub, _text(form, "batch_id"))
        if scope == "all":
            return RESTORE, LeadScope.everything()
        raise BadInput(_("Choose what to restore."))

    return await _page_action(request, _("Leads restored"), decide)


@requires(Permission.PURGE_LEADS)
async def delete_all_page(request: Request) -> Response:
    async def decide(form: FormData) -> tuple[Operation, LeadScope]:
        _confirmed(form.get("confirm"), CONFIRM_DELETE_ALL)
        return DELETE, LeadScope.everything()

    return await _page_action(request, _("All leads moved to the recycle bin"), decide)


@requires(Permission.PURGE_LEADS)
async def purge_page(request: Request) -> Response:
    async def decide(form: FormData) -> tuple[Operation, LeadScope]:
        _confirmed(form.get("confirm"), CONFIRM_PURGE)
        return PURGE, LeadScope.everything()

    return await _page_action(request, _("Recycle bin purged"), decide)


# --- the JSON API ------------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    if "json" not in request.headers.get("content-type", ""):
        raise BadInput("send Content-Type: application/json", 415)
    length = whole_number(request.headers.get("content-length", ""))
    if length is None or length > MAX_BODY_BYTES:
        raise BadInput("the request body is missing or too large", 413)
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BadInput("send a JSON object")
    return body


async def _json_scope(request: Request, body: dict[str, Any], *, allow_all: bool) -> LeadScope:
    given = [key for key in ("ids", "batch_id", "all") if key in body]
    if len(given) != 1 or (given == ["all"] and (not allow_all or body["all"] is not True)):
        choices = '"ids" or "batch_id"' + (' or "all": true' if allow_all else "")
        raise BadInput(f"send exactly one of {choices}")
    if given == ["ids"]:
        return LeadScope.selected(ids_from_json(body["ids"]))
    if given == ["batch_id"]:
        return await batch_scope(request.app.state.hub, body["batch_id"])
    return LeadScope.everything()


async def _api_action(
    request: Request, decide: Callable[[dict[str, Any]], Awaitable[tuple[Operation, LeadScope]]]
) -> Response:
    try:
        operation, scope = await decide(await _body(request))
    except BadInput as exc:
        return JSONResponse({"error": "bad_request", "message": exc.message}, status_code=exc.status)
    counts = await apply(request.app.state.hub, request.state.principal, operation, scope)
    return JSONResponse({"scope": scope.name, **counts})


@requires(Permission.MANAGE_LEADS)
async def api_bin(request: Request) -> Response:
    """``GET /api/leads/deleted[?page=N]`` → ``{"total", "page", "pages", "leads": [...]}``."""
    page = whole_number(request.query_params.get("page", "1"), 100_000)
    if not page:
        return JSONResponse({"error": "bad_request", "message": "?page= must be a positive number"}, 400)
    async with request.app.state.hub.db() as s:
        total, leads = await recycle.list_bin(s, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return JSONResponse(
        {
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "leads": [
                {
                    "id": lead.id,
                    "name": lead.name,
                    "phone_masked": mask_phone(lead.phone_e164),
                    "batch_id": lead.batch_id,
                    "deleted_at": lead.deleted_at.isoformat(),
                }
                for lead in leads
            ],
        }
    )


@requires(Permission.MANAGE_LEADS)
async def api_delete(request: Request) -> Response:
    async def decide(body: dict[str, Any]) -> tuple[Operation, LeadScope]:
        return DELETE, await _json_scope(request, body, allow_all=False)

    return await _api_action(request, decide)


@requires(Permission.MANAGE_LEADS)
async def api_restore(request: Request) -> Response:
    async def decide(body: dict[str, Any]) -> tuple[Operation, LeadScope]:
        return RESTORE, await _json_scope(request, body, allow_all=True)

    return await _api_action(request, decide)


@requires(Permission.PURGE_LEADS)
async def api_delete_all(request: Request) -> Response:
    async def decide(body: dict[str, Any]) -> tuple[Operation, LeadScope]:
        _confirmed(body.get("confirm"), CONFIRM_DELETE_ALL)
        return DELETE, LeadScope.everything()

    return await _api_action(request, decide)


@requires(Permission.PURGE_LEADS)
async def api_purge(request: Request) -> Response:
    async def decide(body: dict[str, Any]) -> tuple[Operation, LeadScope]:
        _confirmed(body.get("confirm"), CONFIRM_PURGE)
        if not any(key in body for key in ("ids", "batch_id", "all")):
            return PURGE, LeadScope.everything()
        return PURGE, await _json_scope(request, body, allow_all=True)

    return await _api_action(request, decide)


ROUTES: list[BaseRoute] = [
    Route("/recycle-bin", bin_page, methods=["GET"]),
    Route("/recycle-bin/delete", delete_page, methods=["POST"]),
    Route("/recycle-bin/restore", restore_page, methods=["POST"]),
    Route("/recycle-bin/delete-all", delete_all_page, methods=["POST"]),
    Route("/recycle-bin/purge", purge_page, methods=["POST"]),
    Route("/api/leads/deleted", api_bin, methods=["GET"]),
    Route("/api/leads/delete", api_delete, methods=["POST"]),
    Route("/api/leads/restore", api_restore, methods=["POST"]),
    Route("/api/leads/delete-all", api_delete_all, methods=["POST"]),
    Route("/api/leads/purge", api_purge, methods=["POST"]),
]
