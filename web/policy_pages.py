"""Contact policies: read and set as JSON, and on pages (the decisions are web/why_not_pages.py).

As JSON (``hub.policy.DEFAULT_POLICY_JSON`` shows the shape):

- ``GET|PUT /api/campaigns/{id}/contact-policy`` (``MANAGE_LEADS``): a campaign's own policy, or
  the default it follows; PUT validates (400 with every problem by field) and stores it, audited
  as ``campaign_updated``. A campaign whose calling hours never meet the system-wide ones is refused.
- ``GET|PUT /api/contact-policies/{default|system}`` (``MANAGE_USERS``, administrators): the policy
  of leads of no campaign and new campaigns, and the system-wide limits on top of every campaign;
  audited as ``contact_policy_set``.

And the pages to read and edit them (the same read and write path as the API):

- ``GET /policies`` (``MANAGE_LEADS``) — every policy in one line each: hours, daily caps, pauses;
- ``GET|POST /policies/campaign/{id}`` (``MANAGE_LEADS``) and ``GET|POST /policies/{default|system}``
  (``MANAGE_USERS``) — the edit form; a refused form comes back with each problem at its input,
  a saved one goes back to the list (303) with a notice.

This process applies a saved policy at once; other hub processes within a few seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.permissions import Permission, allows
from hub.policy import (
    DEFAULT_POLICY_JSON,
    ContactPolicy,
    PolicyError,
    parse_policy,
    policy_json,
    windows_meet,
)
from storage import audit
from storage import campaigns as campaign_store
from storage import contact as contact_store
from web.csrf import csrf_ok
from web.i18n import _
from web.json_body import BodyRefused, json_object
from web.pages import client_ip, render
from web.policy_forms import (
    COMMON_ZONES,
    DELAY_OUTCOMES,
    PolicyLine,
    by_slot,
    form_of,
    placed,
    policy_line,
    policy_of,
    read_form,
    weekday_names,
)

log = logging.getLogger("lineup.policies")

MAX_FORM_BYTES = 1 << 20


def checked_policy(raw: Any) -> dict[str, Any]:
    """A submitted policy, validated and normalised; raises PolicyError."""
    if not isinstance(raw, dict):
        raise PolicyError([("policy", "must be a JSON object")])
    try:
        return policy_json(parse_policy(raw))
    except PolicyError:
        raise
    except (ValueError, OverflowError):
        # parse_policy trips over some numbers (a superscript "²" cap, a pause of 10**20 minutes):
        # a refusal, not a server error.
        raise PolicyError([("policy", "has a number out of range or not in plain digits")]) from None


def policy_problems(exc: PolicyError) -> list[dict[str, str]]:
    return [{"field": where, "message": what} for where, what in exc.problems]


# --- the policies: one read path and one write path for the API and the pages ------------------

SCOPES = {"default": contact_store.DEFAULT_POLICY, "system": contact_store.SYSTEM_POLICY}


@dataclass(frozen=True, slots=True)
class PolicyTarget:
    """Which policy is read or written: a campaign's (``campaign_id``), ``default`` or ``system``."""

    scope: str
    campaign_id: int | None = None

    @property
    def slug(self) -> str:
        return f"campaign-{self.campaign_id}" if self.campaign_id is not None else self.scope

    @property
    def page(self) -> str:
        """The edit page's path."""
        return (
            f"/policies/campaign/{self.campaign_id}"
            if self.campaign_id is not None
            else f"/policies/{self.scope}"
        )


class NoSuchCampaign(LookupError):
    pass


async def current_policy(s: AsyncSession, target: PolicyTarget) -> tuple[str, dict[str, Any]]:
    """(source, policy JSON) in force for ``target``; raises NoSuchCampaign.

    A campaign's source is ``campaign`` or ``default`` (it follows the default); the default's and
    the system's are ``stored`` or ``built-in``.
    """
    if target.campaign_id is not None:
        campaign = await campaign_store.get_campaign(s, target.campaign_id)
        if campaign is None:
            raise NoSuchCampaign(target.campaign_id)
        own = (campaign.settings or {}).get("contact")
        if own:
            return "campaign", own
        return "default", await contact_store.setting(s, contact_store.DEFAULT_POLICY) or DEFAULT_POLICY_JSON
    stored = await contact_store.setting(s, SCOPES[target.scope])
    built_in = DEFAULT_POLICY_JSON if target.scope == "default" else policy_json(ContactPolicy())
    return ("stored" if stored else "built-in"), stored or built_in


