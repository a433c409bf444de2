"""Engine and session factory for Postgres through asyncpg."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def async_url(url: str) -> str:
    """``postgresql://…`` → ``postgresql+asyncpg://…`` (other drivers are replaced too)."""
    u = make_url(url)
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The same database for tools that want a plain ``postgresql://`` URL (psql, libpq)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An async engine with a bounded pool.

    No ``pool_pre_ping``: it costs three round trips per checkout on the hot path. Connections are
    recycled instead, and a connection broken by a database restart fails one command, which the
    hub reports to the agent as a retryable error.
    """
    return create_async_engine(async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
