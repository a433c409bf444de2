""" "Why not?": the contact policy's decision for a lead or a number, as a page and as JSON.

Routes (all ``Permission.MANAGE_LEADS``):

- ``GET /why-not?lead=ID`` or ``?phone=…[&campaign_id=…]`` — the form and, when asked, the answer:
  dialable now or not, every reason with the local time it ends, the earliest time;
- ``GET /api/leads/{lead_id}/decision`` and ``GET /api/phones/{phone}/decision[?campaign_id=…]`` —
  the same as JSON. A number's decision is that of a new lead with it (e.g. before a manual dial).

And the policies themselves, as JSON (``hub.policy.DEFAULT_POLICY_JSON`` shows the shape):

- ``GET|PUT /api/campaigns/{id}/contact-policy`` (``MANAGE_LEADS``): a campaign's own policy, or
  the default it follows; PUT validates (400 with every problem by field) and stores it, audited
  as ``campaign_updated``. A campaign whose calling hours never meet the system-wide ones is refused.
- ``GET|PUT /api/contact-policies/{default|system}`` (``MANAGE_USERS``, administrators): the policy
  of leads of no campaign and new campaigns, and the system-wide limits on top of every campaign;
  audited as ``contact_policy_set``.

This process applies a saved policy at once; other hub processes within a few seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.intake import mask_phone, normalise_phone
from hub.intake.number_lists import whole_number
from hub.permissions import Permission
from hub.policy import (
    DEFAULT_POLICY_JSON,
    ContactPolicy,
    Decision,
    PolicyError,
    parse_policy,
    policy_json,
    windows_meet,
)
from hub.policy.explain import main_reason, reason_text
from storage import audit
from storage import campaigns as campaign_store
from storage import contact as contact_store
from storage.contact import LeadContact
from web.i18n import _
from web.json_body import BodyRefused, json_object
from web.pages import render


class Unanswerable(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def _answer(request: Request, lead_ref: str, phone_ref: str, campaign_ref: str) -> dict[str, Any]:
    """The decision as a JSON-ready dict; raises Unanswerable for bad or unknown input."""
    hub = request.app.state.hub
    now = datetime.now(UTC)
    if lead_ref:
        lead_id = whole_number(lead_ref, 2**62)
        if lead_id is None:
            raise Unanswerable(_("A lead is named by its number (id)."))
        found = await hub.contact.lead_decision(lead_id, now)
        if found is None:
            raise Unanswerable(_("There is no lead %(id)s.") % {"id": lead_id}, 404)
        lead, decision = found
    else:
        phone = normalise_phone(phone_ref, hub.settings.default_region)
        if phone is None:
            raise Unanswerable(_("Give a lead id or a valid phone number."))
        campaign_id = None
        if campaign_ref:
            campaign_id = whole_number(campaign_ref, 2**31)
            async with hub.db() as s:
                if campaign_id is None or await campaign_store.get_campaign(s, campaign_id) is None:
                    raise Unanswerable(_("There is no campaign %(id)s.") % {"id": campaign_ref}, 404)
        lead, decision = await hub.contact.number_decision(phone, campaign_id, now)
    return _as_json(hub, lead, decision)


def _as_json(hub: Any, lead: LeadContact, decision: Decision) -> dict[str, Any]:
    zone = hub.contact.zone_of(lead)
    return {
        "lead_id": lead.lead_id or None,
        "phone_masked": mask_phone(lead.phone_e164),
        "campaign_id": lead.campaign_id,
        "customer_zone": zone.key,
        "at": decision.at.isoformat(),
        "dialable": decision.dialable,
        "earliest": decision.earliest.isoformat() if decision.earliest else None,
        "main_reason": main_reason(decision, zone),
        "reasons": [
            {
                "code": r.code,
                "until": r.until.isoformat() if r.until else None,
                "message": reason_text(r, zone),
                **({"detail": r.detail} if r.detail else {}),
            }
            for r in decision.reasons
        ],
    }


@requires(Permission.MANAGE_LEADS)
async def why_not_page(request: Request) -> Response:
    q = request.query_params
    lead_ref, phone_ref, campaign_ref = (q.get(k, "").strip() for k in ("lead", "phone", "campaign_id"))
    answer, error, status = None, "", 200
    if lead_ref or phone_ref:
        try:
            answer = await _answer(request, lead_ref, phone_ref, campaign_ref)
        except Unanswerable as exc:
            error, status = exc.message, exc.status
    return render(
        request,
        "why_not.html",
        status_code=status,
        answer=answer,
        error=error,
        lead=lead_ref,
        phone=phone_ref,
        campaign_id=campaign_ref,
    )


@requires(Permission.MANAGE_LEADS)
async def api_lead_decision(request: Request) -> Response:
    return await _api(request, request.path_params["lead_id"], "", "")


@requires(Permission.MANAGE_LEADS)
async def api_phone_decision(request: Request) -> Response:
    return await _api(request, "", request.path_params["phone"], request.query_params.get("campaign_id", ""))


async def _api(request: Request, lead_ref: str, phone_ref: str, campaign_ref: str) -> Response:
    try:
        return JSONResponse(await _answer(request, lead_ref, phone_ref, campaign_ref))
    except Unanswerable as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)


def checked_policy(raw: Any) -> dict[str, Any]:
    """A submitted policy, validated and normalised; raises PolicyError."""
    if not isinstance(raw, dict):
        raise PolicyError([("policy", "must be a JSON object")])
    return policy_json(parse_policy(raw))


def policy_problems(exc: PolicyError) -> list[dict[str, str]]:
    return [{"field": where, "message": what} for where, what in exc.problems]


def _refused(exc: PolicyError) -> JSONResponse:
    return JSONResponse(
        {"error": _("The contact policy cannot be saved."), "problems": policy_problems(exc)}, status_code=400
    )


def _body_refused(exc: BodyRefused) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


@requires(Permission.MANAGE_LEADS)
async def api_campaign_policy(request: Request) -> Response:
    """``GET``: the campaign's policy (``source``: campaign or default); ``PUT``: store a new one."""
    hub = request.app.state.hub
    campaign_id = request.path_params["campaign_id"]
    async with hub.db() as s:
        campaign = await campaign_store.get_campaign(s, campaign_id)
        if campaign is None:
            message = _("There is no campaign %(id)s.") % {"id": campaign_id}
            return JSONResponse({"error": message}, status_code=404)
        if request.method == "GET":
            own = (campaign.settings or {}).get("contact")
            default = await contact_store.setting(s, contact_store.DEFAULT_POLICY) or DEFAULT_POLICY_JSON
            return JSONResponse({"source": "campaign" if own else "default", "policy": own or default})
        try:
            policy = checked_policy(await json_object(request))
            system = await contact_store.setting(s, contact_store.SYSTEM_POLICY)
            if system is not None and not windows_meet(parse_policy(policy), parse_policy(system)):
                raise PolicyError([("windows", "never overlap the system-wide calling hours")])
        except PolicyError as exc:
            return _refused(exc)
        except BodyRefused as exc:
            return _body_refused(exc)
        principal = request.state.principal
        await campaign_store.update_campaign(
            s, campaign.id, campaign.name, campaign.active, {"contact": policy}, actor_id=principal.id
        )
        await s.commit()
    hub.contact.forget_policies()
    return JSONResponse({"source": "campaign", "policy": policy})


