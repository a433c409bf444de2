"""Allocation: share unowned leads among agents (preview, then commit)."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
