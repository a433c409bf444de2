"""The ASGI application: routes of hub and web, middleware, and the hub's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from hub import api, gateway_intake, ws
from hub.runtime import Hub
from hub.settings import Settings, get_settings
from web import (
    allocation_pages,
    callback_pages,
    campaign_pages,
    dnc_pages,
    import_pages,
    inbound_pages,
    pages,
    policy_pages,
    quota_pages,
    recycle_pages,
    why_not_pages,
)

log = logging.getLogger("lineup.app")
STATIC_DIR = Path(pages.__file__).with_name("static")


def routes() -> list[BaseRoute]:
    """The whole routing table; every endpoint is either @public or @requires(permission)."""
    return [
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login_submit, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/", pages.home, methods=["GET"]),
        Route("/agent", pages.agent_workbench, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/api/auth/token", api.issue_token, methods=["POST"]),
        Route("/api/agents/{agent_id}/state", api.set_agent_state, methods=["POST"]),
        Route("/api/agents/{agent_id}/logout", api.log_agent_out, methods=["POST"]),
        *import_pages.ROUTES,
        *policy_pages.ROUTES,
        *why_not_pages.ROUTES,
        *callback_pages.ROUTES,
        *quota_pages.ROUTES,
        *inbound_pages.ROUTES,
        *gateway_intake.ROUTES,
        *campaign_pages.ROUTES,
        *allocation_pages.ROUTES,
        *dnc_pages.ROUTES,
        *recycle_pages.ROUTES,
        WebSocketRoute("/ws/agent", ws.agent_socket),
        WebSocketRoute("/ws/agent/html", ws.agent_socket_html),
        WebSocketRoute("/ws/supervisor", ws.supervisor_socket),
        WebSocketRoute("/ws/supervisor/html", ws.supervisor_socket_html),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    if not settings.secret_key:
        raise ValueError("LINEUP_SECRET_KEY must be set (lineup serve makes one for demo mode)")
    hub = Hub(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.close()

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="lineup_session",
                max_age=settings.session_max_age_s,
                same_site="lax",
                https_only=settings.cookie_secure,
            )
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    return app
