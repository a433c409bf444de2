"""An agent never receives a full phone number: not over either websocket, not in the page."""

from __future__ import annotations

import re

import httpx

from hub.policy import ContactPolicy, policy_json
from storage import contact as contact_store
from tests.agent_client import AgentClient
from tests.seed import PASSWORD, add_leads, add_user, token

# A Chinese mobile number on its own (epoch-millisecond timestamps are 13 digits, not 11).
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def _leaks(text: str, phones: list[str]) -> list[str]:
    national = [p.removeprefix("+86") for p in phones]
    found = [p for p in phones + national if p in text]
    return found + MOBILE.findall(text)


async def _work_two_leads(client: AgentClient) -> None:
    await client.expect("snapshot")
    await client.send("state.set", state="ready")
    for _ in range(2):
        lead = (await client.expect("lead.assigned"))["lead"]
        call_id = (await client.reply(await client.send("call.dial", lead_id=lead["id"])))["call_id"]
        await client.expect("call.state", call_id=call_id, state="ended")
        await client.send("lead.dispose", lead_id=lead["id"], outcome="no_answer", note="left no message")


async def test_json_and_html_websockets_never_carry_a_full_number(start_hub, db):
    async with db() as s:  # retries come back at once, so the history of earlier calls is sent too
        await contact_store.put_setting(s, contact_store.DEFAULT_POLICY, policy_json(ContactPolicy()), None)
        await s.commit()
    server = start_hub()
    agent_id = await add_user(db, "mia")
    phones = await add_leads(db, 2, owner_id=agent_id)
    tok = await token(server.base, "mia")

    client = await AgentClient.connect(server.ws_base, tok)
    await _work_two_leads(client)
    again = (await client.expect("lead.assigned"))["lead"]
    assert again["history"], "a retried lead arrives with its history"
    await client.close()
    reconnect = await AgentClient.connect(server.ws_base, tok)
    assert (await reconnect.expect("snapshot"))["lead"]["id"] == again["id"]
    await reconnect.close()
    frames = client.raw + reconnect.raw
    assert any("****" in f for f in frames)
    assert _leaks("\n".join(frames), phones) == []

    html = await AgentClient.connect(server.ws_base, tok, path="/ws/agent/html")
    fragments = [await html.ws.recv()]
    await html.close()
    assert 'id="lead-card"' in fragments[0] and "****" in fragments[0]
    assert _leaks("\n".join(map(str, fragments)), phones) == []


async def test_workbench_page_has_no_full_number(hub_server, db):
    agent_id = await add_user(db, "noah")
    phones = await add_leads(db, 1, owner_id=agent_id)
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=10) as http:
        form = await http.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        signed_in = await http.post(
            "/login", data={"username": "noah", "password": PASSWORD, "csrf": csrf, "next": "/agent"}
        )
        assert signed_in.status_code == 303
        page = await http.get("/agent")
    assert page.status_code == 200 and "ws-connect" in page.text
    assert _leaks(page.text, phones) == []
