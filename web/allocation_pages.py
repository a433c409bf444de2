"""Allocation: share unowned leads among agents (preview, then commit), as pages and as JSON.

The preview hands the commit its seed and a fingerprint of the leads and agents it saw. The commit
recomputes the plan from the database in its own transaction with that seed: when nothing changed
it deals exactly what the preview showed; when something did, it deals what is there now and says
what differs. Leads claimed or assigned in between are skipped and counted, never taken.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.allocation import AllocationError, AllocationRequest, Plan, make_plan, parse_request, weights_for
from hub.identity import Principal
from hub.permissions import Permission
from storage import allocation as store
from storage import audit
from web.csrf import csrf_ok
from web.i18n import _
from web.pages import client_ip, render

log = logging.getLogger("lineup.allocation")

TEMPLATE = "allocation.html"
FIELDS = ("mode", "ratio", "team_id", "batch_id", "per_agent_cap")
MAX_SEED = 2**53  # exact in JSON numbers, so API clients can send the seed back unchanged


@dataclass
class Preview:
    """A plan with what a person needs to judge it: agents, their tiers and weights, the filters."""

    request: AllocationRequest
    plan: Plan
    agents: list[store.EligibleAgent]
    weights: dict[int, int]
    team: store.TeamChoice | None
    batch: store.BatchChoice | None
    tiers_without_agents: list[str] = field(default_factory=list)

    @property
    def unweighted(self) -> int:
        """How many agents get nothing because their tier is not in the ratio."""
        return sum(1 for weight in self.weights.values() if weight == 0)

    def rows(self, assigned: Mapping[int, int] | None = None) -> list[dict[str, Any]]:
        return [
            {
                "id": a.id,
                "name": a.name,
                "tier": a.tier,
                "weight": self.weights[a.id],
                "count": self.plan.counts[a.id],
                **({"assigned": assigned.get(a.id, 0)} if assigned is not None else {}),
            }
            for a in self.agents
        ]

    def as_dict(self, assigned: Mapping[int, int] | None = None) -> dict[str, Any]:
        return {
            "mode": self.request.mode.value,
            "ratio": self.request.ratio,
            "team_id": self.request.team_id,
            "batch_id": self.request.batch_id,
            "per_agent_cap": self.request.per_agent_cap,
            "seed": self.plan.seed,
            "fingerprint": self.plan.fingerprint,
            "total_leads": self.plan.lead_count,
            "allocated": self.plan.allocated,
            "leftover": self.plan.leftover,
            "agents": self.rows(assigned),
            "tiers_without_agents": self.tiers_without_agents,
        }


@dataclass
class Outcome:
    """A committed allocation, and how it differs from the preview the person saw."""

    preview: Preview
    assigned: dict[int, int]
    skipped: int
    changed: bool | None  # None: no preview fingerprint was given
    differences: list[dict[str, Any]]
    previewed_leads: int | None = None  # how many leads the preview saw, when the form says

    @property
    def allocated(self) -> int:
        return sum(self.assigned.values())

    @property
    def agents_served(self) -> int:
        return sum(1 for n in self.assigned.values() if n)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.preview.as_dict(self.assigned),
            "allocated": self.allocated,
            "skipped": self.skipped,
            "changed_since_preview": self.changed,
        }


def _message(error: AllocationError) -> str:
    """The person's words for an allocation error, through the one translation function."""
    messages = {
        "ratio_empty": _("Enter a ratio such as A:1, B:2."),
        "ratio_format": _("“%(part)s” is not TIER:WEIGHT (for example A:1, B:2)."),
        "ratio_duplicate": _("Tier %(tier)s appears twice in the ratio."),
        "ratio_negative": _("The weight of tier %(tier)s cannot be negative."),
        "ratio_too_big": _("The weight of tier %(tier)s is too large (at most %(max)s)."),
        "ratio_all_zero": _("At least one tier needs a weight above 0."),
        "bad_mode": _("Choose an even split or a tier ratio."),
        "bad_team": _("The team must be a number."),
        "bad_batch": _("The import batch must be a number."),
        "bad_cap": _("The limit per agent must be a whole number above 0."),
        "bad_seed": _("The preview is damaged. Please preview again."),
        "unknown_team": _("There is no such team."),
        "unknown_batch": _("There is no such import batch."),
        "no_agents": _("No active sales or telemarketing agent can be given leads."),
        "no_agents_in_team": _("The team “%(team)s” has no active sales or telemarketing agent."),
        "no_leads": _("There are no unowned leads to allocate."),
        "no_leads_in_batch": _("The import “%(batch)s” has no unowned leads left."),
        "no_weighted_agents": _("No matching agent has a tier in the ratio."),
    }
    template = messages.get(error.code)
    return template % error.params if template else error.message