async def save_policy(
    hub: Any, target: PolicyTarget, raw: Any, *, actor_id: int, ip: str = ""
) -> dict[str, Any]:
    """Validate, store and audit a policy, then have this hub re-read policies; the stored JSON.

    The one write path of the JSON API and the edit form. A campaign's calling hours must meet the
    system-wide ones. Raises PolicyError (nothing stored) or NoSuchCampaign.
    """
    async with hub.db() as s:
        campaign = None
        if target.campaign_id is not None:
            campaign = await campaign_store.get_campaign(s, target.campaign_id)
            if campaign is None:
                raise NoSuchCampaign(target.campaign_id)
        policy = checked_policy(raw)
        if campaign is not None:
            system = await contact_store.setting(s, contact_store.SYSTEM_POLICY)
            if system is not None and not windows_meet(parse_policy(policy), parse_policy(system)):
                raise PolicyError([("windows", "never overlap the system-wide calling hours")])
            try:
                await campaign_store.update_campaign(
                    s,
                    campaign.id,
                    campaign.name,
                    campaign.active,
                    {"contact": policy},
                    actor_id=actor_id,
                    ip=ip,
                )
            except campaign_store.CampaignNotFound:
                raise NoSuchCampaign(target.campaign_id) from None
        else:
            key = SCOPES[target.scope]
            await contact_store.put_setting(s, key, policy, actor_id)
            await audit.record(
                s,
                actor_id=actor_id,
                action="contact_policy_set",
                target=key,
                detail={"policy": policy},
                ip=ip,
            )
        await s.commit()
    hub.contact.forget_policies()
    return policy


# --- the JSON API ------------------------------------------------------------------------------


def _refused(exc: PolicyError) -> JSONResponse:
    return JSONResponse(
        {"error": _("The contact policy cannot be saved."), "problems": policy_problems(exc)}, status_code=400
    )


async def _api_policy(request: Request, target: PolicyTarget) -> Response:
    hub = request.app.state.hub
    try:
        if request.method == "GET":
            async with hub.db() as s:
                source, policy = await current_policy(s, target)
            return JSONResponse({"source": source, "policy": policy})
        raw = await json_object(request)
        actor = request.state.principal.id
        policy = await save_policy(hub, target, raw, actor_id=actor, ip=client_ip(request))
    except NoSuchCampaign:
        message = _("There is no campaign %(id)s.") % {"id": target.campaign_id}
        return JSONResponse({"error": message}, status_code=404)
    except PolicyError as exc:
        return _refused(exc)
    except BodyRefused as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse({"source": "stored" if target.campaign_id is None else "campaign", "policy": policy})


@requires(Permission.MANAGE_LEADS)
async def api_campaign_policy(request: Request) -> Response:
    """``GET``: the campaign's policy (``source``: campaign or default); ``PUT``: store a new one."""
    return await _api_policy(request, PolicyTarget("campaign", request.path_params["campaign_id"]))


@requires(Permission.MANAGE_USERS)
async def api_system_policy(request: Request) -> Response:
    """``GET``/``PUT`` the default policy or the system-wide limits."""
    scope = request.path_params["scope"]
    if scope not in SCOPES:
        return JSONResponse({"error": _("Choose default or system.")}, status_code=404)
    return await _api_policy(request, PolicyTarget(scope))


# --- the pages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One line of the list: whose policy, where it comes from, its summary, and who may edit it."""

    target: PolicyTarget
    name: str  # the campaign's; "" for the default and the system-wide policy
    kind: str  # sales, tmk, default or system
    source: str  # as current_policy says
    line: PolicyLine
    editable: bool


