"""Bring a database to the latest schema (``lineup migrate``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config

from storage.db import create_engine
from storage.partitions import ensure_month_partitions

_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(url: str) -> Config:
    cfg = Config(str(_INI))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Run Alembic to head (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(url), "head")


async def migrate(url: str) -> None:
    """Upgrade to head, then make sure the coming months' partitions exist."""
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await ensure_month_partitions(conn, datetime.now(UTC).date())
    await engine.dispose()
