"""The agent workbench in a real browser (Debian's Chromium): sign in, ready, call, outcome, next lead."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import text

from tests.browser import sign_in
from tests.seed import add_hotline, add_leads, add_user, api_client


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    # Script errors and broken assets fail the test; a page answering 401 to a bad login does not.
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    yield page
    await context.close()
    assert errors == [], f"the page logged errors: {errors}"


def masked(e164: str) -> str:
    national = e164.removeprefix("+86")
    return f"{national[:3]}****{national[-4:]}"


async def test_agent_calls_a_lead_records_the_outcome_gets_the_next_and_pauses(start_hub, db, page):
    # Customers talk until the agent hangs up, so every call state stays on screen long enough to see.
    hub = start_hub(LINEUP_SIM_TALK_S="[60, 61]")
    agent_id = await add_user(db, "alice", extension="2001")
    phones = await add_leads(db, 3, owner_id=agent_id)
    names = {f"Lead {i}": masked(p) for i, p in enumerate(phones)}

    await sign_in(page, hub.base, "alice")
    await expect(page).to_have_url(f"{hub.base}/agent")
    state = page.get_by_test_id("agent-state")
    await expect(state).to_contain_text("Paused")

    await page.get_by_role("button", name="Ready").click()
    await expect(state).to_contain_text("Ready")
    lead_name, lead_phone = page.get_by_test_id("lead-name"), page.get_by_test_id("lead-phone")
    await expect(lead_name).to_have_text(re.compile("|".join(names)))
    first = await lead_name.text_content()
    assert first is not None
    await expect(lead_phone).to_have_text(names[first])
    html = await page.content()
    for phone in phones:
        assert phone not in html and phone.removeprefix("+86") not in html

    # Keyboard only from here: focus follows the work (Call, then Hang up, then Call again).
    call_button = page.get_by_role("button", name="Call")
    await expect(call_button).to_be_focused()
    await page.keyboard.press("Enter")
    call_state = page.get_by_test_id("call-state")
    await expect(call_state).to_have_text("Talking")
    await expect(page.get_by_role("button", name="Hang up")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(call_state).to_have_text("Ended")
    await expect(page.get_by_test_id("call-duration")).to_have_text(
        re.compile(r"Talk time \d+:\d\d · You hung up")
    )
    await expect(page.get_by_role("button", name="Call again")).to_be_focused()

    await page.get_by_label("Interested", exact=True).check()
    await page.get_by_label("Note").fill("wants a trial")
    await page.get_by_role("button", name="Save and next").click()
    others = [name for name in names if name != first]
    await expect(lead_name).to_have_text(re.compile("|".join(others)))
    second = await lead_name.text_content()
    assert second is not None
    await expect(lead_phone).to_have_text(names[second])
    await expect(call_state).to_have_text("Not called yet")
    await expect(call_button).to_be_focused()
    await expect(page.get_by_role("alert")).to_have_count(0)
    async with db() as s:
        saved = (await s.execute(text("SELECT outcome, note, call_id FROM contact_attempts"))).all()
    assert [(outcome, note) for outcome, note, _ in saved] == [("interested", "wants a trial")]

    await page.get_by_label("Pause reason").select_option("lunch")
    await page.get_by_role("button", name="Pause").click()
    await expect(state).to_contain_text("Paused")
    await expect(state).to_contain_text("Lunch")
    await expect(page.get_by_role("button", name="Ready")).to_be_focused()


async def test_wrong_password_shows_an_error_and_keeps_the_user_on_the_login_page(hub_server, db, page):
    await add_user(db, "bob")
    await sign_in(page, hub_server.base, "bob", "not the password")
    await expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    await expect(page).to_have_url(f"{hub_server.base}/login")
    await expect(page.get_by_label("Username")).to_have_value("bob")


async def test_a_supervisor_asks_why_a_lead_may_not_be_called(hub_server, db, page):
    await add_user(db, "sue", role="supervisor")
    [listed, _other] = await add_leads(db, 2)
    async with db() as s:
        await s.execute(text("INSERT INTO dnc_numbers (phone_e164) VALUES (:p)"), {"p": listed})
        await s.commit()
        lead_id = (
            await s.execute(text("SELECT id FROM leads WHERE phone_e164 = :p"), {"p": listed})
        ).scalar()
    await sign_in(page, hub_server.base, "sue")
    await page.get_by_role("link", name="Why not?").first.click()
    await page.get_by_label("Lead id").fill(str(lead_id))
    await page.get_by_role("button", name="Ask").click()
    await expect(page.get_by_test_id("verdict")).to_contain_text(f"{masked(listed)} may not be called now.")
    await expect(page.get_by_test_id("verdict")).to_contain_text("Never again.")
    await expect(page.get_by_test_id("reasons")).to_contain_text("on a do-not-call list: never")
    if shots := os.environ.get("LINEUP_SCREENSHOT_DIR"):
        await page.screenshot(path=f"{shots}/why-not.png", full_page=True)


async def test_agent_dials_a_typed_number_and_a_refused_one_says_why(start_hub, db, page):
    hub = start_hub(LINEUP_SIM_TALK_S="[60, 61]")
    await add_user(db, "alice", extension="2001")
    await sign_in(page, hub.base, "alice")
    await page.get_by_text("Dial a number by hand").click()
    number = page.get_by_label("Phone number")
    await number.fill("12345")
    await page.get_by_role("button", name="Dial", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("not a valid phone number")

    await number.fill("138 0013 8000")
    await page.get_by_role("button", name="Dial", exact=True).click()
    await expect(page.get_by_test_id("call-state")).to_have_text(re.compile("Ringing…|Talking"))
    await page.get_by_role("button", name="Hang up").click()
    await expect(page.get_by_test_id("call-state")).to_have_text("Ended")
    async with db() as s:
        attempt = (await s.execute(text("SELECT outcome, phone_e164 FROM contact_attempts"))).one()
    assert tuple(attempt) == ("manual", "+8613800138000")


async def test_an_inbound_call_pops_the_caller_and_a_new_caller_is_saved_from_the_pop(start_hub, db, page):
    hub = start_hub(LINEUP_SIM_TALK_S="[60, 61]")
    alice = await add_user(db, "alice", extension="1001")
    await add_user(db, "sue", role="supervisor")
    await add_hotline(db, [alice])
    (phone,) = await add_leads(db, 1, owner_id=alice, seed=21)
    await sign_in(page, hub.base, "alice")
    await page.get_by_role("button", name="Ready").click()
    lead_name = page.get_by_test_id("lead-name")
    await expect(lead_name).to_have_text("Lead 0")
    async with await api_client(hub.base, "sue") as sue:
        assert (await sue.post("/api/simulator/calls", json={"caller": "13912345678"})).status_code == 202
        pop = page.get_by_test_id("screen-pop")
        await expect(pop).to_contain_text("New caller")
        await expect(page.get_by_test_id("agent-state")).to_contain_text("On a call")
        await pop.get_by_label("Name").fill("Wang Fang")
        await pop.get_by_role("button", name="Save new customer").click()
        await expect(lead_name).to_have_text("Wang Fang")
        await page.get_by_role("button", name="Hang up").click()
        await expect(pop).to_be_hidden()
        await expect(page.get_by_test_id("agent-state")).to_contain_text("Wrap-up")
        await page.get_by_label("Not interested", exact=True).check()
        await page.get_by_role("button", name="Save and next").click()
        await expect(page.get_by_test_id("agent-state")).to_contain_text("Ready")

        assert (await sue.post("/api/simulator/calls", json={"caller": phone})).status_code == 202
        await expect(pop).to_contain_text("Lead 0")
        await expect(page.get_by_test_id("pop-owner")).to_have_text("Alice")
        await expect(page.get_by_test_id("pop-phone")).to_have_text(masked(phone))
        await expect(lead_name).to_have_text("Lead 0")  # the caller's lead opens on answer
    if shots := os.environ.get("LINEUP_SCREENSHOT_DIR"):
        await page.screenshot(path=f"{shots}/screen-pop.png", full_page=True)
