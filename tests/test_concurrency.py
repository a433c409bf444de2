"""50 agents working one pool of 1,000 leads at once: every lead is disposed exactly once."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.passwords import hash_password
from storage import users as user_store
from tests.agent_client import AgentClient
from tests.seed import PASSWORD, add_leads, token

AGENTS = 50
LEADS = 1000
OUTCOMES = ["not_interested", "converted", "invalid_number", "dnc", "no_answer", "busy", "interested"]


async def add_agents(db: async_sessionmaker[AsyncSession], count: int) -> None:
    """Sales agents ``crowd0`` … ``crowd{count-1}`` (one password hash for all)."""
    password_hash = hash_password(PASSWORD)
    async with db() as s:
        for i in range(count):
            await user_store.add_user(
                s, username=f"crowd{i}", display_name=f"Crowd {i}", password_hash=password_hash, role="sales"
            )


async def _work(client: AgentClient, received: list[int], rng: random.Random) -> None:
    """Go ready; dispose of every lead pushed until the hub says nothing is left."""
    await client.send("state.set", state="ready")
    while True:
        frame = await client.recv(timeout=30)
        if frame["type"] == "lead.none":
            return
        if frame["type"] == "lead.assigned":
            lead_id = frame["lead"]["id"]
            received.append(lead_id)
            await client.send("lead.dispose", lead_id=lead_id, outcome=rng.choice(OUTCOMES))
        elif frame["type"] == "error":
            raise AssertionError(f"unexpected error frame {frame}")


async def test_fifty_agents_thousand_leads_each_disposed_exactly_once(hub_server, db):
    await add_agents(db, AGENTS)
    await add_leads(db, LEADS)  # all in the shared pool
    tokens = await asyncio.gather(*(token(hub_server.base, f"crowd{i}") for i in range(AGENTS)))
    clients = await asyncio.gather(*(AgentClient.connect(hub_server.ws_base, t) for t in tokens))
    for client in clients:
        await client.expect("snapshot")
    received: list[list[int]] = [[] for _ in clients]
    await asyncio.wait_for(
        asyncio.gather(
            *(_work(c, r, random.Random(i)) for i, (c, r) in enumerate(zip(clients, received, strict=True)))
        ),
        timeout=120,
    )
    await asyncio.gather(*(c.close() for c in clients))

    pushed = Counter(lead for per_agent in received for lead in per_agent)
    assert len(pushed) == LEADS, "every lead reached some agent"
    assert max(pushed.values()) == 1, "no lead was ever pushed to two agents (or twice)"
    assert sum(1 for r in received if r) > AGENTS // 2, "the work was shared among the agents"
    async with db() as s:
        per_lead = (
            await s.execute(text("SELECT lead_id, count(*) FROM contact_attempts GROUP BY lead_id"))
        ).all()
        held = (await s.execute(text("SELECT count(*) FROM leads WHERE held_by IS NOT NULL"))).scalar()
    assert len(per_lead) == LEADS and all(n == 1 for _, n in per_lead)
    assert held == 0
