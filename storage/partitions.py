"""Monthly range partitions for the big tables (calls, contact attempts)."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PARTITIONED_TABLES = ("calls", "contact_attempts")


def month_starts(first: date, count: int) -> list[date]:
    """``count + 1`` consecutive first-of-month dates starting at ``first``'s month."""
    y, m = first.year, first.month
    out = []
    for _ in range(count + 1):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def partition_ddl(table: str, start: date, end: date) -> str:
    name = f"{table}_y{start.year:04d}m{start.month:02d}"
    return (
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


async def ensure_month_partitions(conn: AsyncConnection, today: date, months_ahead: int = 2) -> None:
    """Create this month's and the next ``months_ahead`` months' partitions if missing.

    Rows outside them land in each table's DEFAULT partition, so nothing is ever refused.
    """
    bounds = month_starts(date(today.year, today.month, 1), months_ahead + 1)
    for table in PARTITIONED_TABLES:
        for start, end in pairwise(bounds):
            await conn.execute(text(partition_ddl(table, start, end)))
