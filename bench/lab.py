"""A throwaway Lineup for benchmarks: services, a fresh seeded database, one hub process.

Uses ``LINEUP_DATABASE_URL`` / ``LINEUP_REDIS_URL`` when set, else the bundled servers in a temporary
directory. Everything it creates (database, Redis keys, hub process, files) is removed on the way out,
also after a failure or Ctrl-C.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import insert

from hub import embedded
from hub.passwords import hash_password
from hub.policy import ContactPolicy, policy_json
from storage import contact as contact_store
from storage import quotas as quota_store
from storage.db import create_engine, session_factory
from storage.lead_intake import NewLead, insert_leads
from storage.migrate import migrate
from storage.models import User
from tests.services import HubServer, create_database, drop_database

log = logging.getLogger("bench.lab")

PASSWORD = "bench-password-not-secret"
LEAD_CHUNK = 1000
# Production cadences rather than the quick ones HubServer uses for tests.
HUB_ENV = {"LINEUP_HEARTBEAT_S": "15", "LINEUP_IDLE_RESCAN_S": "10"}


@dataclass(frozen=True, slots=True)
class Services:
    admin_database_url: str
    redis_url: str
    postgres: str  # "configured" or "bundled"
    redis: str


@dataclass(frozen=True, slots=True)
class Lab:
    services: Services
    database_url: str
    redis_prefix: str
    hub: HubServer
    usernames: list[str]


def resolve_services(workdir: Path) -> Services:
    """The configured Postgres and Redis, or the bundled ones started under ``workdir``."""
    database_url = os.environ.get("LINEUP_DATABASE_URL", "")
    redis_url = os.environ.get("LINEUP_REDIS_URL", "")
    return Services(
        admin_database_url=database_url or embedded.start_postgres(workdir),
        redis_url=redis_url or embedded.start_redis(workdir),
        postgres="configured" if database_url else "bundled",
        redis="configured" if redis_url else "bundled",
    )


def usernames(count: int) -> list[str]:
    return [f"bench{i:05d}" for i in range(count)]


def pool_leads(count: int) -> list[NewLead]:
    """Distinct Chinese mobile numbers in the shared pool (no owner)."""
    return [NewLead(name=f"Bench lead {i}", phone_e164=f"+86138{i:08d}") for i in range(count)]


async def seed(database_url: str, names: list[str], leads: int) -> None:
    """Sales agents sharing one password hash (argon2 is slow), then the lead pool in chunks.

    The pool's policy lets every lead be called at any hour with no caps, and agents have no
    quotas: the bench measures dispatch, and must not depend on the time of day it runs at.
    """
    password_hash = hash_password(PASSWORD)
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as s:
            rows = [
                {"username": n, "display_name": n.title(), "password_hash": password_hash, "role": "sales"}
                for n in names
            ]
            await s.execute(insert(User), rows)
            await contact_store.put_setting(
                s, contact_store.DEFAULT_POLICY, policy_json(ContactPolicy()), actor_id=None
            )
            await contact_store.put_setting(s, quota_store.QUOTAS, {}, actor_id=None)  # no caps
            await s.commit()
            new_leads = pool_leads(leads)
            for start in range(0, leads, LEAD_CHUNK):
                await insert_leads(s, new_leads[start : start + LEAD_CHUNK], batch_id=None)
    finally:
        await engine.dispose()


async def forget_redis_keys(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def open_lab(
    agents: int, leads: int, keep_log: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[Lab]:
    """A fresh database with ``agents`` sales users and ``leads`` pool leads, served by one hub.

    ``keep_log``: where to copy the hub's log once it has stopped (it lives in a temporary directory);
    ``env``: more settings for the hub process (e.g. its phone system).
    """
    workdir = Path(tempfile.mkdtemp(prefix="lineup-bench-"))
    # Registered first so it runs last: after the bundled servers' own atexit stops.
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    services = resolve_services(workdir)
    name = f"bench_{secrets.token_hex(4)}"
    prefix = f"lineup-bench-{secrets.token_hex(4)}:"
    hub = HubServer("", services.redis_url, prefix, env_overrides={**HUB_ENV, **(env or {})})
    try:
        database_url = await create_database(services.admin_database_url, name)
        log.info("event=database_created name=%s postgres=%s", name, services.postgres)
        await migrate(database_url)
        names = usernames(agents)
        await seed(database_url, names, leads)
        log.info("event=seeded agents=%s leads=%s", agents, leads)
        hub.database_url = database_url
        # Blocking on purpose: a Ctrl-C lands after start() returns, so the finally clause sees the
        # process and stops it.
        hub.start(workdir)
        log.info(
            "event=hub_started pid=%s port=%s log=%s",
            hub.process.pid if hub.process else None,
            hub.port,
            hub.log_path,
        )
        yield Lab(services, database_url, prefix, hub, names)
    except Exception:
        if hub.log_path and hub.log_path.exists():
            log.error("event=hub_log_tail\n%s", hub.log_tail())
        raise
    finally:
        hub.stop()
        if keep_log and hub.log_path and hub.log_path.exists():
            shutil.copyfile(hub.log_path, keep_log)
        await drop_database(services.admin_database_url, name)
        await forget_redis_keys(services.redis_url, prefix)
        log.info("event=cleaned_up database=%s redis_prefix=%s", name, prefix)