def _may_edit(request: Request, target: PolicyTarget) -> bool:
    need = Permission.MANAGE_LEADS if target.campaign_id is not None else Permission.MANAGE_USERS
    return allows(request.state.principal.role, need)


@requires(Permission.MANAGE_LEADS)
async def policies_page(request: Request) -> Response:
    async with request.app.state.hub.db() as s:
        scoped = {scope: await current_policy(s, PolicyTarget(scope)) for scope in ("system", "default")}
        campaigns = await campaign_store.list_campaigns(s)
    default = scoped["default"][1]
    rows = [
        PolicyRow(target, "", scope, source, policy_line(policy), _may_edit(request, target))
        for scope, (source, policy) in scoped.items()
        for target in [PolicyTarget(scope)]
    ]
    for c in campaigns:
        own, target = c.settings.get("contact"), PolicyTarget("campaign", c.id)
        source = "campaign" if own else "default"
        rows.append(PolicyRow(target, c.name, c.kind, source, policy_line(own or default), True))
    saved = request.query_params.get("saved", "")
    return render(
        request, "policies.html", rows=rows, saved=next((r for r in rows if r.target.slug == saved), None)
    )


async def _edit_page(request: Request, target: PolicyTarget) -> Response:
    """GET shows the policy in force; POST saves the form, or shows it again with its problems."""
    hub = request.app.state.hub
    async with hub.db() as s:
        campaign = None
        if target.campaign_id is not None:
            campaign = await campaign_store.get_campaign(s, target.campaign_id)
            if campaign is None:
                return render(request, "policy_edit.html", 404, target=None)
        source, stored = await current_policy(s, target)
    page = {
        "target": target,
        "name": campaign.name if campaign else "",
        "source": source,
        "zones": COMMON_ZONES,
        "days": weekday_names(),
        "outcomes": DELAY_OUTCOMES,
    }
    if request.method == "GET":
        return render(request, "policy_edit.html", values=form_of(stored), problems=[], errors={}, **page)
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_FORM_BYTES:
        return Response(_("The form is too large."), status_code=413)
    form = await request.form()
    values = read_form(form)
    if not csrf_ok(request, form.get("csrf")):
        expired = _("The form expired. Please reload the page and try again.")
        return render(
            request, "policy_edit.html", 400, values=values, problems=[], errors={}, error=expired, **page
        )
    raw, rows = policy_of(values)
    try:
        await save_policy(hub, target, raw, actor_id=request.state.principal.id, ip=client_ip(request))
    except NoSuchCampaign:
        return render(request, "policy_edit.html", 404, target=None)
    except PolicyError as exc:
        problems = placed(exc.problems, rows)
        return render(
            request,
            "policy_edit.html",
            400,
            values=values,
            problems=problems,
            errors=by_slot(problems),
            **page,
        )
    log.info("event=contact_policy_saved actor=%s target=%s", request.state.principal.username, target.slug)
    return RedirectResponse(f"/policies?saved={target.slug}", status_code=303)


@requires(Permission.MANAGE_LEADS)
async def campaign_policy_page(request: Request) -> Response:
    return await _edit_page(request, PolicyTarget("campaign", request.path_params["campaign_id"]))


@requires(Permission.MANAGE_USERS)
async def scope_policy_page(request: Request) -> Response:
    scope = request.path_params["scope"]
    if scope not in SCOPES:
        return render(request, "policy_edit.html", 404, target=None)
    return await _edit_page(request, PolicyTarget(scope))


ROUTES: list[BaseRoute] = [
    Route("/api/campaigns/{campaign_id:int}/contact-policy", api_campaign_policy, methods=["GET", "PUT"]),
    Route("/api/contact-policies/{scope}", api_system_policy, methods=["GET", "PUT"]),
    Route("/policies", policies_page, methods=["GET"]),
    Route("/policies/campaign/{campaign_id:int}", campaign_policy_page, methods=["GET", "POST"]),
    Route("/policies/{scope}", scope_policy_page, methods=["GET", "POST"]),
]
