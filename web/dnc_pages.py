"""Do-not-call lists: system-wide and per campaign."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
