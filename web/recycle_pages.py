"""Recycle bin: soft-deleted leads, restore, purge, delete all."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
