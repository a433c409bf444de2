"""Supervisors set which agents answer each number customers call: the page, the API, the roles."""

from __future__ import annotations

from playwright.async_api import Browser, expect
from sqlalchemy import text

from tests.agent_client import AgentClient
from tests.browser import sign_in
from tests.seed import add_user, api_client, csrf_in, signed_in, token


async def test_a_supervisor_sets_up_a_number_on_the_page_and_calls_to_it_ring_its_agents(
    hub_server, db, browser: Browser
):
    ann = await add_user(db, "ann", extension="1001")
    await add_user(db, "bob")  # no phone extension: cannot be chosen
    await add_user(db, "sue", role="supervisor")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, hub_server.base, "sue")
    await page.get_by_role("navigation").get_by_role("link", name="Inbound numbers").click()
    await expect(page.get_by_text("No numbers yet")).to_be_visible()
    await expect(page.get_by_label("Bob")).to_be_disabled()
    await page.get_by_label("Number customers call").fill("800")
    await page.get_by_label("Name").fill("Course hotline")
    await page.get_by_label("Ann").check()
    await page.get_by_label("A phone rings for (seconds)").fill("20")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("inbound-saved")).to_contain_text("Number 800 saved")
    row = page.get_by_test_id("inbound-numbers").locator("tr[data-did='800']")
    await expect(row).to_contain_text("Course hotline")
    await expect(row).to_contain_text("20 s")
    await expect(row).to_contain_text("Ann")
    await context.close()

    agent = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    await agent.expect("snapshot")
    await agent.reply(await agent.send("state.set", state="ready"))
    async with await api_client(hub_server.base, "sue") as sue:
        placed = await sue.post("/api/simulator/calls", json={"caller": "13912345678", "did": "800"})
        assert placed.status_code == 202
        assert (await agent.expect("call.inbound"))["did"] == "800"
        listed = (await sue.get("/api/inbound-numbers")).json()["numbers"]
    assert listed == [
        {
            "did": "800",
            "name": "Course hotline",
            "strategy": "sticky",
            "ring_timeout_s": 20,
            "agents": [{"username": "ann", "extension": "1001"}],
        }
    ]
    async with db() as s:
        audited = (
            await s.execute(text("SELECT target FROM audit_log WHERE action = 'inbound_number.save'"))
        ).all()
    assert [tuple(r) for r in audited] == [("800",)] and ann
    await agent.close()


async def test_the_api_refuses_bad_settings_and_other_roles(hub_server, db):
    await add_user(db, "ann", extension="1001")
    await add_user(db, "sue", role="supervisor")
    async with await api_client(hub_server.base, "sue") as sue:
        for did, body, problem in [
            ("800", {"strategy": "random"}, "Choose how calls are shared"),
            ("800", {"ring_timeout_s": "15"}, "5 to 120 seconds"),
            ("8a0", {}, "2 to 31 digits"),
            ("800", {"agents": ["nobody"]}, "not sales or TMK agents: nobody"),
            ("800", {"agents": "ann"}, "list of usernames"),
        ]:
            refused = await sue.put(f"/api/inbound-numbers/{did}", json=body)
            assert refused.status_code == 400 and problem in refused.json()["error"], (body, refused.text)
        saved = await sue.put(
            "/api/inbound-numbers/+861088", json={"agents": ["ann"], "strategy": "longest_idle"}
        )
        assert saved.status_code == 200 and saved.json()["agents"] == [
            {"username": "ann", "extension": "1001"}
        ]
        form = await sue.put("/api/inbound-numbers/800", content=b"did=800")
        assert form.status_code == 415
    async with await api_client(hub_server.base, "ann") as ann:
        assert (await ann.get("/api/inbound-numbers")).status_code == 403
        assert (await ann.put("/api/inbound-numbers/800", json={})).status_code == 403
        assert (await ann.post("/api/simulator/calls", json={"caller": "13912345678"})).status_code == 403
    page = await signed_in(hub_server.base, "sue")
    try:
        csrf = csrf_in((await page.get("/inbound-numbers")).text)
        forged = await page.post(
            "/inbound-numbers", data={"did": "900", "ring_timeout_s": "15", "strategy": "sticky"}
        )
        assert forged.status_code == 400 and "The form expired" in forged.text
        short = await page.post(
            "/inbound-numbers",
            data={
                "csrf": csrf,
                "did": "900",
                "ring_timeout_s": "3",
                "strategy": "sticky",
                "name": "Night line",
            },
        )
        assert short.status_code == 400 and "5 to 120 seconds" in short.text
        assert 'value="Night line"' in short.text, "what was typed is kept"
        ok = await page.post(
            "/inbound-numbers",
            data={"csrf": csrf, "did": "900", "ring_timeout_s": "15", "strategy": "sticky"},
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/inbound-numbers?saved=900"
    finally:
        await page.aclose()
