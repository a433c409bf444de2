"""JSON API for programmatic clients: tokens, agent control, health."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.access import public, requires, sign_in
from hub.agent_state import AgentState
from hub.identity import Principal
from hub.permissions import Permission
from storage import audit
from storage import users as user_store
from storage.models import User

log = logging.getLogger("lineup.api")


def _bad_request(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": "bad_request", "message": message}, status_code=status)


async def _json_body(request: Request) -> dict[str, object] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@public
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "process": request.app.state.hub.process_id})


@public
async def issue_token(request: Request) -> Response:
    """``POST /api/auth/token`` {"username","password"} → {"token","expires_in"}."""
    hub = request.app.state.hub
    body = await _json_body(request)
    if body is None or not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
        return _bad_request('send JSON {"username": "...", "password": "..."}')
    username = str(body["username"])
    principal = await sign_in(request, username, str(body["password"]), via="token")
    if principal is None:
        return JSONResponse({"error": "unauthorized", "message": "wrong username or password"}, 401)
    return JSONResponse({"token": hub.tokens.issue(principal.id), "expires_in": hub.settings.token_ttl_s})


@requires(Permission.CONTROL_AGENTS)
async def set_agent_state(request: Request) -> Response:
    """``POST /api/agents/{id}/state`` {"state":"paused"|"ready","reason"} — a supervisor's order.

    Works from any hub process: the process holding the agent's socket delivers it.
    """
    hub = request.app.state.hub
    principal: Principal = request.state.principal
    agent = await _agent_or_none(request)
    if agent is None:
        return JSONResponse({"error": "not_found", "message": "no such agent"}, 404)
    agent_id = agent.id
    body = await _json_body(request)
    if body is None or body.get("state") not in (AgentState.READY, AgentState.PAUSED):
        return _bad_request('send JSON {"state": "paused" | "ready", "reason": "..."}')
    state = AgentState(str(body["state"]))
    reason = "supervisor" if state is AgentState.PAUSED else ""
    async with hub.db() as s:
        agent = await user_store.by_id(s, agent_id)
        if agent is None or agent.role not in ("sales", "tmk"):
            return JSONResponse({"error": "not_found", "message": f"no agent {agent_id}"}, 404)
        await audit.record(
            s,
            actor_id=principal.id,
            action="agent_state_forced",
            target=f"user:{agent_id}",
            detail={"state": state.value, "reason": reason},
        )
        await s.commit()
    await hub.presence.set_state(agent_id, state, reason)
    delivered = await hub.control_agent(agent_id, {"op": "state_changed"})
    return JSONResponse(
        {"agent_id": agent_id, "state": state.value, "reason": reason, "connected": delivered}
    )


@requires(Permission.CONTROL_AGENTS)
async def log_agent_out(request: Request) -> Response:
    """``POST /api/agents/{id}/logout`` — close the agent's sockets on every process; state → offline."""
    hub = request.app.state.hub
    principal: Principal = request.state.principal
    agent = await _agent_or_none(request)
    if agent is None:
        return JSONResponse({"error": "not_found", "message": "no such agent"}, 404)
    async with hub.db() as s:
        await audit.record(s, actor_id=principal.id, action="agent_logged_out", target=f"user:{agent.id}")
        await s.commit()
    await hub.presence.set_state(agent.id, AgentState.OFFLINE, "supervisor")
    delivered = await hub.control_agent(agent.id, {"op": "logout"})
    return JSONResponse({"agent_id": agent.id, "state": "offline", "connected": delivered})


async def _agent_or_none(request: Request) -> User | None:
    """The sales/TMK user named by the path's ``agent_id``, if there is one."""
    try:
        agent_id = int(request.path_params["agent_id"])
    except ValueError:
        return None
    async with request.app.state.hub.db() as s:
        agent = await user_store.by_id(s, agent_id)
    return agent if agent is not None and agent.role in ("sales", "tmk") else None
