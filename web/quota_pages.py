"""Agent quotas for supervisors: how each agent stands today, and the caps and targets.

Routes (all ``Permission.MANAGE_LEADS``: supervisors run the floor):

- ``GET /quotas`` — today's standing per agent (new leads given against the cap, calls against
  the target, where each comes from) and one form with every setting; ``POST /quotas`` (form,
  CSRF) saves it. Problems are shown next to their field, with the submitted values kept.
- ``GET|PUT /api/quotas`` — the settings as JSON (``hub.quotas.DEFAULT_QUOTAS_JSON`` shows the
  shape); PUT takes JSON only, answers 400 ``{"error", "problems": [{"field", "message"}]}``.
- ``GET /api/quotas/standing`` — today's standing as JSON.

Saves are audited (``quotas_changed``). The claim and the agents' warnings read the stored book.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.permissions import Permission
from hub.quotas import (
    QUOTA_FIELDS,
    AgentDay,
    QuotaBook,
    QuotaError,
    parse_quotas,
    quota_book,
    quota_warnings,
    quotas_json,
)
from hub.quotas import day_bounds as company_day
from storage import quotas as quota_store
from storage.quotas import AgentStanding, QuotaScopes
from web.csrf import csrf_ok
from web.i18n import _
from web.json_body import BodyRefused, json_object
from web.pages import client_ip, render

log = logging.getLogger("lineup.quotas")
LEVELS = ("tiers", "teams", "agents")


async def _book(session: Any) -> tuple[QuotaBook, bool]:
    """The stored book (True) or the built-in defaults (False)."""
    stored = await quota_store.quota_book_json(session)
    try:
        return quota_book(stored), stored is not None
    except QuotaError as exc:  # saved settings are validated, so only a hand edit gets here
        log.warning("event=quotas_unreadable problems=%r", exc.problems)
        return quota_book(None), False


def _checked(raw: Any, scopes: QuotaScopes) -> dict[str, Any]:
    """Submitted settings, validated and normalised; raises QuotaError."""
    if not isinstance(raw, dict):
        raise QuotaError([("quotas", "must be a JSON object")])
    stored = quotas_json(parse_quotas(raw))
    problems = [
        (f"teams.{key}", f"there is no team {key}") for key in stored["teams"] if int(key) not in scopes.teams
    ] + [
        (f"agents.{key}", f"there is no sales or TMK agent {key}")
        for key in stored["agents"]
        if int(key) not in scopes.agents
    ]
    if problems:
        raise QuotaError(problems)
    return stored


async def _save(request: Request, raw: Any) -> dict[str, Any]:
    """Validate and store the settings (audited); raises QuotaError."""
    principal = request.state.principal
    async with request.app.state.hub.db() as s:
        stored = _checked(raw, await quota_store.quota_scopes(s))
        ip = client_ip(request)
        await quota_store.save_quota_book(s, stored, principal.id, ip)
        await s.commit()
    log.info("event=quotas_changed by=%s", principal.username)
    return stored


def _standing_json(book: QuotaBook, agent: AgentStanding, now_local: datetime) -> dict[str, Any]:
    quota, origin = book.resolve(agent.agent_id, agent.team_id, agent.tier)
    warnings = quota_warnings(quota, AgentDay(agent.new_leads, agent.calls), now_local, book)
    return {
        "agent_id": agent.agent_id,
        "username": agent.username,
        "name": agent.display_name,
        "role": agent.role,
        "team_id": agent.team_id,
        "team": agent.team_name,
        "tier": agent.tier,
        "new_leads": agent.new_leads,
        "daily_new_leads": quota.daily_new_leads,
        "daily_new_leads_from": origin.daily_new_leads.value,
        "calls": agent.calls,
        "daily_calls": quota.daily_calls,
        "daily_calls_from": origin.daily_calls.value,
        "warnings": [{k: v for k, v in w.as_event().items() if k != "type"} for w in warnings],
    }


async def _standing(request: Request) -> tuple[QuotaBook, bool, QuotaScopes, dict[str, Any]]:
    """The book, whether it is stored, the scopes, and today's standing as JSON."""
    now = datetime.now(UTC)
    async with request.app.state.hub.db() as s:
        book, stored = await _book(s)
        day, since = company_day(book, now)
        agents = await quota_store.team_standing(s, day, since)
        scopes = await quota_store.quota_scopes(s)
    now_local = book.local(now)
    standing = {
        "day": day.isoformat(),
        "zone": book.zone.key,
        "working_day": {"start": f"{book.start:%H:%M}", "end": f"{book.end:%H:%M}"},
        "agents": [_standing_json(book, a, now_local) for a in agents],
    }
    return book, stored, scopes, standing


