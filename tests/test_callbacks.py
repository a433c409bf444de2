"""Callbacks: due ones reach the agent who promised them within a second, then pass to anyone."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.seed import add_leads, add_user, api_client, csrf_in, ready_agent, signed_in


async def test_a_due_callback_reaches_its_agent_within_a_second_then_passes_to_anyone(start_hub, db):
    server = start_hub(LINEUP_CALLBACK_GRACE_S="3")
    await add_user(db, "ann")
    await add_user(db, "bob")
    await add_leads(db, 1)
    ann = await ready_agent(server, "ann")
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
    bob = await ready_agent(server, "bob")
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


async def test_supervisors_see_and_move_callbacks(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    ann, bob, tia = (
        await add_user(db, "ann"),
        await add_user(db, "bob"),
        await add_user(db, "tia", role="tmk"),
    )
    await add_leads(db, 2)
    due = datetime.now(UTC) - timedelta(minutes=1)  # already due, promised by Ann who is away
    async with db() as s:
        await s.execute(
            text(
                "UPDATE leads SET status = 'callback', callback_at = :at, next_attempt_at = :at, callback_agent_id = :ann"
            ),
            {"at": due, "ann": ann},
        )
        await s.commit()
        first, second = (await s.execute(text("SELECT id FROM leads ORDER BY id"))).scalars().all()
    bobs = await ready_agent(hub_server, "bob")
    await bobs.expect("lead.none")  # Ann's callbacks are hers

    async with await api_client(hub_server.base, "sue") as api:
        listed = (await api.get("/api/callbacks")).json()["callbacks"]
        assert [(c["lead_id"], c["agent_id"]) for c in listed] == [(first, ann), (second, ann)]
        assert (await api.put(f"/api/callbacks/{first}", json={"agent_id": tia})).status_code == 400
        assert (await api.put(f"/api/callbacks/{first}", json={"agent_id": "x"})).status_code == 400
        assert (await api.put("/api/callbacks/999999", json={"agent_id": None})).status_code == 404
        moved = await api.put(f"/api/callbacks/{first}", json={"agent_id": bob})
        assert moved.status_code == 200
    got = await bobs.expect("lead.assigned")
    assert got["lead"]["id"] == first, "the moved, due callback reaches Bob at once"
    await bobs.expect("callback.due")
    async with db() as s:
        audit = (
            (await s.execute(text("SELECT detail FROM audit_log WHERE action = 'callback_reassigned'")))
            .scalars()
            .all()
        )
    assert audit == [{"from": ann, "to": bob}]
    await bobs.close()

    page = await signed_in(hub_server.base, "sue")
    try:
        listing = await page.get("/callbacks")
        assert listing.status_code == 200 and f'data-lead="{second}"' in listing.text
        form = {"csrf": csrf_in(listing.text), "agent_id": "anyone"}
        assert (await page.post(f"/callbacks/{second}", data=form)).status_code == 303
        expired = await page.post(f"/callbacks/{second}", data={"csrf": "stale", "agent_id": "anyone"})
        assert expired.status_code == 400 and "form expired" in expired.text
    finally:
        await page.aclose()
    async with db() as s:
        assert (
            await s.execute(text("SELECT callback_agent_id FROM leads WHERE id = :i"), {"i": second})
        ).scalar() is None
