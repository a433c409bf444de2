"""Campaigns (lead pools): the list, one campaign's settings and members, and the JSON API.

Routes (all ``Permission.MANAGE_LEADS``):

- ``GET /campaigns`` — every campaign with its counts, and the form to create one (name, kind).
- ``POST /campaigns`` — create, then go to the new campaign's page.
- ``GET /campaigns/{id}`` — name, active, description, hand-off campaign (TMK) and members.
- ``POST /campaigns/{id}`` — save all of it as one change.
- ``GET /api/campaigns``, ``POST /api/campaigns`` ``{"name", "kind", "settings"?}`` and
  ``PUT /api/campaigns/{id}/members`` ``{"user_ids": [...], "team_ids": [...]}``.

The rules (who may join, what a hand-off campaign is) live in ``storage.campaigns``; this module
reads requests, words the refusals and renders. Every change is audited by the store.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.identity import Principal
from hub.permissions import Permission
from hub.policy import PolicyError
from storage import campaigns as store
from storage.models import Campaign, User
from web.csrf import csrf_ok
from web.i18n import _
from web.json_body import BodyRefused, json_object
from web.pages import client_ip, render
from web.policy_pages import checked_policy, policy_problems

log = logging.getLogger("lineup.campaigns")

MAX_BODY = 1 << 20
_MAX_ID = 2**31 - 1


class BadInput(Exception):
    """The request cannot be applied; ``message`` tells the user why. Nothing was changed."""

    def __init__(self, message: str, status: int = 400, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.problems = problems or []


# --- wording the store's refusals --------------------------------------------------------------


def _kind_label(kind: str) -> str:
    return {"sales": _("sales"), "tmk": _("TMK")}.get(kind, kind)


def _templates() -> dict[str, str]:
    return {
        "name_missing": _("Give the campaign a name."),
        "name_too_long": _("The name is too long (at most %(max)s characters)."),
        "kind_invalid": _("Choose the kind: sales or TMK."),
        "settings_unknown": _("Unknown settings: %(keys)s."),
        "description_not_text": _("The description must be text."),
        "description_too_long": _("The description is too long (at most %(max)s characters)."),
        "handoff_not_id": _("The hand-off campaign must be a campaign id."),
        "handoff_not_tmk": _("Only a TMK campaign hands leads off to a sales campaign."),
        "handoff_missing": _("There is no campaign %(id)s to hand leads off to."),
        "handoff_not_sales": _("The hand-off campaign “%(name)s” is not a sales campaign."),
        "contact_not_object": _("The contact policy must be an object."),
        "ids_invalid:user": _("Agent ids must be positive whole numbers."),
        "ids_invalid:team": _("Team ids must be positive whole numbers."),
        "too_many:user": _("At most %(max)s agents per campaign."),
        "too_many:team": _("At most %(max)s teams per campaign."),
        "user_missing": _("Agent %(id)s does not exist."),
        "user_inactive": _("%(name)s (%(username)s) is inactive and cannot join a campaign."),
        "user_wrong_role": _(
            "%(name)s (%(username)s) is a %(role)s agent and cannot join a %(kind)s campaign."
        ),
        "team_missing": _("Team %(id)s does not exist."),
        "kind_mismatch": _("Campaign “%(name)s” is a %(kind)s campaign, not %(wanted)s."),
        "not_found": _("There is no campaign %(id)s."),
    }


def explain(problem: store.Problem) -> str:
    """A person's sentence for one refusal."""
    params = dict(problem.params)
    key = f"{problem.code}:{params['what']}" if "what" in params else problem.code
    for name in ("role", "kind", "wanted"):
        if name in params:
            params[name] = _kind_label(str(params[name]))
    if isinstance(params.get("keys"), list):
        params["keys"] = ", ".join(params["keys"])
    template = _templates().get(key)
    return template % params if template else str(problem)


def _refused(exc: store.CampaignError) -> BadInput:
    status = 404 if isinstance(exc, store.CampaignNotFound) else 400
    problems = [{"code": p.code, **p.params, "message": explain(p)} for p in exc.problems]
    return BadInput(" ".join(p["message"] for p in problems), status, problems)


def _name_taken() -> BadInput:
    return BadInput(_("A campaign with that name exists. Choose another name."), 409)


# --- reading requests --------------------------------------------------------------------------


def _id(value: object) -> int:
    if isinstance(value, str) and value.isdigit() and 0 < int(value) <= _MAX_ID:
        return int(value)
    raise BadInput(_("The selection is not valid. Please reload the page and try again."))


async def _checked_form(request: Request) -> FormData:
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_BODY:
        raise BadInput(_("The form is too large."), 413)
    form = await request.form()
    if not csrf_ok(request, form.get("csrf")):
        raise BadInput(_("The form expired. Please reload the page and try again."))
    return form


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        return await json_object(request, MAX_BODY)
    except BodyRefused as exc:
        raise BadInput(exc.message, exc.status) from None


