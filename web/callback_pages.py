"""Booked callbacks for supervisors: what is coming up, and moving one to another agent or anyone.

Routes (all ``Permission.MANAGE_LEADS``):

- ``GET /callbacks`` — open callbacks, soonest first, each with who it is promised to and a form to
  move it; ``POST /callbacks/{lead_id}`` (form, CSRF) moves one.
- ``GET /api/callbacks`` and ``PUT /api/callbacks/{lead_id}`` with ``{"agent_id": id | null}``.

An agent may take a callback only if they work leads of its kind (TMK for a TMK campaign's lead,
sales otherwise). Moves are audited (``callback_reassigned``); a moved callback that is already due
is offered at once.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.intake import mask_phone
from hub.intake.number_lists import whole_number
from hub.permissions import Permission
from storage import callbacks as callback_store
from storage import campaigns as campaign_store
from storage import users as user_store
from storage.models import Lead
from web.csrf import csrf_ok
from web.i18n import _
from web.json_body import BodyRefused, json_object
from web.pages import client_ip, render


class Refused(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def _move(request: Request, lead_id: int, agent_ref: object) -> None:
    """Promise the callback to the agent (None/"" = anyone); raises Refused."""
    hub = request.app.state.hub
    agent_id = None if agent_ref in (None, "", "anyone") else whole_number(agent_ref, 2**31)
    if agent_ref not in (None, "", "anyone") and agent_id is None:
        raise Refused(_("Choose an agent, or anyone."))
    async with hub.db() as s:
        lead = await s.get(Lead, lead_id)
        if lead is None:
            raise Refused(_("There is no lead %(id)s.") % {"id": lead_id}, 404)
        if agent_id is not None:
            agent = await user_store.by_id(s, agent_id)
            campaign = await campaign_store.get_campaign(s, lead.campaign_id) if lead.campaign_id else None
            kind = campaign.kind if campaign else "sales"
            if agent is None or not agent.active or agent.role != kind:
                raise Refused(
                    _("That agent cannot take this callback: it needs an active %(kind)s agent.")
                    % {"kind": kind}
                )
        principal = request.state.principal
        ip = client_ip(request)
        if not await callback_store.reassign(s, lead_id, agent_id, actor_id=principal.id, ip=ip):
            raise Refused(_("Lead %(id)s has no open callback.") % {"id": lead_id}, 409)
        await s.commit()
    await hub.leads_available()  # a due callback goes to its new agent now


def _as_json(callback: callback_store.BookedCallback) -> dict[str, Any]:
    return {
        "lead_id": callback.lead_id,
        "name": callback.name,
        "phone_masked": mask_phone(callback.phone_e164),
        "due_at": callback.due_at.isoformat(),
        "agent_id": callback.agent_id,
        "being_worked": callback.held_by is not None,
    }


async def _page(request: Request, status: int = 200, error: str = "") -> Response:
    hub = request.app.state.hub
    async with hub.db() as s:
        booked = await callback_store.booked(s)
        agents = await user_store.agents(s)
    return render(
        request,
        "callbacks.html",
        status_code=status,
        callbacks=[_as_json(c) | {"agent_name": c.agent_name} for c in booked],
        agents=agents,
        error=error,
        moved=request.query_params.get("moved", ""),
    )


@requires(Permission.MANAGE_LEADS)
async def callbacks_page(request: Request) -> Response:
    return await _page(request)


@requires(Permission.MANAGE_LEADS)
async def callback_move(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form.get("csrf")):
        return await _page(request, 400, _("The form expired. Please reload the page and try again."))
    lead_id = request.path_params["lead_id"]
    try:
        await _move(request, lead_id, form.get("agent_id"))
    except Refused as exc:
        return await _page(request, exc.status, exc.message)
    return RedirectResponse(f"/callbacks?moved={lead_id}", status_code=303)


@requires(Permission.MANAGE_LEADS)
async def api_callbacks(request: Request) -> Response:
    async with request.app.state.hub.db() as s:
        return JSONResponse({"callbacks": [_as_json(c) for c in await callback_store.booked(s)]})


@requires(Permission.MANAGE_LEADS)
async def api_callback_move(request: Request) -> Response:
    try:
        body = await json_object(request)
    except BodyRefused as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if "agent_id" not in body:
        return JSONResponse({"error": 'send {"agent_id": id or null}'}, status_code=400)
    try:
        await _move(request, request.path_params["lead_id"], body["agent_id"])
    except Refused as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse({"lead_id": request.path_params["lead_id"], "agent_id": body["agent_id"]})


ROUTES: list[BaseRoute] = [
    Route("/callbacks", callbacks_page, methods=["GET"]),
    Route("/callbacks/{lead_id:int}", callback_move, methods=["POST"]),
    Route("/api/callbacks", api_callbacks, methods=["GET"]),
    Route("/api/callbacks/{lead_id:int}", api_callback_move, methods=["PUT"]),
]