def _seed(value: object) -> int:
    if value is None or value == "":
        return secrets.randbelow(MAX_SEED)
    try:
        seed = int(str(value))
    except ValueError:
        raise AllocationError("bad_seed", "The seed must be a whole number.") from None
    if not 0 <= seed < MAX_SEED:
        raise AllocationError("bad_seed", "The seed is out of range.")
    return seed


async def _prepare(session: AsyncSession, request: AllocationRequest, seed: int) -> Preview:
    """Read the leads and agents the request names and make the plan. Raises AllocationError."""
    team = batch = None
    if request.team_id is not None:
        team = await store.team(session, request.team_id)
        if team is None:
            raise AllocationError("unknown_team", "There is no such team.")
    if request.batch_id is not None:
        batch = await store.batch(session, request.batch_id)
        if batch is None:
            raise AllocationError("unknown_batch", "There is no such import batch.")
    agents = await store.eligible_agents(session, team_id=request.team_id)
    if not agents:
        code = "no_agents_in_team" if team else "no_agents"
        raise AllocationError(code, "No agent can be given leads.", team=team.name if team else "")
    lead_ids = await store.candidate_lead_ids(session, batch_id=request.batch_id)
    if not lead_ids:
        code = "no_leads_in_batch" if batch else "no_leads"
        raise AllocationError(code, "No unowned leads.", batch=batch.filename if batch else "")
    weights = weights_for(((a.id, a.tier) for a in agents), request)
    agent_tiers = {a.tier for a in agents}
    return Preview(
        request=request,
        plan=make_plan(lead_ids, weights, seed, request.per_agent_cap),
        agents=agents,
        weights={w.agent_id: w.weight for w in weights},
        team=team,
        batch=batch,
        tiers_without_agents=[t for t, w in request.ratio.items() if w > 0 and t not in agent_tiers],
    )


def _expected_counts(value: object) -> dict[int, int]:
    """The preview's ``agent:count`` list; anything unreadable is ignored (it only feeds a report)."""
    counts: dict[int, int] = {}
    for part in str(value or "").split(","):
        agent, _sep, count = part.partition(":")
        if agent.strip().isdigit() and count.strip().isdigit():
            counts[int(agent)] = int(count)
    return counts


def _differences(preview: Preview, expected: Mapping[int, int]) -> list[dict[str, Any]]:
    """Agents whose count now differs from what the preview showed them (gone agents count 0 now)."""
    now = {a.id: (a.name, preview.plan.counts[a.id]) for a in preview.agents}
    rows = []
    for agent_id in sorted(set(now) | set(expected)):
        name, count = now.get(agent_id, (f"#{agent_id}", 0))
        before = expected.get(agent_id, 0)
        if before != count:
            rows.append({"id": agent_id, "name": name, "preview": before, "now": count})
    return rows


async def _commit(request: Request, fields: Mapping[str, object]) -> Outcome:
    """Recompute the plan, assign, and audit, all in one transaction. Raises AllocationError."""
    hub = request.app.state.hub
    principal: Principal = request.state.principal
    wanted = parse_request(fields)
    seed = _seed(fields.get("seed"))
    async with hub.db() as session:
        preview = await _prepare(session, wanted, seed)
        result = await store.assign(session, preview.plan.assignments)
        expected_fp = fields.get("fingerprint")
        changed = None if not expected_fp else expected_fp != preview.plan.fingerprint
        await audit.record(
            session,
            actor_id=principal.id,
            action="leads_allocated",
            target=f"batch:{wanted.batch_id}" if wanted.batch_id else "pool",
            detail={
                "mode": wanted.mode.value,
                "ratio": wanted.ratio,
                "team_id": wanted.team_id,
                "batch_id": wanted.batch_id,
                "per_agent_cap": wanted.per_agent_cap,
                "seed": seed,
                "counts": {str(agent): n for agent, n in result.assigned.items()},
                "allocated": result.total,
                "skipped": result.skipped,
                "leftover": preview.plan.leftover,
                "changed_since_preview": changed,
            },
            ip=client_ip(request),
        )
        await session.commit()
    # No leads_available broadcast: these leads were already in the pool, open to every ready agent.
    log.info(
        "event=leads_allocated actor=%s mode=%s agents=%d allocated=%d skipped=%d leftover=%d",
        principal.username,
        wanted.mode.value,
        len(result.assigned),
        result.total,
        result.skipped,
        preview.plan.leftover,
    )
    differences = _differences(preview, _expected_counts(fields.get("expected"))) if changed else []
    previewed = str(fields.get("expected_total") or "")
    return Outcome(
        preview,
        result.assigned,
        result.skipped,
        changed,
        differences,
        int(previewed) if previewed.isdigit() else None,
    )


