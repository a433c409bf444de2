"""Inbound numbers (who answers each number customers call) and placing a simulated inbound call.

- ``/inbound-numbers`` — the page: every number with its agents, and a form to add or change one.
- ``GET /api/inbound-numbers`` — every number with its strategy, ring timeout and agents.
- ``PUT /api/inbound-numbers/{did}`` ``{"name","strategy","ring_timeout_s","agents":[usernames]}``
  — create or replace one (supervisors; audited).
- ``POST /api/simulator/calls`` ``{"caller","did"}`` — a simulated customer calls in now (only
  with the simulated phone system; for demos, tests and load).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.intake.number_lists import whole_number
from hub.permissions import Permission
from storage import inbound as inbound_store
from storage import users as user_store
from telephony import GatewayError
from telephony.simulator import SimulatorGateway
from web.csrf import csrf_ok
from web.i18n import _
from web.json_body import BodyRefused, json_object
from web.pages import client_ip, render

DID = re.compile(r"^\+?[0-9]{2,31}$")


class Invalid(ValueError):
    pass


def _settings(did: str, name: object, strategy: object, timeout: object) -> tuple[str, str, int]:
    """A number's settings checked: (name, strategy, ring timeout); raises Invalid with the reason."""
    if not DID.match(did):
        raise Invalid(_("The number is 2 to 31 digits, optionally after a +."))
    if not isinstance(name, str) or len(name) > 100:
        raise Invalid(_("The name is text of at most 100 characters."))
    if strategy not in inbound_store.STRATEGIES:
        raise Invalid(_("Choose how calls are shared: %(s)s.") % {"s": ", ".join(inbound_store.STRATEGIES)})
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 5 <= timeout <= 120:
        raise Invalid(_("A phone rings for 5 to 120 seconds before the call moves on."))
    return name.strip(), str(strategy), timeout


async def _save(request: Request, did: str, settings: tuple[str, str, int], agent_ids: list[int]) -> None:
    hub = request.app.state.hub
    name, strategy, timeout = settings
    async with hub.db() as s:
        await inbound_store.save_inbound_number(
            s,
            did=did,
            name=name,
            strategy=strategy,
            ring_timeout_s=timeout,
            agent_ids=sorted(agent_ids),
            actor_id=request.state.principal.id,
            ip=client_ip(request),
        )
        await s.commit()
    hub.inbound.forget_groups()


def _group_json(group: inbound_store.InboundGroup, usernames: dict[int, str]) -> dict[str, Any]:
    return {
        "did": group.did,
        "name": group.name,
        "strategy": group.strategy,
        "ring_timeout_s": group.ring_timeout_s,
        "agents": [
            {"username": usernames.get(a.agent_id, ""), "extension": a.extension} for a in group.agents
        ],
    }


async def _numbers(request: Request) -> tuple[list[inbound_store.InboundGroup], dict[int, str]]:
    async with request.app.state.hub.db() as s:
        groups = await inbound_store.inbound_numbers(s)
        usernames = await user_store.usernames(s, [a.agent_id for g in groups for a in g.agents])
    return groups, usernames


# --- the page ----------------------------------------------------------------------------------


async def _render(
    request: Request, status: int = 200, *, error: str = "", form: dict[str, Any] | None = None
) -> Response:
    async with request.app.state.hub.db() as s:
        groups = await inbound_store.inbound_numbers(s)
        agents = await user_store.agents(s)
    editing = request.query_params.get("edit", "")
    chosen = next((g for g in groups if g.did == editing), None)
    if form is None:
        form = {
            "did": chosen.did if chosen else "",
            "name": chosen.name if chosen else "",
            "strategy": chosen.strategy if chosen else "sticky",
            "ring_timeout_s": chosen.ring_timeout_s if chosen else 15,
            "agent_ids": {a.agent_id for a in chosen.agents} if chosen else set(),
        }
    names = {a.id: a.display_name for a in agents}
    return render(
        request,
        "inbound_numbers.html",
        status,
        numbers=[(g, [names.get(a.agent_id, "") for a in g.agents]) for g in groups],
        agents=agents,
        form=form,
        error=error,
        saved=request.query_params.get("saved", ""),
    )


