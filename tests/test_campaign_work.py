"""Agents work the campaigns they belong to; do-not-call holds at claim and dial; TMK hands leads to sales."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.agent_client import AgentClient
from tests.seed import add_leads, add_user, token


async def _campaign(db, name: str, kind: str, members: list[int]) -> int:
    async with db() as s:
        campaign_id = (
            await s.execute(
                text("INSERT INTO campaigns (name, kind) VALUES (:n, :k) RETURNING id"),
                {"n": name, "k": kind},
            )
        ).scalar_one()
        for user_id in members:
            await s.execute(
                text("INSERT INTO campaign_agents VALUES (:c, :u)"), {"c": campaign_id, "u": user_id}
            )
        await s.commit()
    return campaign_id


async def _into_campaign(db, phones: list[str], campaign_id: int) -> None:
    async with db() as s:
        await s.execute(
            text("UPDATE leads SET campaign_id = :c WHERE phone_e164 = ANY(:p)"),
            {"c": campaign_id, "p": phones},
        )
        await s.commit()


async def test_pool_leads_go_only_to_members_and_tmk_agents_skip_the_general_pool(hub_server, db):
    member = await add_user(db, "mona")
    await add_user(db, "nick")
    tmk = await add_user(db, "tara", role="tmk")
    campaign = await _campaign(db, "Spring", "sales", [member])
    tmk_campaign = await _campaign(db, "Signups", "tmk", [tmk])
    spring = await add_leads(db, 2, seed=1)
    await _into_campaign(db, spring, campaign)
    signups = await add_leads(db, 1, seed=3)
    await _into_campaign(db, signups, tmk_campaign)
    general = await add_leads(db, 1, seed=2)

    outsider = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "nick"))
    await outsider.send("state.set", state="ready")
    got = (await outsider.expect("lead.assigned"))["lead"]
    assert got["phone_masked"].endswith(general[0][-4:]), "a non-member gets only the general pool"
    await outsider.send("lead.dispose", lead_id=got["id"], outcome="converted")
    assert (await outsider.expect("lead.none"))["reason"]

    tara = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "tara"))
    await tara.send("state.set", state="ready")
    lead = (await tara.expect("lead.assigned"))["lead"]
    assert lead["phone_masked"].endswith(signups[0][-4:])
    await tara.send("lead.dispose", lead_id=lead["id"], outcome="not_interested")
    assert (await tara.expect("lead.none"))["reason"], "TMK agents never get the Spring or general leads"

    mona = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "mona"))
    await mona.send("state.set", state="ready")
    lead = (await mona.expect("lead.assigned"))["lead"]
    assert any(lead["phone_masked"].endswith(p[-4:]) for p in spring)
    for client in (outsider, tara, mona):
        await client.close()


async def test_dnc_disposition_blocks_the_number_and_dial_rechecks(hub_server, db):
    agent = await add_user(db, "otto")
    phones = await add_leads(db, 2, owner_id=agent)
    # The same number on a second lead (another source): it must not come back after "dnc".
    async with db() as s:
        await s.execute(
            text(
                "INSERT INTO leads (phone_e164, name, owner_id) SELECT phone_e164,"
                " 'Again', owner_id FROM leads WHERE phone_e164 = :p"
            ),
            {"p": phones[0]},
        )
        # Fresh leads come in their shuffled order; here in insertion order, the shared number first.
        await s.execute(text("UPDATE leads SET shuffle = id"))
        await s.commit()
    client = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "otto"))
    await client.send("state.set", state="ready")
    first = (await client.expect("lead.assigned"))["lead"]
    blocked_phone = next(p for p in phones if p.endswith(first["phone_masked"][-4:]))
    # A supervisor puts the number on the list while it is on screen: dialling is refused.
    async with db() as s:
        await s.execute(
            text("INSERT INTO dnc_numbers (phone_e164, reason) VALUES (:p, 'complaint')"),
            {"p": blocked_phone},
        )
        await s.commit()
    refused = await client.reply(await client.send("call.dial", lead_id=first["id"]))
    assert refused["type"] == "error" and refused["code"] == "dnc"
    async with db() as s:
        await s.execute(text("DELETE FROM dnc_numbers"))
        await s.commit()
    await client.send("lead.dispose", lead_id=first["id"], outcome="dnc")
    seen = [(await client.expect("lead.assigned"))["lead"]]
    await client.send("lead.dispose", lead_id=seen[0]["id"], outcome="not_interested")
    await client.expect("lead.none")
    assert all(not p.endswith(blocked_phone[-4:]) for p in [lead["phone_masked"] for lead in seen])
    async with db() as s:
        listed = (await s.execute(text("SELECT phone_e164, reason, added_by FROM dnc_numbers"))).all()
    assert listed == [(blocked_phone, "agent_disposition", agent)]
    await client.close()


async def test_tmk_booking_a_trial_hands_the_lead_to_sales_with_notes(hub_server, db):
    tmk = await add_user(db, "tina", role="tmk")
    await add_user(db, "sam")
    signups = await _campaign(db, "Signups", "tmk", [tmk])
    phones = await add_leads(db, 1)
    await _into_campaign(db, phones, signups)

    tina = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "tina"))
    await tina.send("state.set", state="ready")
    lead = (await tina.expect("lead.assigned"))["lead"]
    trial = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    past = await tina.reply(
        await tina.send(
            "lead.dispose", lead_id=lead["id"], outcome="interested", trial_at="2001-01-01T10:00:00+08:00"
        )
    )
    assert past["type"] == "error" and "past" in past["message"]
    wrong = await tina.reply(
        await tina.send("lead.dispose", lead_id=lead["id"], outcome="busy", trial_at=trial.isoformat())
    )
    assert wrong["type"] == "error"
    ok = await tina.reply(
        await tina.send(
            "lead.dispose",
            lead_id=lead["id"],
            outcome="interested",
            note="Grade 5 maths, mother answers",
            trial_at=trial.isoformat(),
        )
    )
    assert ok["type"] == "ack"
    await tina.close()

    sam = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "sam"))
    await sam.send("state.set", state="ready")
    assert (await sam.expect("lead.none"))["reason"], "the Sales campaign has no members yet"
    async with db() as s:
        sales = (
            await s.execute(text("SELECT id FROM campaigns WHERE name = 'Sales' AND kind = 'sales'"))
        ).scalar()
        await s.execute(
            text("INSERT INTO campaign_agents SELECT :c, id FROM users WHERE username = 'sam'"), {"c": sales}
        )
        await s.commit()
    await sam.close()
    sam = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "sam"))
    handed = (await sam.expect("lead.assigned"))["lead"]
    assert handed["id"] == lead["id"]
    assert "trial lesson booked" in handed["notes"] and "Grade 5 maths" in handed["notes"]
    assert handed["attributes"]["trial_lesson_at"] == trial.isoformat()
    assert handed["history"][0]["outcome"] == "interested"
    await sam.close()
