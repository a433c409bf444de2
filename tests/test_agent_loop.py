"""The agent's lead loop over a real websocket against a running hub process."""

from __future__ import annotations

import json
import uuid

import pytest
import websockets
from sqlalchemy import text

from tests.agent_client import AgentClient
from tests.seed import add_leads, add_user, token


async def test_snapshot_ready_lead_call_dispose_next(hub_server, db, redis, redis_prefix):
    agent_id = await add_user(db, "alice", extension="2001")
    await add_leads(db, 3, owner_id=agent_id)
    client = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "alice"))

    snapshot = await client.recv()
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == 1 and snapshot["ts"] > 0
    assert snapshot["agent"]["state"] == "paused" and snapshot["lead"] is None

    ready = await client.send("state.set", state="ready")
    assert (await client.reply(ready))["type"] == "ack"
    lead = (await client.expect("lead.assigned"))["lead"]
    assert "****" in lead["phone_masked"] and lead["history"] == []
    presence_key = f"{redis_prefix}agent:{agent_id}"
    presence = await redis.hgetall(presence_key)
    assert presence[b"state"] == b"ready" and presence[b"lead_id"] == str(lead["id"]).encode()
    assert 0 < await redis.ttl(presence_key) <= 60

    dial = await client.send("call.dial", lead_id=lead["id"])
    call_id = (await client.reply(dial))["call_id"]
    answered = [await client.expect("call.state", call_id=call_id) for _ in range(3)]
    dial_state = await redis.hgetall(f"{redis_prefix}call:{call_id}")
    assert (
        dial_state[b"agent_id"] == str(agent_id).encode()
        and dial_state[b"lead_id"] == str(lead["id"]).encode()
    )
    assert (await redis.hget(presence_key, "call_id")).decode() == call_id
    progress = [*answered, await client.expect("call.state", call_id=call_id)]
    assert [f["state"] for f in progress] == ["dialing", "ringing", "answered", "ended"]
    ended = progress[-1]
    assert 0.25 <= ended["duration_s"] <= 1.0

    dispose = await client.send(
        "lead.dispose", lead_id=lead["id"], outcome="interested", note="wants a trial"
    )
    assert (await client.reply(dispose))["type"] == "ack"
    nxt = (await client.expect("lead.assigned"))["lead"]
    assert nxt["id"] != lead["id"]
    assert not await redis.exists(f"{redis_prefix}call:{call_id}"), "dial state is cleaned up on end"
    assert await redis.hget(presence_key, "call_id") == b""
    seqs = [f["seq"] for f in client.frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    async with db() as s:
        call = (await s.execute(text("SELECT * FROM calls WHERE id = :id"), {"id": uuid.UUID(call_id)})).one()
        attempt = (
            await s.execute(text("SELECT * FROM contact_attempts WHERE lead_id = :l"), {"l": lead["id"]})
        ).one()
    assert call.state == "ended" and call.agent_id == agent_id and call.lead_id == lead["id"]
    assert call.ringing_at and call.answered_at and call.ended_at and call.duration_s == ended["duration_s"]
    assert attempt.outcome == "interested" and attempt.note == "wants a trial"
    assert attempt.call_id == uuid.UUID(call_id)
    await client.close()


async def test_agent_hangs_up_first(hub_server, db):
    agent_id = await add_user(db, "bob")
    await add_leads(db, 1, owner_id=agent_id)
    async with db() as s:
        await s.execute(text("UPDATE leads SET attributes = '{}'"))
        await s.commit()
    client = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "bob"))
    await client.send("state.set", state="ready")
    lead = (await client.expect("lead.assigned"))["lead"]
    call_id = (await client.reply(await client.send("call.dial", lead_id=lead["id"])))["call_id"]
    await client.expect("call.state", call_id=call_id, state="ringing")
    hangup = await client.send("call.hangup", call_id=call_id)
    assert (await client.reply(hangup))["type"] == "ack"
    ended = await client.expect("call.state", call_id=call_id, state="ended")
    assert ended["cause"] == "agent_hangup"
    # Disposing is refused while a call is live, allowed once it ended.
    reply = await client.reply(await client.send("lead.dispose", lead_id=lead["id"], outcome="no_answer"))
    assert reply["type"] == "ack"
    await client.close()


