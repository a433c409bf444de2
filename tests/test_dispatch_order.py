"""Dispatch order, list mix weights and the daily new-lead cap, on the real claim and over the socket."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from hub.contact_gate import ContactGate
from hub.dispatch import Dispatcher
from storage import contact as contact_store
from storage import quotas as quota_store
from tests.seed import add_leads, add_user, ready_agent


@pytest.fixture
async def dispatcher(database_url, db):
    claims = Dispatcher(database_url, ContactGate(db), lease_s=300, pool_size=2)
    await claims.start()
    yield claims
    await claims.close()


async def _claim_and_release(dispatcher: Dispatcher, db, agent_id: int, outcome_status: str = "closed"):
    """Claim the agent's next lead and take it back out of the way (as a final disposition would)."""
    offer = await dispatcher.next_lead(agent_id, general_pool=True, new_lead_cap=None, day=_today())
    if offer.lead is not None:
        async with db() as s:
            await s.execute(
                text("UPDATE leads SET held_by = NULL, cleared_at = NULL, status = :st WHERE id = :id"),
                {"st": outcome_status, "id": offer.lead.id},
            )
            await s.commit()
    return offer


def _today():
    return datetime.now(UTC).date()


async def test_callbacks_for_the_agent_then_for_anyone_then_fresh_then_due_retries(dispatcher, db):
    ann = await add_user(db, "ann")
    bob = await add_user(db, "bob")
    await add_leads(db, 6)
    async with db() as s:
        ids = [r[0] for r in await s.execute(text("SELECT id FROM leads ORDER BY id"))]
        states = [
            # id, status, due, callback agent
            (ids[0], "retry", "now() - interval '2 hours'", None),
            (ids[1], "retry", "now() - interval '3 hours'", None),
            (ids[2], "callback", "now() - interval '1 minute'", None),  # anyone
            (ids[3], "callback", "now() - interval '1 second'", ann),
            (ids[4], "callback", "now() - interval '1 hour'", bob),  # Bob's: never Ann's
            (ids[5], "new", "now()", None),
        ]
        for lead_id, status, due, agent in states:
            await s.execute(
                text(
                    f"UPDATE leads SET status = :st, next_attempt_at = {due}, callback_agent_id = :agent"
                    " WHERE id = :id"
                ),
                {"st": status, "agent": agent, "id": lead_id},
            )
        await s.commit()
    order = [(await _claim_and_release(dispatcher, db, ann)).lead for _ in range(6)]
    got = [lead.id if lead else None for lead in order]
    assert got == [ids[3], ids[2], ids[5], ids[1], ids[0], None], "Bob's callback is never Ann's"


async def test_fresh_leads_come_shuffled_not_in_file_order(dispatcher, db):
    ann = await add_user(db, "ann")
    await add_leads(db, 40)
    got = [(await _claim_and_release(dispatcher, db, ann)).lead.id for _ in range(40)]
    assert sorted(got) == sorted(set(got)) and len(got) == 40, "every lead once"
    assert got != sorted(got), "fresh leads are dispensed in their random order, not as imported"


async def test_an_agent_on_two_lists_gets_leads_from_each_by_their_weights(dispatcher, db):
    ann = await add_user(db, "ann")
    await add_leads(db, 400)
    async with db() as s:
        lists = []
        for name, weight in (("Big", 3), ("Small", 1)):
            added = await s.execute(
                text("INSERT INTO campaigns (name, kind, mix_weight) VALUES (:n, 'sales', :w) RETURNING id"),
                {"n": name, "w": weight},
            )
            lists.append(added.scalar_one())
        big, small = lists
        await s.execute(
            text("INSERT INTO campaign_agents (campaign_id, user_id) VALUES (:a, :u), (:b, :u)"),
            {"a": big, "b": small, "u": ann},
        )
        # Half the leads in each list; Ann works no general pool here (see general_pool below).
        await s.execute(
            text(
                "UPDATE leads SET campaign_id = CASE WHEN id % 2 = 0 THEN CAST(:a AS integer) ELSE CAST(:b AS integer) END"
            ),
            {"a": big, "b": small},
        )
        await s.commit()
    taken: Counter[int] = Counter()
    for _ in range(160):
        offer = await dispatcher.next_lead(ann, general_pool=False, new_lead_cap=None, day=_today())
        taken[offer.lead.campaign_id] += 1
        async with db() as s:
            await s.execute(
                text("UPDATE leads SET held_by = NULL, status = 'closed' WHERE id = :id"),
                {"id": offer.lead.id},
            )
            await s.commit()
    # 3 : 1 means 120 : 40 expected; 95..145 holds with overwhelming probability (binomial, sd 5.5).
    assert 95 <= taken[big] <= 145, taken


async def test_the_daily_new_lead_cap_holds_warns_at_80_and_100_percent_and_retries_still_come(
    hub_server, db
):
    ann = await add_user(db, "ann")
    await add_leads(db, 8)
    async with db() as s:
        await contact_store.put_setting(s, quota_store.QUOTAS, {"default": {"daily_new_leads": 5}}, None)
        await s.commit()
    client = await ready_agent(hub_server, "ann")
    warnings = []
    for n in range(1, 6):
        lead = (await client.expect("lead.assigned"))["lead"]
        if n == 4:
            warnings.append(await client.expect("quota.warning", kind="daily_cap"))
        if n == 5:
            warnings.append(await client.expect("quota.warning", kind="daily_cap"))
        await client.reply(await client.send("lead.dispose", lead_id=lead["id"], outcome="not_interested"))
    assert [(w["kind"], w["level"], w["remaining"], w["threshold"]) for w in warnings] == [
        ("daily_cap", 80, 1, 5),
        ("daily_cap", 100, 0, 5),
    ]
    none = await client.expect("lead.none")
    assert "all your new leads for today" in none["reason"]
    async with db() as s:
        left = (await s.execute(text("SELECT count(*) FROM leads WHERE status = 'new'"))).scalar_one()
        given = (
            await s.execute(text("SELECT new_leads FROM agent_days WHERE agent_id = :a"), {"a": ann})
        ).scalar()
        # A retry falls due: it still comes to her past the cap.
        retry = (
            await s.execute(
                text(
                    "UPDATE leads SET status = 'retry', next_attempt_at = now()"
                    " WHERE id = (SELECT min(id) FROM leads WHERE status = 'new') RETURNING id"
                )
            )
        ).scalar_one()
        await s.commit()
    assert (left, given) == (3, 5)
    await client.send("state.set", state="paused", reason="break")
    await client.send("state.set", state="ready")
    assert (await client.expect("lead.assigned"))["lead"]["id"] == retry
    await client.close()

    again = await ready_agent(hub_server, "ann")  # a reconnect is not told the same warnings twice
    await again.send("ping")
    await again.expect("pong")
    assert [f for f in again.frames if f.get("kind") == "daily_cap"] == []
    await again.close()