# Pages ------------------------------------------------------------------------------------------


async def _page(
    request: Request, status: int = 200, form: Mapping[str, object] | None = None, **ctx: Any
) -> Response:
    """The allocation page: the form (refilled with what was sent) plus a preview, result or error."""
    async with request.app.state.hub.db() as session:
        teams = await store.teams(session)
        batches = await store.recent_batches(session)
        pool = await store.unowned_count(session)
    values = {name: str((form or {}).get(name) or "") for name in FIELDS}
    values["mode"] = values["mode"] or "even"
    context = {"preview": None, "result": None, "error": "", **ctx}
    return render(request, TEMPLATE, status, form=values, teams=teams, batches=batches, pool=pool, **context)


async def _checked_form(request: Request) -> tuple[dict[str, object], Response | None]:
    form = await request.form()
    fields: dict[str, object] = {k: v for k, v in form.items() if isinstance(v, str)}
    if not csrf_ok(request, form.get("csrf")):
        error = _("The form expired. Please reload the page and try again.")
        return fields, await _page(request, 400, fields, error=error)
    return fields, None


@requires(Permission.MANAGE_LEADS)
async def allocation_page(request: Request) -> Response:
    return await _page(request)


@requires(Permission.MANAGE_LEADS)
async def allocation_preview(request: Request) -> Response:
    fields, refused = await _checked_form(request)
    if refused is not None:
        return refused
    try:
        wanted = parse_request(fields)
        async with request.app.state.hub.db() as session:
            preview = await _prepare(session, wanted, _seed(None))
    except AllocationError as exc:
        return await _page(request, 400, fields, error=_message(exc))
    return await _page(request, 200, fields, preview=preview)


@requires(Permission.MANAGE_LEADS)
async def allocation_commit(request: Request) -> Response:
    fields, refused = await _checked_form(request)
    if refused is not None:
        return refused
    try:
        outcome = await _commit(request, fields)
    except AllocationError as exc:
        return await _page(request, 400, fields, error=_message(exc))
    return await _page(request, 200, fields, result=outcome)


# JSON API ---------------------------------------------------------------------------------------


def _bad_request(message: str, code: str = "bad_request") -> JSONResponse:
    return JSONResponse({"error": "bad_request", "code": code, "message": message}, status_code=400)


async def _json_fields(request: Request) -> dict[str, object] | None:
    # Only real JSON: a cross-site form cannot send this content type without a CORS preflight.
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


_JSON_HINT = 'send JSON {"mode": "even" | "ratio", "ratio": "A:1, B:2", "team_id": …, "batch_id": …}'


@requires(Permission.MANAGE_LEADS)
async def api_preview(request: Request) -> Response:
    """``POST /api/allocations/preview`` → per-agent counts, leftover, and the seed to commit with."""
    fields = await _json_fields(request)
    if fields is None:
        return _bad_request(_JSON_HINT)
    try:
        wanted = parse_request(fields)
        seed = _seed(fields.get("seed"))
        async with request.app.state.hub.db() as session:
            preview = await _prepare(session, wanted, seed)
    except AllocationError as exc:
        return _bad_request(_message(exc), exc.code)
    return JSONResponse(preview.as_dict())


@requires(Permission.MANAGE_LEADS)
async def api_commit(request: Request) -> Response:
    """``POST /api/allocations`` (optionally with a preview's ``seed`` and ``fingerprint``) → the result."""
    fields = await _json_fields(request)
    if fields is None:
        return _bad_request(_JSON_HINT)
    try:
        outcome = await _commit(request, fields)
    except AllocationError as exc:
        return _bad_request(_message(exc), exc.code)
    return JSONResponse(outcome.as_dict())


ROUTES: list[BaseRoute] = [
    Route("/allocation", allocation_page, methods=["GET"]),
    Route("/allocation/preview", allocation_preview, methods=["POST"]),
    Route("/allocation", allocation_commit, methods=["POST"]),
    Route("/api/allocations/preview", api_preview, methods=["POST"]),
    Route("/api/allocations", api_commit, methods=["POST"]),
]
