""" "Why not?": the contact policy's decision for a lead or a number, as a page and as JSON.

Routes (all ``Permission.MANAGE_LEADS``):

- ``GET /why-not?lead=ID`` or ``?phone=…[&campaign_id=…]`` — the form and, when asked, the answer:
  dialable now or not, every reason with the local time it ends, the earliest time;
- ``GET /api/leads/{lead_id}/decision`` and ``GET /api/phones/{phone}/decision[?campaign_id=…]`` —
  the same as JSON. A number's decision is that of a new lead with it (e.g. before a manual dial).
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
from hub.policy import Decision
from hub.policy.explain import main_reason, reason_text
from storage import campaigns as campaign_store
from storage.contact import LeadContact
from web.i18n import _
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


ROUTES: list[BaseRoute] = [
    Route("/why-not", why_not_page, methods=["GET"]),
    Route("/api/leads/{lead_id}/decision", api_lead_decision, methods=["GET"]),
    Route("/api/phones/{phone}/decision", api_phone_decision, methods=["GET"]),
]
