"""Supervisors get the warnings their agents get, live, from any hub process."""

from __future__ import annotations

import os

import pytest
from playwright.async_api import Browser, expect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from storage import contact as contact_store
from storage import quotas as quota_store
from tests.agent_client import AgentClient
from tests.browser import sign_in
from tests.seed import add_leads, add_user, token


async def _cap_of_five(db) -> None:
    async with db() as s:
        await contact_store.put_setting(s, quota_store.QUOTAS, {"default": {"daily_new_leads": 5}}, None)
        await s.commit()


async def _supervisor(server, username: str = "sue") -> AgentClient:
    return await AgentClient.connect(server.ws_base, await token(server.base, username), "/ws/supervisor")


async def _work_until_capped(agent: AgentClient) -> None:
    """Take the five leads of the cap, disposing of each as not interested."""
    await agent.expect("snapshot")
    await agent.send("state.set", state="ready")
    for _ in range(5):
        lead = (await agent.expect("lead.assigned"))["lead"]
        await agent.reply(await agent.send("lead.dispose", lead_id=lead["id"], outcome="not_interested"))
    await agent.expect("lead.none")


async def test_a_supervisor_on_another_process_sees_an_agents_warnings_live_and_after_reconnecting(
    start_hub, db
):
    await _cap_of_five(db)
    ann = await add_user(db, "ann")
    await add_user(db, "sue", role="supervisor")
    await add_leads(db, 8)  # fewer than 10 left after the first call: low stock too
    agents_hub, supervisors_hub = start_hub(), start_hub()

    sue = await _supervisor(supervisors_hub)
    assert (await sue.expect("snapshot"))["alerts"] == []
    agent = await AgentClient.connect(agents_hub.ws_base, await token(agents_hub.base, "ann"))
    await _work_until_capped(agent)

    stock = await sue.expect("quota.warning", kind="stock_low")
    assert stock["agent"] == {"id": ann, "name": "Ann"} and stock["threshold"] == 10
    eighty = await sue.expect("quota.warning", kind="daily_cap", level=80)
    full = await sue.expect("quota.warning", kind="daily_cap", level=100)
    assert (eighty["remaining"], full["remaining"]) == (1, 0)
    await sue.send("ping")
    await sue.expect("pong")
    alerts = [f for f in sue.frames if f["type"] == "quota.warning"]
    assert len(alerts) == 3, "low stock is told to supervisors once a day, not after every call"

    refused = await sue.reply(await sue.send("state.set", state="ready"))
    assert refused["code"] == "forbidden"
    await sue.close()
    again = await _supervisor(agents_hub)
    snapshot = await again.expect("snapshot")
    assert [(a["kind"], a.get("level")) for a in snapshot["alerts"]] == [
        ("daily_cap", 100),
        ("daily_cap", 80),
        ("stock_low", None),
    ]
    await again.close()
    await agent.close()


async def test_only_supervisors_and_admins_open_the_feed(hub_server, db):
    await add_user(db, "ann")
    await add_user(db, "ada", role="admin")
    ada = await _supervisor(hub_server, "ada")
    assert (await ada.expect("snapshot"))["type"] == "snapshot"
    await ada.close()
    url = f"{hub_server.ws_base}/ws/supervisor?token={await token(hub_server.base, 'ann')}"
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with connect(f"{hub_server.ws_base}/ws/supervisor") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_the_quotas_page_shows_alerts_as_they_happen(hub_server, db, browser: Browser):
    await _cap_of_five(db)
    await add_user(db, "ann")
    await add_user(db, "sue", role="supervisor")
    await add_leads(db, 20)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, hub_server.base, "sue")
    await page.goto(f"{hub_server.base}/quotas")
    alerts = page.get_by_test_id("alerts")
    await expect(alerts).to_contain_text("No alerts yet today.")

    agent = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    await _work_until_capped(agent)
    await expect(alerts.locator("li[data-kind=daily_cap]")).to_have_count(2)
    newest = alerts.locator("li").first
    await expect(newest).to_contain_text("Ann")
    await expect(newest).to_contain_text("Ann has had all 5 new leads for today")
    await expect(alerts.get_by_text("No alerts yet today.")).to_be_hidden()
    if shots := os.environ.get("LINEUP_SCREENSHOT_DIR"):
        await page.screenshot(path=f"{shots}/live-alerts.png", full_page=False)
    await agent.close()
    await context.close()