@requires(Permission.MANAGE_LEADS)
async def inbound_numbers_page(request: Request) -> Response:
    return await _render(request)


@requires(Permission.MANAGE_LEADS)
async def inbound_numbers_submit(request: Request) -> Response:
    form = await request.form()
    did = str(form.get("did", "")).strip()
    picked = [whole_number(str(v)) for v in form.getlist("agent_id")]
    typed = {
        "did": did,
        "name": str(form.get("name", "")),
        "strategy": str(form.get("strategy", "")),
        "ring_timeout_s": str(form.get("ring_timeout_s", "")),
        "agent_ids": {a for a in picked if a is not None},
    }
    if not csrf_ok(request, form.get("csrf")):
        return await _render(
            request, 400, error=_("The form expired. Please reload the page and try again."), form=typed
        )
    try:
        settings = _settings(did, typed["name"], typed["strategy"], whole_number(typed["ring_timeout_s"]))
        async with request.app.state.hub.db() as s:
            known = {a.id for a in await user_store.agents(s)}
        if not typed["agent_ids"] <= known:
            raise Invalid(_("Choose agents from the list."))
        await _save(request, did, settings, sorted(typed["agent_ids"]))
    except Invalid as exc:
        return await _render(request, 400, error=str(exc), form=typed)
    return RedirectResponse(f"/inbound-numbers?saved={did}", status_code=303)


# --- JSON --------------------------------------------------------------------------------------


@requires(Permission.MANAGE_LEADS)
async def api_inbound_numbers(request: Request) -> Response:
    groups, usernames = await _numbers(request)
    return JSONResponse({"numbers": [_group_json(g, usernames) for g in groups]})


@requires(Permission.MANAGE_LEADS)
async def api_save_inbound_number(request: Request) -> Response:
    did = request.path_params["did"]
    try:
        body = await json_object(request)
        settings = _settings(
            did, body.get("name", ""), body.get("strategy", "sticky"), body.get("ring_timeout_s", 15)
        )
        agents = body.get("agents", [])
        if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents) or len(agents) > 500:
            raise Invalid("agents is a list of usernames")
        async with request.app.state.hub.db() as s:
            found = await user_store.agents_named(s, agents)
        unknown = sorted(set(agents) - set(found))
        if unknown:
            raise Invalid(f"not sales or TMK agents: {', '.join(unknown)}")
        await _save(request, did, settings, list(found.values()))
    except BodyRefused as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except Invalid as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    groups, usernames = await _numbers(request)
    return JSONResponse(next(_group_json(g, usernames) for g in groups if g.did == did))


@requires(Permission.CONTROL_AGENTS)
async def api_simulated_call(request: Request) -> Response:
    hub = request.app.state.hub
    if not isinstance(hub.gateway, SimulatorGateway):
        return JSONResponse({"error": "the phone system is not the simulator"}, status_code=409)
    try:
        body = await json_object(request)
    except BodyRefused as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    caller, did = body.get("caller"), body.get("did", hub.settings.sim_inbound_did)
    if not isinstance(caller, str) or not caller.strip() or len(caller) > 40:
        return JSONResponse({"error": "caller is the calling number"}, status_code=400)
    if not isinstance(did, str) or not DID.match(did):
        return JSONResponse({"error": "did is the number called"}, status_code=400)
    try:
        call_id = hub.gateway.place_inbound(caller.strip(), did)
    except GatewayError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse({"call_id": call_id}, status_code=202)


ROUTES: list[BaseRoute] = [
    Route("/inbound-numbers", inbound_numbers_page, methods=["GET"]),
    Route("/inbound-numbers", inbound_numbers_submit, methods=["POST"]),
    Route("/api/inbound-numbers", api_inbound_numbers, methods=["GET"]),
    Route("/api/inbound-numbers/{did}", api_save_inbound_number, methods=["PUT"]),
    Route("/api/simulator/calls", api_simulated_call, methods=["POST"]),
]