@requires(Permission.MANAGE_USERS)
async def api_system_policy(request: Request) -> Response:
    """``GET``/``PUT`` the default policy or the system-wide limits."""
    hub = request.app.state.hub
    key = {"default": contact_store.DEFAULT_POLICY, "system": contact_store.SYSTEM_POLICY}.get(
        request.path_params["scope"]
    )
    if key is None:
        return JSONResponse({"error": _("Choose default or system.")}, status_code=404)
    async with hub.db() as s:
        if request.method == "GET":
            stored = await contact_store.setting(s, key)
            fallback = (
                DEFAULT_POLICY_JSON if key == contact_store.DEFAULT_POLICY else policy_json(ContactPolicy())
            )
            return JSONResponse({"source": "stored" if stored else "built-in", "policy": stored or fallback})
        try:
            policy = checked_policy(await json_object(request))
        except PolicyError as exc:
            return _refused(exc)
        except BodyRefused as exc:
            return _body_refused(exc)
        principal = request.state.principal
        await contact_store.put_setting(s, key, policy, principal.id)
        await audit.record(
            s, actor_id=principal.id, action="contact_policy_set", target=key, detail={"policy": policy}
        )
        await s.commit()
    hub.contact.forget_policies()
    return JSONResponse({"source": "stored", "policy": policy})


ROUTES: list[BaseRoute] = [
    Route("/why-not", why_not_page, methods=["GET"]),
    Route("/api/leads/{lead_id}/decision", api_lead_decision, methods=["GET"]),
    Route("/api/phones/{phone}/decision", api_phone_decision, methods=["GET"]),
    Route("/api/campaigns/{campaign_id:int}/contact-policy", api_campaign_policy, methods=["GET", "PUT"]),
    Route("/api/contact-policies/{scope}", api_system_policy, methods=["GET", "PUT"]),
]
