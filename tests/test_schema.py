"""The migrations and the models describe the same schema; big tables are partitioned by month."""

from __future__ import annotations

from datetime import date

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from storage.db import create_engine
from storage.models import Base
from storage.partitions import ensure_month_partitions, month_starts


def test_month_starts_cross_the_year():
    assert month_starts(date(2026, 11, 17), 3) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2027, 1, 1),
        date(2027, 2, 1),
    ]


async def test_models_match_migrations(database_url):
    engine = create_engine(database_url, pool_size=1)

    def only_modelled_tables(name, type_, parent_names):
        # Monthly partitions are made at run time and have no model of their own.
        return type_ != "table" or name in Base.metadata.tables

    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"include_name": only_modelled_tables}), Base.metadata
            )
        )
    await engine.dispose()
    assert diff == []


async def test_calls_and_contacts_are_partitioned_and_rows_land_in_their_month(database_url):
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        await ensure_month_partitions(conn, date(2030, 5, 1), months_ahead=0)
        await conn.execute(
            text(
                "INSERT INTO contact_attempts (created_at, lead_id, agent_id, outcome) VALUES"
                " ('2030-05-20T10:00:00Z', 1, 1, 'busy'), ('1999-01-01T00:00:00Z', 1, 1, 'busy')"
            )
        )
        placed = dict(
            (
                await conn.execute(
                    text("SELECT tableoid::regclass::text, count(*) FROM contact_attempts GROUP BY 1")
                )
            ).all()
        )
        kinds = dict(
            (
                await conn.execute(
                    text(
                        "SELECT relname, relkind::text FROM pg_class WHERE relname IN ('calls', 'contact_attempts')"
                    )
                )
            ).all()
        )
    await engine.dispose()
    assert kinds == {"calls": "p", "contact_attempts": "p"}
    assert placed == {"contact_attempts_y2030m05": 1, "contact_attempts_default": 1}
