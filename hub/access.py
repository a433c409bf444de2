"""Resolve the caller of a request or websocket, and guard every route with a permission."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from hub.identity import Principal, TokenError
from hub.passwords import check_password
from hub.permissions import Permission, allows
from storage import audit
from storage import users as user_store

log = logging.getLogger("lineup.access")

SESSION_USER = "uid"

Endpoint = Callable[[Request], Awaitable[Response]]


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return conn.query_params.get("token")


async def resolve_principal(conn: HTTPConnection) -> tuple[Principal | None, str]:
    """The active user behind a bearer token or session cookie; else (None, why)."""
    hub = conn.app.state.hub
    token = bearer_token(conn)
    user_id: int | None = None
    if token:
        try:
            user_id = hub.tokens.user_id(token)
        except TokenError as exc:
            return None, f"token {exc.reason}"
    elif "session" in conn.scope:
        user_id = conn.session.get(SESSION_USER)
    if user_id is None:
        return None, "not signed in"
    async with hub.db() as s:
        user = await user_store.by_id(s, user_id)
    if user is None or not user.active:
        return None, "account disabled"
    return Principal.of(user), ""


async def sign_in(conn: HTTPConnection, username: str, password: str, *, via: str) -> Principal | None:
    """Check a username and password (audited either way); the active user, or None."""
    hub = conn.app.state.hub
    async with hub.db() as s:
        user = await user_store.by_username(s, username)
        ok = await check_password(user.password_hash if user else None, password)
        ok = ok and user is not None and user.active
        await audit.record(
            s,
            actor_id=user.id if user else None,
            action=via if ok else "login_failed",
            target=username[:200],
            ip=conn.client.host if conn.client else "",
        )
        await s.commit()
    return Principal.of(user) if ok and user is not None else None


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "")


def requires(permission: Permission | None) -> Callable[[Endpoint], Endpoint]:
    """Guard an endpoint: signed in, and (unless None) holding ``permission``.

    The guarded endpoint gets ``request.state.principal``. Pages redirect to the login form;
    APIs answer 401/403 JSON.
    """

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            principal, why = await resolve_principal(request)
            if principal is None:
                if _is_api(request):
                    return JSONResponse({"error": "unauthorized", "message": why}, status_code=401)
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            if permission is not None and not allows(principal.role, permission):
                log.info("event=forbidden user=%s path=%s", principal.username, request.url.path)
                if _is_api(request):
                    return JSONResponse(
                        {"error": "forbidden", "message": f"your role may not {permission.value}"}, 403
                    )
                return Response("Forbidden: your role may not open this page.", status_code=403)
            request.state.principal = principal
            return await endpoint(request)

        guarded.permission = permission  # type: ignore[attr-defined]
        return guarded

    return wrap


def public(endpoint: Any) -> Any:
    """Mark an endpoint as open to anyone (login, health, static)."""
    endpoint.public = True
    return endpoint
