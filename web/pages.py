"""Pages: sign-in, home, the agent workbench and lead import."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.access import SESSION_USER, public, requires, sign_in
from hub.agent_state import PAUSE_REASONS
from hub.identity import Principal
from hub.permissions import Permission
from web.csrf import csrf_ok, csrf_token
from web.fragments import OUTCOMES
from web.i18n import _
from web.nav import nav_for
from web.templating import templates

log = logging.getLogger("lineup.web")


def client_ip(request: Request) -> str:
    """The caller's address for the audit log ("" when the server cannot tell)."""
    return request.client.host if request.client else ""


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    principal: Principal | None = getattr(request.state, "principal", None)
    return templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "nav": nav_for(principal, request.url.path) if principal else [],
            "csrf": csrf_token(request),
            **context,
        },
        status_code=status_code,
    )


def _safe_next(value: str | None) -> str:
    # Only local paths: never redirect a signed-in user to another site.
    return value if value and value.startswith("/") and not value.startswith("//") else "/"


@public
async def login_form(request: Request) -> Response:
    return render(
        request,
        "login.html",
        next=_safe_next(request.query_params.get("next")),
        error="",
        username="",
        demo=request.app.state.hub.settings.demo,
    )


@public
async def login_submit(request: Request) -> Response:
    hub = request.app.state.hub
    form = await request.form()
    username = str(form.get("username", "")).strip()
    next_path = _safe_next(str(form.get("next", "/")))
    if not csrf_ok(request, form.get("csrf")):
        return render(
            request,
            "login.html",
            400,
            next=next_path,
            username=username,
            demo=hub.settings.demo,
            error=_("Your sign-in form expired. Please try again."),
        )
    principal = await sign_in(request, username, str(form.get("password", "")), via="login")
    if principal is None:
        return render(
            request,
            "login.html",
            401,
            next=next_path,
            username=username,
            demo=hub.settings.demo,
            error=_("Wrong username or password."),
        )
    request.session.clear()
    request.session[SESSION_USER] = principal.id
    return RedirectResponse(next_path, status_code=303)


@public
async def logout(request: Request) -> Response:
    form = await request.form()
    if csrf_ok(request, form.get("csrf")):
        request.session.clear()
    return RedirectResponse("/login", status_code=303)


@requires(None)
async def home(request: Request) -> Response:
    principal: Principal = request.state.principal
    links = nav_for(principal)
    if len(links) == 1:
        return RedirectResponse(links[0].href, status_code=303)
    return render(request, "home.html")


@requires(Permission.WORK_LEADS)
async def agent_workbench(request: Request) -> Response:
    return render(
        request,
        "agent.html",
        agent=None,
        lead=None,
        call=None,
        warnings=[],
        pause_reasons=PAUSE_REASONS,
        outcomes=OUTCOMES,
    )