def _campaign_id(request: Request) -> int:
    return int(request.path_params["campaign_id"])


# --- the list page -----------------------------------------------------------------------------


async def _render_list(
    request: Request, status: int = 200, *, error: str = "", name: str = "", kind: str = "sales"
) -> Response:
    async with request.app.state.hub.db() as s:
        campaigns = await store.list_campaigns(s)
    names = {c.id: c.name for c in campaigns}
    return render(
        request,
        "campaigns.html",
        status,
        campaigns=campaigns,
        handoff_names={c.id: names.get(c.settings.get("handoff_campaign_id") or 0, "") for c in campaigns},
        error=error,
        name=name,
        kind=kind,
    )


@requires(Permission.MANAGE_LEADS)
async def campaigns_page(request: Request) -> Response:
    return await _render_list(request)


@requires(Permission.MANAGE_LEADS)
async def campaign_create(request: Request) -> Response:
    principal: Principal = request.state.principal
    name, kind = "", "sales"
    try:
        form = await _checked_form(request)
        name, kind = str(form.get("name", "")).strip(), str(form.get("kind", ""))
        campaign = await _create(request, name, kind, None)
    except BadInput as exc:
        status = 400 if exc.status == 409 else exc.status
        return await _render_list(request, status, error=exc.message, name=name, kind=kind)
    log.info("event=campaign_created actor=%s campaign=%d", principal.username, campaign.id)
    return RedirectResponse(f"/campaigns/{campaign.id}?created=1", status_code=303)


async def _create(request: Request, name: str, kind: str, settings: dict[str, Any] | None) -> Campaign:
    principal: Principal = request.state.principal
    async with request.app.state.hub.db() as s:
        try:
            campaign = await store.create_campaign(
                s, name, kind, settings, actor_id=principal.id, ip=client_ip(request)
            )
            await s.commit()
        except store.CampaignError as exc:
            raise _refused(exc) from None
        except IntegrityError:
            await s.rollback()
            raise _name_taken() from None
    return campaign


# --- one campaign's page -----------------------------------------------------------------------


async def _render_campaign(
    request: Request,
    campaign: Campaign,
    status: int = 200,
    *,
    values: dict[str, Any] | None = None,
    error: str = "",
) -> Response:
    async with request.app.state.hub.db() as s:
        agents = await store.eligible_agents(s, campaign.kind)
        teams = await store.team_choices(s)
        user_ids, team_ids = await store.members_of(s, campaign.id)
        listed = {a.id for a in agents}
        stale = [u for u in user_ids if u not in listed]
        stale_users = [await s.get(User, u) for u in stale]
        sales = [c for c in await store.list_campaigns(s) if c.kind == "sales"]
    if values is None:
        values = {
            "name": campaign.name,
            "active": campaign.active,
            "description": campaign.settings.get("description", ""),
            "handoff_campaign_id": campaign.settings.get("handoff_campaign_id"),
            "user_ids": set(user_ids),
            "team_ids": set(team_ids),
        }
    return render(
        request,
        "campaign.html",
        status,
        campaign=campaign,
        values=values,
        agents=agents,
        teams=teams,
        stale_users=[u for u in stale_users if u is not None],
        sales_campaigns=sales,
        error=error,
        saved=request.query_params.get("saved") == "1" and not error,
        created=request.query_params.get("created") == "1" and not error,
    )


def _not_found(request: Request) -> Response:
    return render(request, "campaign.html", 404, campaign=None, error="")


async def _load(request: Request) -> Campaign | None:
    async with request.app.state.hub.db() as s:
        return await store.get_campaign(s, _campaign_id(request))


@requires(Permission.MANAGE_LEADS)
async def campaign_page(request: Request) -> Response:
    campaign = await _load(request)
    if campaign is None:
        return _not_found(request)
    return await _render_campaign(request, campaign)


def _submitted(form: FormData, campaign: Campaign) -> dict[str, Any]:
    """The form's values as the page shows them again; ids not yet checked against the database."""
    handoff = str(form.get("handoff_campaign_id", "") or "")
    return {
        "name": str(form.get("name", "")).strip(),
        "active": form.get("active") == "on",
        "description": str(form.get("description", "")),
        "handoff_campaign_id": _id(handoff) if handoff else None,
        "user_ids": {_id(v) for v in form.getlist("user_id")},
        "team_ids": {_id(v) for v in form.getlist("team_id")},
        "has_handoff": "handoff_campaign_id" in form,
    }


