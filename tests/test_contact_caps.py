"""The contact policy in dispatch: caps per number hold exactly with many agents at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from hub.policy import Caps, ContactPolicy, local, policy_json, zone_named
from storage import contact as contact_store
from storage.lead_intake import NewLead, insert_leads
from tests.agent_client import AgentClient
from tests.seed import add_leads, add_user, api_client, cn_mobiles, token
from tests.test_concurrency import add_agents

SHANGHAI = zone_named("Asia/Shanghai")
AGENTS = 100
PHONES = 40
LEADS_PER_PHONE = 5


async def _work(client: AgentClient, received: list[int], told: list[str]) -> None:
    """Dispose of every lead pushed; when told nothing is dialable, ask again while leads are due."""
    await client.send("state.set", state="ready")
    while True:
        frame = await client.recv(timeout=30)
        if frame["type"] == "lead.assigned":
            received.append(frame["lead"]["id"])
            await client.send("lead.dispose", lead_id=frame["lead"]["id"], outcome="no_answer")
        elif frame["type"] == "lead.none":
            told.append(frame["reason"])
            due = frame["next_due_at"]
            if due is None or datetime.fromisoformat(due) > datetime.now(UTC) + timedelta(hours=1):
                return
            await client.send("state.set", state="paused", reason="break")
            await client.send("state.set", state="ready")
        elif frame["type"] == "error":
            raise AssertionError(f"unexpected error frame {frame}")


async def test_a_hundred_agents_never_call_a_number_past_its_daily_cap(hub_server, db):
    async with db() as s:  # system-wide: each number at most once a day, at any hour
        await contact_store.put_setting(
            s, contact_store.SYSTEM_POLICY, policy_json(ContactPolicy(phone_caps=Caps(per_day=1))), None
        )
        await s.commit()
    await add_agents(db, AGENTS)
    phones = cn_mobiles(PHONES, seed=9)
    async with db() as s:  # five leads per number, side by side: agents claiming at once collide
        await insert_leads(
            s,
            [NewLead(f"L{i}-{p[-4:]}", p) for p in phones for i in range(LEADS_PER_PHONE)],
            batch_id=None,
        )
    tokens = await asyncio.gather(*(token(hub_server.base, f"crowd{i}") for i in range(AGENTS)))
    clients = await asyncio.gather(*(AgentClient.connect(hub_server.ws_base, t) for t in tokens))
    for client in clients:
        await client.expect("snapshot")
    received: list[list[int]] = [[] for _ in clients]
    told: list[str] = []
    await asyncio.wait_for(
        asyncio.gather(*(_work(c, r, told) for c, r in zip(clients, received, strict=True))), timeout=120
    )
    await asyncio.gather(*(c.close() for c in clients))

    async with db() as s:
        per_phone = Counter(
            dict(
                (await s.execute(text("SELECT phone_e164, count(*) FROM contact_attempts GROUP BY 1"))).all()
            )
        )
        waiting = (
            await s.execute(
                text("SELECT count(*) FROM leads WHERE next_attempt_at > now() + interval '1 hour'")
            )
        ).scalar()
        held = (await s.execute(text("SELECT count(*) FROM leads WHERE held_by IS NOT NULL"))).scalar()
    assert per_phone == Counter({p: 1 for p in phones}), "every number called once today, none twice"
    assert waiting == PHONES * LEADS_PER_PHONE, "every lead waits for tomorrow"
    assert held == 0
    assert sum(len(r) for r in received) == PHONES
    # Agents are told which rule held their next leads back, in the customer's local time.
    assert any(
        reason.startswith("your next leads may not be called now: this number was called 1 times today")
        and "(Asia/Shanghai)" in reason
        for reason in told
    ), told[:5]


async def test_a_lead_on_screen_is_checked_again_when_dialled(hub_server, db):
    await add_user(db, "ann")
    await add_user(db, "root", role="admin")
    await add_leads(db, 1)
    ann = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    await ann.expect("snapshot")
    await ann.send("state.set", state="ready")
    lead = (await ann.expect("lead.assigned"))["lead"]
    # While the lead is on screen, an administrator declares today a day without calls.
    today = local(datetime.now(SHANGHAI), SHANGHAI).date()
    quiet = policy_json(ContactPolicy(blackout_dates=frozenset({today})))
    async with await api_client(hub_server.base, "root") as admin:
        assert (await admin.put("/api/contact-policies/system", json=quiet)).status_code == 200
    refused = await ann.reply(await ann.send("call.dial", lead_id=lead["id"]))
    assert refused["type"] == "error" and refused["code"] == "not_dialable"
    assert "a day without calls" in refused["message"]
    await ann.close()
