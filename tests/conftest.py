"""Fixtures: real Postgres and Redis (configured or bundled), databases per test, hub processes."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub import embedded
from hub.policy import policy_json
from storage import contact as contact_store
from storage import quotas as quota_store
from storage.db import create_engine, session_factory
from storage.migrate import migrate
from tests.browser import launch_browser
from tests.seed import TEST_POLICY
from tests.services import HubServer, create_database, drop_database

RUN_ID = secrets.token_hex(4)


@pytest.fixture(scope="session")
def service_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def admin_database_url(service_dir: Path) -> str:
    """A Postgres superuser URL: LINEUP_DATABASE_URL (CI) or the bundled server."""
    return os.environ.get("LINEUP_DATABASE_URL") or embedded.start_postgres(service_dir)


@pytest.fixture(scope="session")
def redis_url(service_dir: Path) -> str:
    return os.environ.get("LINEUP_REDIS_URL") or embedded.start_redis(service_dir)


@pytest.fixture(scope="session")
async def template_database(admin_database_url: str) -> AsyncIterator[str]:
    """A migrated database that every test database is copied from (fast: CREATE … TEMPLATE)."""
    name = f"lineup_test_{RUN_ID}_template"
    url = await create_database(admin_database_url, name)
    await migrate(url)
    # Tests run at any hour: leads of no campaign may be called at any time, with no caps and
    # the real-world pauses after an unanswered, busy or interested call (so a retried lead does
    # not come straight back), and agents have no quotas (the pace warning would depend on the
    # hour). Tests of the contact policy and of quotas set their own.
    engine = create_engine(url, pool_size=1)
    async with session_factory(engine)() as s:
        await contact_store.put_setting(
            s, contact_store.DEFAULT_POLICY, policy_json(TEST_POLICY), actor_id=None
        )
        await contact_store.put_setting(s, quota_store.QUOTAS, {}, actor_id=None)
        await s.commit()
    await engine.dispose()
    yield name
    await drop_database(admin_database_url, name)


@pytest.fixture
async def database_url(admin_database_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"lineup_test_{RUN_ID}_{secrets.token_hex(4)}"
    url = await create_database(admin_database_url, name, template=template_database)
    yield url
    await drop_database(admin_database_url, name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url, pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def redis_prefix() -> str:
    return f"lineup-test-{RUN_ID}-{secrets.token_hex(3)}:"


@pytest.fixture
async def redis(redis_url: str, redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def start_hub(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, redis: Redis
) -> Iterator[Callable[..., HubServer]]:
    """Start ``lineup serve`` processes on this test's database and Redis prefix."""
    servers: list[HubServer] = []

    def start(**env: str) -> HubServer:
        server = HubServer(database_url, redis_url, redis_prefix, env_overrides=env)
        if servers:
            server.secret_key = servers[0].secret_key  # processes behind one balancer share the key
        servers.append(server.start(tmp_path))
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the whole run (each test opens its own context)."""
    async for launched in launch_browser():
        yield launched


@pytest.fixture
def hub_server(start_hub: Callable[..., HubServer]) -> HubServer:
    return start_hub()
