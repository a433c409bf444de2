"""Inbound calls through the simulated phone system: routing, screen pops, agent states, records."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from tests.agent_client import AgentClient
from tests.seed import add_hotline, add_leads, add_user, api_client, ready_agent, token


async def _call_in(server, caller: str, did: str = "800") -> str:
    async with await api_client(server.base, "sue") as sue:
        placed = await sue.post("/api/simulator/calls", json={"caller": caller, "did": did})
    assert placed.status_code == 202, placed.text
    return placed.json()["call_id"]


async def test_a_known_caller_rings_their_own_agent_with_the_card_and_the_call_is_recorded(hub_server, db):
    ann = await add_user(db, "ann", extension="1001")
    bob = await add_user(db, "bob", extension="1002")
    await add_user(db, "sue", role="supervisor")
    await add_hotline(db, [ann, bob])
    phone, waiting_phone = await add_leads(db, 2, owner_id=bob, seed=7)
    async with db() as s:
        lead_id = (
            await s.execute(text("SELECT id FROM leads WHERE phone_e164 = :p"), {"p": phone})
        ).scalar_one()
        await s.execute(text("UPDATE leads SET notes = 'prefers evenings' WHERE id = :l"), {"l": lead_id})
        # His other lead comes first and waits on his screen: an inbound call still comes.
        await s.execute(
            text("UPDATE leads SET shuffle = CASE WHEN id = :l THEN 2 ELSE 1 END"), {"l": lead_id}
        )
        await s.commit()
    ann_ws, bob_ws = await ready_agent(hub_server, "ann"), await ready_agent(hub_server, "bob")
    waiting = (await bob_ws.expect("lead.assigned"))["lead"]
    assert waiting["id"] != lead_id

    call_id = await _call_in(hub_server, phone.removeprefix("+86"))
    pop = await bob_ws.expect("call.inbound", call_id=call_id)
    assert pop["phone_masked"].count("*") == 4 and phone not in str(pop)
    assert pop["customer"]["lead_id"] == lead_id and pop["customer"]["owner"] == {"id": bob, "name": "Bob"}
    assert pop["customer"]["notes"] == "prefers evenings" and pop["did"] == "800"
    assert (await bob_ws.expect("agent.state", state="ringing"))["reason"] == ""
    await bob_ws.expect("call.state", call_id=call_id, state="answered", direction="in")
    await bob_ws.expect("agent.state", state="on_call")
    opened = await bob_ws.expect("lead.assigned", timeout=5)
    assert opened["lead"]["id"] == lead_id, "the caller's lead opens"
    assert opened["call"]["call_id"] == call_id and opened["call"]["state"] == "answered"
    async with db() as s:
        held = (
            await s.execute(text("SELECT held_by FROM leads WHERE phone_e164 = :p"), {"p": waiting_phone})
        ).scalar()
    assert held is None, "the lead that waited went back"
    ended = await bob_ws.expect("call.state", call_id=call_id, state="ended")
    assert 0.25 < ended["duration_s"] < 1.0
    await bob_ws.expect("agent.state", state="wrap_up")
    paused = await bob_ws.reply(await bob_ws.send("state.set", state="paused", reason="break"))
    assert paused["type"] == "ack", "wrap-up ends when the agent says so"
    await bob_ws.reply(await bob_ws.send("state.set", state="ready"))
    disposed = await bob_ws.reply(await bob_ws.send("lead.dispose", lead_id=lead_id, outcome="interested"))
    assert disposed["type"] == "ack", disposed
    assert [f for f in ann_ws.frames if f["type"] == "call.inbound"] == []
    async with db() as s:
        row = (
            await s.execute(
                text(
                    "SELECT direction, agent_id, lead_id, did, state, duration_s, hangup_cause, answered_at IS NOT NULL"
                    " FROM calls WHERE id = :c"
                ),
                {"c": call_id},
            )
        ).one()
        linked = (
            await s.execute(
                text("SELECT call_id::text FROM contact_attempts WHERE lead_id = :l"), {"l": lead_id}
            )
        ).scalar_one()
    assert row[:5] == ("in", bob, lead_id, "800", "ended") and row[6] == "normal_clearing" and row[7]
    assert abs(row[5] - ended["duration_s"]) < 0.01
    assert linked == call_id, "the disposition links to the inbound call"
    await asyncio.gather(ann_ws.close(), bob_ws.close())


async def test_an_unknown_caller_goes_to_the_longest_idle_agent_who_saves_them_as_a_customer(hub_server, db):
    ann = await add_user(db, "ann", extension="1001")
    bob = await add_user(db, "bob", extension="1002")
    await add_user(db, "sue", role="supervisor")
    await add_hotline(db, [ann, bob], strategy="longest_idle")
    bob_ws = await ready_agent(hub_server, "bob")
    ann_ws = await ready_agent(hub_server, "ann")  # ready after Bob: Bob has been idle longer

    call_id = await _call_in(hub_server, "13912345678")
    pop = await bob_ws.expect("call.inbound", call_id=call_id)
    assert pop["customer"] is None
    await bob_ws.expect("call.state", call_id=call_id, state="answered")
    saved = await bob_ws.reply(
        await bob_ws.send("customer.create", call_id=call_id, name="Wang Fang", note="asks about maths")
    )
    assert saved["type"] == "ack"
    lead = (await bob_ws.expect("lead.assigned"))["lead"]
    assert lead["id"] == saved["lead_id"] and lead["name"] == "Wang Fang"
    again = await bob_ws.reply(await bob_ws.send("customer.create", call_id=call_id, name="Twice"))
    assert again["code"] == "not_your_call"
    stranger = await ann_ws.reply(await ann_ws.send("customer.create", call_id=call_id, name="Not mine"))
    assert stranger["code"] == "not_your_call"
    await bob_ws.expect("call.state", call_id=call_id, state="ended")
    async with db() as s:
        row = (
            await s.execute(
                text(
                    "SELECT l.phone_e164, l.owner_id, l.source, c.lead_id FROM leads l JOIN calls c ON c.lead_id = l.id"
                )
            )
        ).one()
    assert tuple(row) == ("+8613912345678", bob, "inbound", lead["id"])
    await asyncio.gather(ann_ws.close(), bob_ws.close())


async def test_no_ready_agent_or_an_unserved_number_rejects_the_call(hub_server, db):
    ann = await add_user(db, "ann", extension="1001")
    await add_user(db, "sue", role="supervisor")
    await add_hotline(db, [ann])
    ann_ws = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    await ann_ws.expect("snapshot")  # connected but paused: not offered calls
    call_id = await _call_in(hub_server, "13912345678")
    unserved = await _call_in(hub_server, "13912345679", did="801")
    async with db() as s:
        for _ in range(100):
            rows = (
                await s.execute(
                    text("SELECT id::text, state, hangup_cause, agent_id FROM calls ORDER BY started_at")
                )
            ).all()
            if rows:
                break
            await asyncio.sleep(0.05)
    assert [tuple(r) for r in rows] == [(call_id, "ended", "no_agent", None)]
    assert unserved, "a number nobody serves is refused without a record"
    await ann_ws.send("ping")
    await ann_ws.expect("pong")
    assert [f for f in ann_ws.frames if f["type"] == "call.inbound"] == []
    await ann_ws.close()


async def test_a_reconnect_mid_call_brings_the_pop_back_and_the_agent_can_hang_up(start_hub, db):
    server = start_hub(LINEUP_SIM_TALK_S="[30, 31]")
    ann = await add_user(db, "ann", extension="1001")
    await add_user(db, "sue", role="supervisor")
    await add_hotline(db, [ann])
    (phone,) = await add_leads(db, 1, owner_id=ann, seed=8)
    ann_ws = await ready_agent(server, "ann")
    call_id = await _call_in(server, phone)
    await ann_ws.expect("call.state", call_id=call_id, state="answered")
    await ann_ws.close()

    again = await AgentClient.connect(server.ws_base, await token(server.base, "ann"))
    snapshot = await again.expect("snapshot")
    assert snapshot["agent"]["state"] == "on_call"
    assert snapshot["call"]["call_id"] == call_id and snapshot["call"]["direction"] == "in"
    assert snapshot["inbound"]["call_id"] == call_id and snapshot["inbound"]["customer"]["name"] == "Lead 0"
    assert (await again.reply(await again.send("call.hangup", call_id=call_id)))["type"] == "ack"
    ended = await again.expect("call.state", call_id=call_id, state="ended")
    assert ended["cause"] == "agent_hangup"
    await again.expect("agent.state", state="wrap_up")
    await again.close()
