"""Inbound numbers (who answers each number customers call) and placing a simulated inbound call.

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
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.access import requires
from hub.permissions import Permission
from storage import inbound as inbound_store
from storage import users as user_store
from telephony import GatewayError
from telephony.simulator import SimulatorGateway
from web.json_body import BodyRefused, json_object
from web.pages import client_ip

DID = re.compile(r"^\+?[0-9]{2,31}$")


class Invalid(ValueError):
    pass


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


@requires(Permission.MANAGE_LEADS)
async def api_inbound_numbers(request: Request) -> Response:
    async with request.app.state.hub.db() as s:
        groups = await inbound_store.inbound_numbers(s)
        usernames = await user_store.usernames(s, [a.agent_id for g in groups for a in g.agents])
    return JSONResponse({"numbers": [_group_json(g, usernames) for g in groups]})


@requires(Permission.MANAGE_LEADS)
async def api_save_inbound_number(request: Request) -> Response:
    hub = request.app.state.hub
    did = request.path_params["did"]
    try:
        if not DID.match(did):
            raise Invalid("the number is 2 to 31 digits, optionally after a +")
        body = await json_object(request)
        name = body.get("name", "")
        strategy = body.get("strategy", "sticky")
        timeout = body.get("ring_timeout_s", 15)
        agents = body.get("agents", [])
        if not isinstance(name, str) or len(name) > 100:
            raise Invalid("name is text of at most 100 characters")
        if strategy not in inbound_store.STRATEGIES:
            raise Invalid(f"strategy is one of {', '.join(inbound_store.STRATEGIES)}")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 5 <= timeout <= 120:
            raise Invalid("ring_timeout_s is a whole number of seconds from 5 to 120")
        if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents) or len(agents) > 500:
            raise Invalid("agents is a list of usernames")
        async with hub.db() as s:
            found = await user_store.agents_named(s, agents)
            unknown = sorted(set(agents) - set(found))
            if unknown:
                raise Invalid(f"not sales or TMK agents: {', '.join(unknown)}")
            await inbound_store.save_inbound_number(
                s,
                did=did,
                name=name,
                strategy=strategy,
                ring_timeout_s=timeout,
                agent_ids=sorted(found.values()),
                actor_id=request.state.principal.id,
                ip=client_ip(request),
            )
            await s.commit()
            group = await inbound_store.inbound_group(s, did)
            usernames = {v: k for k, v in found.items()}
    except BodyRefused as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except Invalid as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    hub.inbound.forget_groups()
    assert group is not None
    return JSONResponse(_group_json(group, usernames))


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
    Route("/api/inbound-numbers", api_inbound_numbers, methods=["GET"]),
    Route("/api/inbound-numbers/{did}", api_save_inbound_number, methods=["PUT"]),
    Route("/api/simulator/calls", api_simulated_call, methods=["POST"]),
]
