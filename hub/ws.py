"""Websocket endpoints: ``/ws/agent`` (JSON protocol) and ``/ws/agent/html`` (htmx fragments).

Both run the same session logic in ``AgentDesk``; only the rendering of events differs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.access import resolve_principal
from hub.connection import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, AgentConnection, Renderer
from hub.identity import Principal
from hub.permissions import Permission, allows
from hub.protocol import ProtocolError, error, parse_command
from web.fragments import renderer_for

log = logging.getLogger("lineup.ws")


def render_json(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


async def _serve(websocket: WebSocket, renderer: Callable[[Principal], Renderer]) -> None:
    hub = websocket.app.state.hub
    principal, why = await resolve_principal(websocket)
    # Accept before refusing: a close before the handshake would reach the client as a bare
    # HTTP 403, and the protocol promises close codes 4401 / 4403 with a reason.
    await websocket.accept()
    if principal is None:
        await websocket.close(CLOSE_UNAUTHORIZED, reason=why)
        return
    if not allows(principal.role, Permission.WORK_LEADS):
        await websocket.close(CLOSE_FORBIDDEN, reason="your role does not work leads")
        return
    conn = AgentConnection(websocket, principal, renderer(principal), hub.settings.ws_send_queue)
    conn.start()
    log.info("event=agent_connected agent=%s process=%s", principal.id, hub.process_id)
    try:
        await hub.agents.connect(conn)
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
            await hub.agents.handle(conn, command)
    except WebSocketDisconnect:
        pass
    finally:
        try:
            await hub.agents.disconnect(conn)
        finally:
            await conn.finish()
        log.info("event=agent_disconnected agent=%s code=%s", principal.id, conn.close_code)


async def agent_socket(websocket: WebSocket) -> None:
    await _serve(websocket, lambda _principal: render_json)


async def agent_socket_html(websocket: WebSocket) -> None:
    await _serve(websocket, lambda principal: renderer_for(principal.role))