async def test_disposing_of_someone_elses_lead_is_refused_and_changes_nothing(hub_server, db):
    carol = await add_user(db, "carol")
    await add_user(db, "dave")
    await add_leads(db, 1, owner_id=carol)
    c = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "carol"))
    d = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "dave"))
    await c.send("state.set", state="ready")
    lead = (await c.expect("lead.assigned"))["lead"]
    await d.recv()
    reply = await d.reply(await d.send("lead.dispose", lead_id=lead["id"], outcome="converted"))
    assert reply["type"] == "error" and reply["code"] == "not_your_lead"
    reply = await d.reply(await d.send("call.dial", lead_id=lead["id"]))
    assert reply["code"] == "not_your_lead"
    async with db() as s:
        held_by = (
            await s.execute(text("SELECT held_by FROM leads WHERE id = :l"), {"l": lead["id"]})
        ).scalar()
        attempts = (await s.execute(text("SELECT count(*) FROM contact_attempts"))).scalar()
    assert held_by == carol and attempts == 0
    await c.close()
    await d.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        (json.dumps({"type": "lead.steal", "id": 7}), "unknown_type"),
        (json.dumps({"id": 8}), "invalid"),
        (json.dumps({"type": "state.set", "state": "asleep", "id": 9}), "invalid_state"),
        (json.dumps({"type": "state.set", "state": "paused", "reason": "nap", "id": 10}), "invalid_state"),
        (json.dumps({"type": "lead.dispose", "lead_id": "x", "outcome": "busy", "id": 11}), "invalid"),
        (json.dumps({"type": "lead.dispose", "lead_id": 1, "outcome": "maybe", "id": 12}), "invalid"),
        (
            json.dumps(
                {
                    "type": "lead.dispose",
                    "lead_id": 1,
                    "outcome": "callback",
                    "callback_at": "2001-01-01T00:00:00Z",
                    "id": 13,
                }
            ),
            "invalid",
        ),
        (json.dumps({"type": "call.hangup", "call_id": "nope", "id": 14}), "not_your_call"),
    ],
)
async def test_bad_frames_get_an_error_and_the_session_goes_on(hub_server, db, frame, code):
    await add_user(db, "erin")
    client = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "erin"))
    await client.expect("snapshot")
    await client.ws.send(frame)
    err = await client.expect("error")
    assert err["code"] == code and err["message"]
    ping = await client.send("ping")
    assert (await client.expect("pong"))["id"] == ping
    await client.close()


async def test_oversized_frame_closes_with_1009(hub_server, db):
    await add_user(db, "frank")
    client = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "frank"))
    await client.expect("snapshot")
    await client.ws.send(json.dumps({"type": "ping", "pad": "x" * 200_000}))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_lead_none_reason_and_stock_low_warning(hub_server, db):
    agent_id = await add_user(db, "gina")
    await add_leads(db, 2, owner_id=agent_id)
    client = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "gina"))
    snapshot = await client.recv()
    assert [w["kind"] for w in snapshot["warnings"]] == ["stock_low"]
    assert snapshot["warnings"][0]["remaining"] == 2
    await client.send("state.set", state="ready")
    for remaining in (1, 0):
        lead = (await client.expect("lead.assigned"))["lead"]
        await client.send("lead.dispose", lead_id=lead["id"], outcome="not_interested")
        warning = await client.expect("quota.warning")
        assert warning["kind"] == "stock_low" and warning["remaining"] == remaining
        assert warning["threshold"] == 10
    none = await client.expect("lead.none")
    assert "no leads left" in none["reason"]
    await client.close()


async def test_reconnect_restores_state_and_lead(hub_server, db):
    agent_id = await add_user(db, "hank")
    await add_leads(db, 2, owner_id=agent_id)
    tok = await token(hub_server.base, "hank")
    first = await AgentClient.connect(hub_server.ws_base, tok)
    await first.send("state.set", state="ready")
    lead = (await first.expect("lead.assigned"))["lead"]
    await first.close()
    second = await AgentClient.connect(hub_server.ws_base, tok)
    snapshot = await second.expect("snapshot")
    assert snapshot["agent"]["state"] == "ready"
    assert snapshot["lead"]["id"] == lead["id"]
    await second.close()


async def test_lead_of_an_agent_gone_past_the_lease_returns_to_the_pool(start_hub, db):
    server = start_hub(LINEUP_LEAD_LEASE_S="2")
    await add_user(db, "ivan")
    await add_user(db, "judy")
    await add_leads(db, 1)  # one shared-pool lead
    ivan = await AgentClient.connect(server.ws_base, await token(server.base, "ivan"))
    await ivan.send("state.set", state="ready")
    lead = (await ivan.expect("lead.assigned"))["lead"]
    await ivan.close()
    judy = await AgentClient.connect(server.ws_base, await token(server.base, "judy"))
    await judy.send("state.set", state="ready")
    assert (await judy.expect("lead.none"))["reason"]
    # The lease runs out; the sweeper frees the lead and the idle ready agent gets it.
    assert (await judy.expect("lead.assigned", timeout=15))["lead"]["id"] == lead["id"]
    await judy.close()