async def _save(request: Request, campaign: Campaign, values: dict[str, Any]) -> None:
    """Settings and members as one transaction: both are stored, or neither."""
    principal: Principal = request.state.principal
    settings: dict[str, Any] = {"description": values["description"]}
    if values["has_handoff"]:
        settings["handoff_campaign_id"] = values["handoff_campaign_id"]
    async with request.app.state.hub.db() as s:
        try:
            await store.update_campaign(
                s,
                campaign.id,
                values["name"],
                values["active"],
                settings,
                actor_id=principal.id,
                ip=client_ip(request),
            )
            await store.set_members(
                s,
                campaign.id,
                values["user_ids"],
                values["team_ids"],
                actor_id=principal.id,
                ip=client_ip(request),
            )
            await s.commit()
        except store.CampaignError as exc:
            await s.rollback()
            raise _refused(exc) from None
        except IntegrityError:
            await s.rollback()
            raise _name_taken() from None


@requires(Permission.MANAGE_LEADS)
async def campaign_save(request: Request) -> Response:
    principal: Principal = request.state.principal
    campaign = await _load(request)
    if campaign is None:
        return _not_found(request)
    values: dict[str, Any] | None = None
    try:
        form = await _checked_form(request)
        values = _submitted(form, campaign)
        await _save(request, campaign, values)
    except BadInput as exc:
        if exc.status == 404:
            return _not_found(request)
        status = 400 if exc.status == 409 else exc.status
        return await _render_campaign(request, campaign, status, values=values, error=exc.message)
    log.info("event=campaign_saved actor=%s campaign=%d", principal.username, campaign.id)
    return RedirectResponse(f"/campaigns/{campaign.id}?saved=1", status_code=303)


# --- the JSON API ------------------------------------------------------------------------------


def _error(exc: BadInput) -> JSONResponse:
    code = {404: "not_found", 409: "conflict", 413: "too_large", 415: "unsupported_media_type"}
    body: dict[str, Any] = {"error": code.get(exc.status, "bad_request"), "message": exc.message}
    if exc.problems:
        body["problems"] = exc.problems
    return JSONResponse(body, status_code=exc.status)


@requires(Permission.MANAGE_LEADS)
async def api_campaigns(request: Request) -> Response:
    """``GET /api/campaigns`` → ``{"campaigns": [{id, name, kind, active, settings, members, …}]}``."""
    async with request.app.state.hub.db() as s:
        campaigns = await store.list_campaigns(s)
    return JSONResponse({"campaigns": [c.as_dict() for c in campaigns]})


@requires(Permission.MANAGE_LEADS)
async def api_campaign_create(request: Request) -> Response:
    """``POST /api/campaigns`` ``{"name", "kind", "settings"?}`` → 201 and the campaign; 409 if taken."""
    try:
        body = await _json_body(request)
        name, kind, settings = body.get("name"), body.get("kind"), body.get("settings")
        if not isinstance(name, str) or not isinstance(kind, str):
            raise BadInput('send {"name": "...", "kind": "sales" | "tmk"}')
        if settings is not None and not isinstance(settings, dict):
            raise BadInput('"settings" must be an object')
        if settings is not None and "contact" in settings:
            try:
                settings = {**settings, "contact": checked_policy(settings["contact"])}
            except PolicyError as exc:
                raise BadInput(
                    _("The contact policy cannot be saved."), problems=policy_problems(exc)
                ) from None
        campaign = await _create(request, name, kind, settings)
    except BadInput as exc:
        return _error(exc)
    return JSONResponse(_campaign_json(campaign), status_code=201)


def _campaign_json(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "active": campaign.active,
        "settings": campaign.settings,
    }


def _id_list(body: dict[str, Any], key: str) -> list[int]:
    value = body.get(key)
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise BadInput(f'"{key}" must be a list of ids (send [] for none)')
    return value


@requires(Permission.MANAGE_LEADS)
async def api_campaign_members(request: Request) -> Response:
    """``PUT /api/campaigns/{id}/members`` replaces the agents and teams → the stored lists."""
    principal: Principal = request.state.principal
    campaign_id = _campaign_id(request)
    try:
        body = await _json_body(request)
        user_ids, team_ids = _id_list(body, "user_ids"), _id_list(body, "team_ids")
        async with request.app.state.hub.db() as s:
            try:
                users, teams = await store.set_members(
                    s, campaign_id, user_ids, team_ids, actor_id=principal.id, ip=client_ip(request)
                )
                await s.commit()
            except store.CampaignError as exc:
                await s.rollback()
                raise _refused(exc) from None
    except BadInput as exc:
        return _error(exc)
    log.info(
        "event=campaign_members_set actor=%s campaign=%d users=%d teams=%d",
        principal.username,
        campaign_id,
        len(users),
        len(teams),
    )
    return JSONResponse({"campaign_id": campaign_id, "user_ids": users, "team_ids": teams})


ROUTES: list[BaseRoute] = [
    Route("/campaigns", campaigns_page, methods=["GET"]),
    Route("/campaigns", campaign_create, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}", campaign_page, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}", campaign_save, methods=["POST"]),
    Route("/api/campaigns", api_campaigns, methods=["GET"]),
    Route("/api/campaigns", api_campaign_create, methods=["POST"]),
    Route("/api/campaigns/{campaign_id:int}/members", api_campaign_members, methods=["PUT"]),
]
