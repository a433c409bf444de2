"""Websocket endpoints: ``/ws/agent`` (JSON protocol) and ``/ws/agent/html`` (htmx fragments);
``/ws/supervisor`` and ``/ws/supervisor/html``, the supervisors' live feed.

Each pair runs the same session logic (``AgentDesk``, ``SupervisorDesk``); only the rendering of
events differs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.access import resolve_principal
from hub.connection import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, AgentConnection, Renderer
from hub.identity import Principal
from hub.permissions import Permission, allows
from hub.protocol import Command, ProtocolError, error, parse_command
from web.fragments import render_supervisor_event, renderer_for

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("lineup.ws")


def render_json(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


class Desk(Protocol):
    """The session logic behind a socket."""

    async def connect(self, conn: AgentConnection) -> None: ...

    async def disconnect(self, conn: AgentConnection) -> None: ...

    async def handle(self, conn: AgentConnection, command: Command) -> None: ...


async def _serve(
    websocket: WebSocket,
    renderer: Callable[[Principal], Renderer],
    desk: Callable[[Hub], Desk],
    permission: Permission,
    refusal: str,
) -> None:
    hub = websocket.app.state.hub
    principal, why = await resolve_principal(websocket)
    # Accept before refusing: a close before the handshake would reach the client as a bare
    # HTTP 403, and the protocol promises close codes 4401 / 4403 with a reason.
    await websocket.accept()
    if principal is None:
        await websocket.close(CLOSE_UNAUTHORIZED, reason=why)
        return
    if not allows(principal.role, permission):
        await websocket.close(CLOSE_FORBIDDEN, reason=refusal)
        return
    conn = AgentConnection(websocket, principal, renderer(principal), hub.settings.ws_send_queue)
    conn.start()
    path = websocket.url.path
    log.info("event=socket_connected user=%s path=%s process=%s", principal.id, path, hub.process_id)
    sessions = desk(hub)
    try:
        await sessions.connect(conn)
        while not conn.closed.is_set():
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text") if message.get("text") is not None else message.get("bytes")
            try:
                command = parse_command(raw or b"")
            except ProtocolError as exc:
                conn.push(error(exc.code, exc.message, exc.command_id))
                continue
            await sessions.handle(conn, command)
    except WebSocketDisconnect:
        pass
    finally:
        try:
            await sessions.disconnect(conn)
        finally:
            await conn.finish()
        log.info("event=socket_disconnected user=%s code=%s", principal.id, conn.close_code)


def _agents(hub: Hub) -> Desk:
    return hub.agents


def _supervisors(hub: Hub) -> Desk:
    return hub.supervisors


_AGENT_REFUSAL = "your role does not work leads"
_SUPERVISOR_REFUSAL = "your role does not supervise agents"


async def agent_socket(websocket: WebSocket) -> None:
    await _serve(websocket, lambda _principal: render_json, _agents, Permission.WORK_LEADS, _AGENT_REFUSAL)


async def agent_socket_html(websocket: WebSocket) -> None:
    await _serve(websocket, lambda p: renderer_for(p.role), _agents, Permission.WORK_LEADS, _AGENT_REFUSAL)


async def supervisor_socket(websocket: WebSocket) -> None:
    await _serve(
        websocket, lambda _p: render_json, _supervisors, Permission.CONTROL_AGENTS, _SUPERVISOR_REFUSAL
    )


async def supervisor_socket_html(websocket: WebSocket) -> None:
    await _serve(
        websocket,
        lambda _p: render_supervisor_event,
        _supervisors,
        Permission.CONTROL_AGENTS,
        _SUPERVISOR_REFUSAL,
    )
