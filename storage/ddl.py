"""Running hand-written DDL scripts from migrations."""

from __future__ import annotations

from typing import Any


def run_script(op: Any, script: str) -> None:
    """Execute a ``;``-separated script one statement at a time (asyncpg prepares each statement)."""
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)
