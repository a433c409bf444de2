"""Test data written through the real storage layer."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.passwords import hash_password
from hub.policy import ContactPolicy
from storage import inbound as inbound_store
from storage import users as user_store
from storage.lead_intake import NewLead, insert_leads
from tests.agent_client import AgentClient
from tests.services import HubServer

PASSWORD = "correct horse battery"
_HASH = hash_password(PASSWORD)


# The tests' default contact policy: calls at any hour, no caps, and the real-world pauses after an
# unanswered, busy or interested call (so a retried lead does not come straight back).
TEST_POLICY = ContactPolicy(
    retry_after={
        "no_answer": timedelta(hours=2),
        "busy": timedelta(minutes=15),
        "interested": timedelta(days=1),
    }
)


async def add_user(
    db: async_sessionmaker[AsyncSession], username: str, role: str = "sales", extension: str | None = None
) -> int:
    async with db() as s:
        user = await user_store.add_user(
            s,
            username=username,
            display_name=username.title(),
            password_hash=_HASH,
            role=role,
            sip_extension=extension,
        )
        return user.id


def cn_mobiles(count: int, seed: int = 1) -> list[str]:
    """Distinct valid Chinese mobile numbers in E.164."""
    rng = random.Random(seed)
    phones: set[str] = set()
    while len(phones) < count:
        phones.add(f"+86{rng.choice(['138', '139', '186', '158'])}{rng.randrange(10**8):08d}")
    return sorted(phones)


async def add_leads(
    db: async_sessionmaker[AsyncSession], count: int, owner_id: int | None = None, seed: int = 1
) -> list[str]:
    """Insert ``count`` leads; returns their phones (E.164)."""
    phones = cn_mobiles(count, seed)
    async with db() as s:
        for start in range(0, count, 1000):
            await insert_leads(
                s,
                [
                    NewLead(name=f"Lead {i}", phone_e164=p, owner_id=owner_id)
                    for i, p in enumerate(phones[start : start + 1000], start)
                ],
                batch_id=None,
            )
    return phones


async def token(base: str, username: str, password: str = PASSWORD) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{base}/api/auth/token", json={"username": username, "password": password}
        )
        response.raise_for_status()
        return response.json()["token"]


def csrf_in(html: str) -> str:
    """The CSRF token of a page's forms."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


async def api_client(base: str, username: str, password: str = PASSWORD) -> httpx.AsyncClient:
    """An HTTP client that calls the JSON API with the user's bearer token."""
    bearer = await token(base, username, password)
    return httpx.AsyncClient(base_url=base, timeout=30, headers={"authorization": f"Bearer {bearer}"})


async def signed_in(base: str, username: str, password: str = PASSWORD) -> httpx.AsyncClient:
    """An HTTP client with a browser-like session, signed in through the login form."""
    http = httpx.AsyncClient(base_url=base, timeout=60, headers={"accept": "text/html"})
    csrf = csrf_in((await http.get("/login")).text)
    response = await http.post("/login", data={"username": username, "password": password, "csrf": csrf})
    assert response.status_code == 303, response.text
    return http


async def add_hotline(
    db: async_sessionmaker[AsyncSession],
    agent_ids: list[int],
    *,
    did: str = "800",
    strategy: str = "sticky",
    ring_timeout_s: int = 15,
) -> None:
    """A number customers call, answered by these agents."""
    async with db() as s:
        await inbound_store.save_inbound_number(
            s,
            did=did,
            name="Hotline",
            strategy=strategy,
            ring_timeout_s=ring_timeout_s,
            agent_ids=agent_ids,
            actor_id=None,
        )
        await s.commit()


async def ready_agent(server: HubServer, username: str) -> AgentClient:
    """An agent connected to ``server``'s ``/ws/agent`` who has said ready (and been answered)."""
    client = await AgentClient.connect(server.ws_base, await token(server.base, username))
    await client.expect("snapshot")
    await client.reply(await client.send("state.set", state="ready"))
    return client
