"""Two hub processes on different ports, sharing Postgres and Redis, act as one."""

from __future__ import annotations

import httpx
import pytest
import websockets

from tests.agent_client import AgentClient
from tests.seed import add_leads, add_user, token


async def test_supervisor_pause_through_process_b_reaches_agent_on_process_a(start_hub, db):
    a = start_hub(LINEUP_PROCESS_ID="hub-a")
    b = start_hub(LINEUP_PROCESS_ID="hub-b")
    agent_id = await add_user(db, "olga")
    await add_user(db, "sam", role="supervisor")
    await add_leads(db, 2, owner_id=agent_id)

    agent = await AgentClient.connect(a.ws_base, await token(a.base, "olga"))
    await agent.expect("snapshot")
    await agent.send("state.set", state="ready")
    await agent.expect("lead.assigned")

    async with httpx.AsyncClient(base_url=b.base, timeout=10) as http:
        sup = await token(b.base, "sam")
        response = await http.post(
            f"/api/agents/{agent_id}/state",
            json={"state": "paused"},
            headers={"Authorization": f"Bearer {sup}"},
        )
    assert response.status_code == 200 and response.json()["connected"] is True
    event = await agent.expect("agent.state", state="paused")
    assert event["reason"] == "supervisor"

    # The same path carries a "ready" order; a lead is already on screen so none is pushed twice.
    async with httpx.AsyncClient(base_url=b.base, timeout=10) as http:
        response = await http.post(
            f"/api/agents/{agent_id}/state",
            json={"state": "ready"},
            headers={"Authorization": f"Bearer {sup}"},
        )
    assert response.status_code == 200
    await agent.expect("agent.state", state="ready")

    # A logout ordered on B closes the agent's socket on A with 4409.
    async with httpx.AsyncClient(base_url=b.base, timeout=10) as http:
        response = await http.post(
            f"/api/agents/{agent_id}/logout", headers={"Authorization": f"Bearer {sup}"}
        )
    assert response.status_code == 200 and response.json()["connected"] is True
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await agent.recv()
    assert closed.value.rcvd.code == 4409


async def test_agent_reconnecting_to_the_other_process_keeps_state_lead_and_call_events(start_hub, db):
    a = start_hub(LINEUP_SIM_TALK_S="[1.5, 1.6]")
    b = start_hub(LINEUP_SIM_TALK_S="[1.5, 1.6]")
    agent_id = await add_user(db, "pete")
    await add_leads(db, 2, owner_id=agent_id)
    tok = await token(a.base, "pete")
    first = await AgentClient.connect(a.ws_base, tok)
    await first.send("state.set", state="ready")
    lead = (await first.expect("lead.assigned"))["lead"]
    call_id = (await first.reply(await first.send("call.dial", lead_id=lead["id"])))["call_id"]
    await first.expect("call.state", call_id=call_id, state="answered")
    await first.close()

    # The call lives on in process A's simulator; its events reach the agent now on process B.
    second = await AgentClient.connect(b.ws_base, tok)
    snapshot = await second.expect("snapshot")
    assert snapshot["agent"]["state"] == "ready"
    assert snapshot["lead"]["id"] == lead["id"]
    assert snapshot["call"]["call_id"] == call_id and snapshot["call"]["state"] == "answered"
    ended = await second.expect("call.state", call_id=call_id, state="ended")
    assert ended["duration_s"] >= 1.4
    await second.close()


async def test_forcing_an_unknown_or_non_agent_user_is_refused(start_hub, db):
    server = start_hub()
    await add_user(db, "sue", role="supervisor")
    qa_id = await add_user(db, "quinn", role="qa")
    agent_id = await add_user(db, "rita")
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        sup = {"Authorization": f"Bearer {await token(server.base, 'sue')}"}
        assert (
            await http.post("/api/agents/99999/state", json={"state": "paused"}, headers=sup)
        ).status_code == 404
        assert (
            await http.post(f"/api/agents/{qa_id}/state", json={"state": "paused"}, headers=sup)
        ).status_code == 404
        bad = await http.post(f"/api/agents/{agent_id}/state", json={"state": "asleep"}, headers=sup)
        assert bad.status_code == 400 and "paused" in bad.json()["message"]
        agent = {"Authorization": f"Bearer {await token(server.base, 'rita')}"}
        forbidden = await http.post(f"/api/agents/{agent_id}/state", json={"state": "paused"}, headers=agent)
        assert forbidden.status_code == 403