@dataclass(frozen=True)
class Row:
    """One line of the settings form: the inputs named ``{prefix}.{field}``."""

    prefix: str
    slug: str  # for element ids: a tier's name may hold any character
    label: str
    note: str
    placeholders: dict[str, str]


def _placeholder(value: int | None, source: str) -> str:
    if value is None:
        return _("none")
    return _("%(value)s (%(source)s)") % {"value": value, "source": source}


def _rows(book: QuotaBook, scopes: QuotaScopes, standing: dict[str, Any]) -> dict[str, list[Row]]:
    """Rows for the tiers in use, every team and every active agent, plus any with an override."""
    default = {name: _placeholder(getattr(book.default, name), _("default")) for name in QUOTA_FIELDS}
    tiers = [
        Row(f"tiers.{t}", f"tier-{n}", t, "", default)
        for n, t in enumerate(sorted(set(scopes.tiers) | set(book.tiers)))
    ]
    teams = [
        Row(f"teams.{i}", f"team-{i}", scopes.teams.get(i, _("team %(id)s") % {"id": i}), "", default)
        for i in sorted(set(scopes.teams) | set(book.teams), key=lambda i: (scopes.teams.get(i, ""), i))
    ]
    without_own = dataclasses.replace(book, agents={})  # what an agent gets without their own setting
    labels = {"team": _("team"), "tier": _("tier"), "default": _("default")}
    agents = []
    for a in standing["agents"]:
        quota, origin = without_own.resolve(a["agent_id"], a["team_id"], a["tier"])
        placeholders = {
            name: _placeholder(getattr(quota, name), labels[getattr(origin, name).value])
            for name in QUOTA_FIELDS
        }
        note = " · ".join(filter(None, [a["team"], _("tier %(tier)s") % {"tier": a["tier"]}]))
        agents.append(Row(f"agents.{a['agent_id']}", f"agent-{a['agent_id']}", a["name"], note, placeholders))
    active = {a["agent_id"] for a in standing["agents"]}
    for i in sorted(set(book.agents) - active):
        name = scopes.agents.get(i, _("agent %(id)s") % {"id": i})
        agents.append(Row(f"agents.{i}", f"agent-{i}", name, _("inactive"), default))
    return {"tiers": tiers, "teams": teams, "agents": agents}


def _values(stored: dict[str, Any]) -> dict[str, str]:
    """Form values (name: text) of stored settings."""
    values = {f"default.{k}": "" if v is None else str(v) for k, v in stored["default"].items()}
    for level in LEVELS:
        for key, quota in stored[level].items():
            values |= {f"{level}.{key}.{k}": str(v) for k, v in quota.items()}
    return values | {
        "zone": stored["zone"],
        "working_day.start": stored["working_day"]["start"],
        "working_day.end": stored["working_day"]["end"],
    }


