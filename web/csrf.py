"""CSRF protection for forms: a per-session token in a hidden field, checked on every POST."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request

_KEY = "csrf"


def csrf_token(request: Request) -> str:
    token = request.session.get(_KEY)
    if not token:
        token = request.session[_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, submitted: object) -> bool:
    expected = request.session.get(_KEY)
    return bool(expected) and isinstance(submitted, str) and hmac.compare_digest(expected, submitted)
