"""Dialling a number by hand goes through the contact policy and counts towards its caps."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from hub.policy import Caps, ContactPolicy, policy_json
from storage import contact as contact_store
from storage import dnc
from tests.agent_client import AgentClient
from tests.seed import add_leads, add_user, cn_mobiles, token
from tests.test_concurrency import add_agents


async def _limit_each_number_to_one_call_a_day(db) -> None:
    async with db() as s:
        policy = policy_json(ContactPolicy(phone_caps=Caps(per_day=1)))
        await contact_store.put_setting(s, contact_store.SYSTEM_POLICY, policy, None)
        await s.commit()


async def _connected(server, username: str) -> AgentClient:
    client = await AgentClient.connect(server.ws_base, await token(server.base, username))
    await client.expect("snapshot")
    return client


async def test_a_typed_number_is_called_and_recorded_as_an_attempt_on_it(hub_server, db):
    await add_user(db, "mia")
    mia = await _connected(hub_server, "mia")
    typed = "138 0013 8000"
    answer = await mia.reply(await mia.send("call.dial_number", phone=typed))
    assert answer["type"] == "ack", answer
    call_id = answer["call_id"]
    dialing = await mia.expect("call.state", call_id=call_id, state="dialing")
    assert dialing["lead_id"] is None and dialing["direction"] == "out"
    ended = await mia.expect("call.state", call_id=call_id, state="ended")
    assert ended["duration_s"] > 0
    async with db() as s:
        attempt = (
            await s.execute(text("SELECT lead_id, outcome, phone_e164, call_id::text FROM contact_attempts"))
        ).one()
        call = (await s.execute(text("SELECT lead_id, phone_e164, state FROM calls"))).one()
    assert tuple(attempt) == (None, "manual", "+8613800138000", call_id)
    assert tuple(call) == (None, "+8613800138000", "ended")
    await mia.close()


async def test_bad_numbers_listed_numbers_and_numbers_past_their_cap_are_refused(hub_server, db):
    await _limit_each_number_to_one_call_a_day(db)
    agent_id = await add_user(db, "mia")
    listed, capped = cn_mobiles(2, seed=41)
    async with db() as s:
        campaign = (
            await s.execute(
                text("INSERT INTO campaigns (name, kind) VALUES ('Spring', 'sales') RETURNING id")
            )
        ).scalar()
        # On one campaign's list only: a manual call belongs to no campaign, so every list applies.
        await dnc.add_numbers(s, [listed], campaign_id=campaign, reason="asked", added_by=None)
        await s.commit()
    mia = await _connected(hub_server, "mia")

    for bad in ("12", "not a number", "+1 555"):
        refused = await mia.reply(await mia.send("call.dial_number", phone=bad))
        assert refused["code"] == "invalid" and "not a valid phone number" in refused["message"]
    too_long = await mia.reply(await mia.send("call.dial_number", phone="1" * 41))
    assert too_long["code"] == "invalid"
    refused = await mia.reply(await mia.send("call.dial_number", phone=listed))
    assert refused["code"] == "dnc" and "do-not-call" in refused["message"]

    first = await mia.reply(await mia.send("call.dial_number", phone=capped))
    assert first["type"] == "ack"
    busy = await mia.reply(await mia.send("call.dial_number", phone=capped))
    assert busy["code"] == "call_active"
    await mia.expect("call.state", call_id=first["call_id"], state="ended")
    again = await mia.reply(await mia.send("call.dial_number", phone=capped))
    assert again["code"] == "not_dialable" and "called 1 times today (cap 1)" in again["message"], again

    # The manual call counts for the number's leads too: a lead with it is not handed out today.
    await add_leads(db, 1, owner_id=agent_id, seed=43)
    async with db() as s:
        await s.execute(text("UPDATE leads SET phone_e164 = :p"), {"p": capped})
        await s.commit()
    await mia.send("state.set", state="ready")
    none = await mia.expect("lead.none")
    assert "called 1 times today (cap 1)" in none["reason"], none
    async with db() as s:
        attempts = (await s.execute(text("SELECT count(*) FROM contact_attempts"))).scalar()
    assert attempts == 1, "refused dials record nothing"
    await mia.close()


async def test_agents_dialling_one_number_at_once_never_pass_its_cap(hub_server, db):
    await _limit_each_number_to_one_call_a_day(db)
    agents = 20
    await add_agents(db, agents)
    (phone,) = cn_mobiles(1, seed=42)
    tokens = await asyncio.gather(*(token(hub_server.base, f"crowd{i}") for i in range(agents)))
    clients = await asyncio.gather(*(AgentClient.connect(hub_server.ws_base, t) for t in tokens))
    await asyncio.gather(*(c.expect("snapshot") for c in clients))
    ids = await asyncio.gather(*(c.send("call.dial_number", phone=phone) for c in clients))
    answers = await asyncio.gather(*(c.reply(i) for c, i in zip(clients, ids, strict=True)))
    kinds = sorted(a.get("code", a["type"]) for a in answers)
    assert kinds == ["ack"] + ["not_dialable"] * (agents - 1), kinds
    async with db() as s:
        calls = (
            await s.execute(text("SELECT count(*) FROM calls WHERE phone_e164 = :p"), {"p": phone})
        ).scalar()
    assert calls == 1
    await asyncio.gather(*(c.close() for c in clients))
