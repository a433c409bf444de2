"""Callbacks: due ones reach the agent who promised them within a second, then pass to anyone."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.agent_client import AgentClient
from tests.seed import add_leads, add_user, token


async def _ready_agent(server, username: str) -> AgentClient:
    client = await AgentClient.connect(server.ws_base, await token(server.base, username))
    await client.expect("snapshot")
    await client.send("state.set", state="ready")
    return client


async def test_a_due_callback_reaches_its_agent_within_a_second_then_passes_to_anyone(start_hub, db):
    server = start_hub(LINEUP_CALLBACK_GRACE_S="3")
    await add_user(db, "ann")
    await add_user(db, "bob")
    await add_leads(db, 1)
    ann = await _ready_agent(server, "ann")
    lead = (await ann.expect("lead.assigned"))["lead"]
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    booked = await ann.send(
        "lead.dispose", lead_id=lead["id"], outcome="callback", callback_at=due.isoformat(), note="after 5"
    )
    await ann.reply(booked)
    await ann.expect("lead.none")

    pushed = await ann.expect("callback.due", timeout=10)
    late = time.time() - due.timestamp()
    assert pushed["lead"]["id"] == lead["id"] and pushed["lead"]["callback_at"] == due.isoformat()
    assert late <= 1.0, f"callback.due arrived {late:.2f} s after its time"
    again = await ann.expect("lead.assigned")
    assert again["lead"]["id"] == lead["id"], "the due callback comes before anything else"

    # Ann promises another callback and goes on a break: it stays hers until the grace is over.
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    await ann.reply(
        await ann.send("lead.dispose", lead_id=lead["id"], outcome="callback", callback_at=soon.isoformat())
    )
    await ann.send("state.set", state="paused", reason="break")
    bob = await _ready_agent(server, "bob")
    await bob.expect("lead.none")
    taken = await bob.expect("lead.assigned", timeout=15)
    waited = time.time() - soon.timestamp()
    assert taken["lead"]["id"] == lead["id"]
    assert waited >= 3.0, f"Bob got Ann's callback {waited:.2f} s after its time, within her grace"
    async with db() as s:
        owner = (await s.execute(text("SELECT callback_agent_id FROM leads"))).scalar()
    assert owner is None
    await ann.close()
    await bob.close()