def _raw_from_form(form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings as ``parse_quotas`` reads them, and the submitted values to show again."""
    raw: dict[str, Any] = {"default": {}, "working_day": {}, **{level: {} for level in LEVELS}}
    values: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str) or name == "csrf":
            continue
        values[name] = value
        level, _dot, rest = name.partition(".")
        key, _dot, field = rest.rpartition(".")  # a tier's name may hold a dot: the field is last
        if name == "zone":
            raw["zone"] = value.strip()
        elif level == "working_day" and rest in ("start", "end"):
            raw["working_day"][rest] = value.strip()
        elif level == "default" and rest in QUOTA_FIELDS:
            raw["default"][rest] = value
        elif level in LEVELS and key and field in QUOTA_FIELDS and value.strip():
            raw[level].setdefault(key, {})[field] = value
    return raw, values


async def _page(
    request: Request,
    status: int = 200,
    *,
    values: dict[str, str] | None = None,
    problems: list[tuple[str, str]] | None = None,
    error: str = "",
) -> Response:
    book, stored, scopes, standing = await _standing(request)
    rows = _rows(book, scopes, standing)
    errors = dict(reversed(problems or []))  # the first problem of a field is shown
    placed = {"zone", "working_day.start", "working_day.end"}  # problems shown next to an input
    placed |= {f"default.{name}" for name in QUOTA_FIELDS}
    for row in (r for level in rows.values() for r in level):
        placed |= {row.prefix, *(f"{row.prefix}.{name}" for name in QUOTA_FIELDS)}
    shown = values if values is not None else _values(quotas_json(book))
    agents_open = any(f.startswith("agents.") for f in errors) or any(
        name.startswith("agents.") and value.strip() for name, value in shown.items()
    )
    return render(
        request,
        "quotas.html",
        status_code=status,
        standing=standing,
        rows=rows,
        fields=QUOTA_FIELDS,
        values=shown,
        agents_open=agents_open,
        errors=errors,
        unplaced=[(f, m) for f, m in problems or [] if f not in placed],
        built_in=not stored,
        error=error,
        saved=request.query_params.get("saved") == "1",
    )


@requires(Permission.MANAGE_LEADS)
async def quotas_page(request: Request) -> Response:
    return await _page(request)


@requires(Permission.MANAGE_LEADS)
async def quotas_submit(request: Request) -> Response:
    form = await request.form()
    raw, values = _raw_from_form(form)
    if not csrf_ok(request, form.get("csrf")):
        expired = _("The form expired. Please reload the page and try again.")
        return await _page(request, 400, values=values, error=expired)
    try:
        await _save(request, raw)
    except QuotaError as exc:
        return await _page(
            request,
            400,
            values=values,
            problems=exc.problems,
            error=_("The quotas were not saved: please fix the fields marked below."),
        )
    return RedirectResponse("/quotas?saved=1", status_code=303)


def _problems(exc: QuotaError) -> JSONResponse:
    problems = [{"field": where, "message": what} for where, what in exc.problems]
    return JSONResponse({"error": _("The quotas cannot be saved."), "problems": problems}, status_code=400)


@requires(Permission.MANAGE_LEADS)
async def api_quotas(request: Request) -> Response:
    """``GET``: the settings (``source``: stored or built-in); ``PUT``: replace them."""
    if request.method == "GET":
        async with request.app.state.hub.db() as s:
            book, stored = await _book(s)
        return JSONResponse({"source": "stored" if stored else "built-in", "quotas": quotas_json(book)})
    try:
        saved = await _save(request, await json_object(request))
    except BodyRefused as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except QuotaError as exc:
        return _problems(exc)
    return JSONResponse({"source": "stored", "quotas": saved})


@requires(Permission.MANAGE_LEADS)
async def api_standing(request: Request) -> Response:
    return JSONResponse((await _standing(request))[3])


ROUTES: list[BaseRoute] = [
    Route("/quotas", quotas_page, methods=["GET"]),
    Route("/quotas", quotas_submit, methods=["POST"]),
    Route("/api/quotas", api_quotas, methods=["GET", "PUT"]),
    Route("/api/quotas/standing", api_standing, methods=["GET"]),
]
