"""The contact policy pages: the list, the edit form, its refusals, roles and CSRF, and a real browser."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import text

from hub.policy import DEFAULT_POLICY_JSON, policy_json
from storage import contact as contact_store
from tests.browser import sign_in
from tests.seed import TEST_POLICY, add_user, api_client, csrf_in, signed_in

EVERYDAY = [0, 1, 2, 3, 4, 5, 6]


async def add_campaign(db, name: str, policy: dict[str, Any] | None = None) -> int:
    settings = {"contact": policy} if policy else {}
    async with db() as s:
        campaign_id = (
            await s.execute(
                text("INSERT INTO campaigns (name, kind, settings) VALUES (:n, 'sales', :s) RETURNING id"),
                {"n": name, "s": json.dumps(settings)},
            )
        ).scalar()
        await s.commit()
    return campaign_id


async def stored_policy(db, campaign_id: int) -> dict[str, Any] | None:
    async with db() as s:
        return (
            await s.execute(
                text("SELECT settings -> 'contact' FROM campaigns WHERE id = :c"), {"c": campaign_id}
            )
        ).scalar()


async def audit_rows(db, action: str) -> list[tuple[str, dict[str, Any], str]]:
    async with db() as s:
        rows = await s.execute(
            text("SELECT target, detail, ip FROM audit_log WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [tuple(r) for r in rows]


def empty_form(csrf: str) -> dict[str, Any]:
    """Every input of the edit form, blank (no caps, no pauses, no windows)."""
    form: dict[str, Any] = {"csrf": csrf, "blackout_dates": "", "zone": "Asia/Shanghai"}
    for group in ("lead_caps", "phone_caps"):
        for cap in ("per_day", "per_24h", "lifetime"):
            form[f"{group}.{cap}"] = ""
    for row in range(3):
        form[f"window-{row}-start"] = form[f"window-{row}-end"] = ""
    return form


def input_tag(html: str, element_id: str) -> str:
    match = re.search(rf'<(?:input|textarea)[^>]*\bid="{re.escape(element_id)}"[^>]*>', html)
    assert match, f"no input #{element_id}"
    return match.group(0)


async def test_a_supervisor_saves_a_campaign_policy_through_the_form(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    campaign = await add_campaign(db, "Evening")
    page = await signed_in(hub_server.base, "sue")
    try:
        listing = await page.get("/policies")
        assert listing.status_code == 200
        assert (
            f'href="/policies/campaign/{campaign}"' in listing.text and "Follows the default" in listing.text
        )
        # Supervisors see the default and the system-wide limits, but only administrators edit them.
        assert (
            'href="/policies/system"' not in listing.text and 'href="/policies/default"' not in listing.text
        )
        assert listing.text.count("Read only: administrators change it.") == 2
        assert 'href="/policies" aria-current="page"' in listing.text, "the nav links the page"

        edit = await page.get(f"/policies/campaign/{campaign}")
        assert edit.status_code == 200 and "follows the default policy" in edit.text
        form = empty_form(csrf_in(edit.text))
        form |= {
            "lead_caps.per_day": "3",
            "lead_caps.lifetime": "9",
            "phone_caps.per_day": "4",
            "delay-no_answer": "90",
            "delay-busy": "10",
            "delay-dnc": "5",  # "never again" wins over the typed minutes
            "never-dnc": "on",
            "never-invalid_number": "on",
            "window-0-day": ["0", "1", "2", "3", "4"],
            "window-0-start": "09:00",
            "window-0-end": "12:00",
            "window-1-day": ["6"],  # days without times: the row was cleared
            "window-2-day": ["5"],
            "window-2-start": "10:00",
            "window-2-end": "24:00",
            "blackout_dates": "2026-10-01, 2026-10-02\n2026-10-03",
            "zone": "Asia/Tokyo",
            "zone_override": "on",
        }
        saved = await page.post(f"/policies/campaign/{campaign}", data=form)
        assert (
            saved.status_code == 303 and saved.headers["location"] == f"/policies?saved=campaign-{campaign}"
        )
        notice = await page.get(saved.headers["location"])
        assert "Saved: Evening." in notice.text
        assert ">Mon–Fri 09:00–12:00<" in notice.text and ">Sat 10:00–24:00<" in notice.text
        assert "No answer: 1 h 30 min" in notice.text

        again = await page.get(f"/policies/campaign/{campaign}")
        assert 'value="3"' in input_tag(again.text, "cap-lead_caps-per_day")
        assert "checked" in input_tag(again.text, "never-dnc")
        assert "follows the default policy" not in again.text
    finally:
        await page.aclose()

    expected = {
        "lead_caps": {"per_day": 3, "per_24h": None, "lifetime": 9},
        "phone_caps": {"per_day": 4, "per_24h": None, "lifetime": None},
        "retry_after_minutes": {"no_answer": 90, "busy": 10, "dnc": None, "invalid_number": None},
        "windows": [
            {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "12:00"},
            {"weekdays": [5], "start": "10:00", "end": "24:00"},
        ],
        "blackout_dates": ["2026-10-01", "2026-10-02", "2026-10-03"],
        "zone": "Asia/Tokyo",
        "zone_override": True,
    }
    async with await api_client(hub_server.base, "sue") as api:
        answer = (await api.get(f"/api/campaigns/{campaign}/contact-policy")).json()
    assert answer == {"source": "campaign", "policy": expected}
    [(target, detail, ip)] = await audit_rows(db, "campaign_updated")
    assert target == f"campaign:{campaign}" and ip == "127.0.0.1"
    assert detail["changed"]["settings"]["to"]["contact"] == expected


async def test_contradictions_are_refused_at_their_fields_and_nothing_is_saved(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    await add_user(db, "root", role="admin")
    campaign = await add_campaign(db, "Evening")
    page = await signed_in(hub_server.base, "sue")
    try:
        form = empty_form(csrf_in((await page.get(f"/policies/campaign/{campaign}")).text))
        form |= {
            "lead_caps.per_day": "0",
            "delay-busy": "soon",
            "delay-no_answer": "9" * 30,  # refused by name, not an overflow
            "window-0-day": ["0"],
            "window-0-start": "09:00",
            "window-0-end": "12:00",
            # Row 1 is empty; row 2 is the policy's second window and must be named as row 3.
            "window-2-day": ["1", "2"],
            "window-2-start": "20:00",
            "window-2-end": "08:00",
            "blackout_dates": "2026-10-01\n2026-02-30",
            "zone": "Mars/Olympus_Mons",
        }
        refused = await page.post(f"/policies/campaign/{campaign}", data=form)
        assert refused.status_code == 400
        html = refused.text
        summary = html[html.index('data-testid="policy-problems"') : html.index('class="policy-form"')]
        for field in (
            "lead_caps.per_day",
            "delay-busy",
            "delay-no_answer",
            "window-2",
            "blackout_dates",
            "zone",
        ):
            assert f'data-field="{field}"' in summary, field
        assert "Per lead: Calls a day" in summary and "Calling hours, row 3" in summary
        assert 'href="#window-2-start"' in summary
        for element_id, kept in (
            ("cap-lead_caps-per_day", 'value="0"'),
            ("delay-busy", 'value="soon"'),
            ("window-2-start", 'value="20:00"'),
            ("zone", 'value="Mars/Olympus_Mons"'),
            ("blackout-dates", ""),
        ):
            tag = input_tag(html, element_id)
            assert 'aria-invalid="true"' in tag and kept in tag, element_id
        assert re.search(r'id="cap-lead_caps-per_day-error">a cap of 0 would forbid every call', html)
        assert re.search(r'id="window-2-error">ends \(08:00\) before it starts \(20:00\)', html)
        assert re.search(r"id=\"blackout-dates-error\">&#39;2026-02-30&#39; is not a date", html)
        assert re.search(r"id=\"zone-error\">unknown time zone", html)
        assert "2026-10-01\n2026-02-30</textarea>" in html, "the typed dates are kept"
        assert 'data-testid="follows-default"' in html

        async with await api_client(hub_server.base, "root") as admin:
            mornings = {"windows": [{"weekdays": EVERYDAY, "start": "06:00", "end": "07:00"}]}
            assert (await admin.put("/api/contact-policies/system", json=mornings)).status_code == 200
            huge = await admin.put(
                f"/api/campaigns/{campaign}/contact-policy", json={"retry_after_minutes": {"busy": 10**20}}
            )
            assert huge.status_code == 400 and huge.json()["problems"][0]["field"] == "policy"
        evenings = empty_form(form["csrf"]) | {
            "window-0-day": ["0", "1"],
            "window-0-start": "20:00",
            "window-0-end": "21:00",
        }
        apart = await page.post(f"/policies/campaign/{campaign}", data=evenings)
        assert apart.status_code == 400
        assert re.search(r'id="windows-error">never overlap the system-wide calling hours', apart.text)
        no_hours = await page.post(f"/policies/campaign/{campaign}", data=empty_form(form["csrf"]))
        assert no_hours.status_code == 400 and "at least one calling window is needed" in no_hours.text
    finally:
        await page.aclose()
    assert await stored_policy(db, campaign) is None
    assert await audit_rows(db, "campaign_updated") == []


async def test_roles_csrf_and_unknown_policies(hub_server, db):
    await add_user(db, "ann", role="sales")
    await add_user(db, "sue", role="supervisor")
    await add_user(db, "root", role="admin")
    campaign = await add_campaign(db, "Evening", DEFAULT_POLICY_JSON)
    valid = {"window-0-day": ["0"], "window-0-start": "09:00", "window-0-end": "17:00"}

    agent = await signed_in(hub_server.base, "ann")
    sue = await signed_in(hub_server.base, "sue")
    admin = await signed_in(hub_server.base, "root")
    try:
        csrf = csrf_in((await agent.get("/agent")).text)
        assert (await agent.get("/policies")).status_code == 403
        assert (await agent.get(f"/policies/campaign/{campaign}")).status_code == 403
        posted = await agent.post(f"/policies/campaign/{campaign}", data=empty_form(csrf) | valid)
        assert posted.status_code == 403
        assert "/policies" not in (await agent.get("/agent")).text, "no nav link for agents"

        csrf = csrf_in((await sue.get("/policies")).text)
        assert (await sue.get("/policies/system")).status_code == 403
        assert (await sue.post("/policies/system", data=empty_form(csrf) | valid)).status_code == 403
        assert (await sue.post("/policies/default", data=empty_form(csrf) | valid)).status_code == 403
        assert (await sue.get(f"/policies/campaign/{campaign + 100}")).status_code == 404
        missing = await sue.post(f"/policies/campaign/{campaign + 100}", data=empty_form(csrf) | valid)
        assert missing.status_code == 404 and "No such policy" in missing.text

        for forged in ({}, {"csrf": "forged"}):
            without = {k: v for k, v in (empty_form(csrf) | valid).items() if k != "csrf"} | forged
            expired = await sue.post(f"/policies/campaign/{campaign}", data=without)
            assert expired.status_code == 400 and "The form expired" in expired.text
            assert 'value="17:00"' in input_tag(expired.text, "window-0-end"), "the typed values are kept"

        listing = await admin.get("/policies")
        assert 'href="/policies/system"' in listing.text and 'href="/policies/default"' in listing.text
        assert "Read only" not in listing.text
        assert (await admin.get("/policies/weekly")).status_code == 404
        csrf = csrf_in((await admin.get("/policies/system")).text)
        capped = empty_form(csrf) | valid | {"phone_caps.per_day": "6"}
        saved = await admin.post("/policies/system", data=capped)
        assert saved.status_code == 303 and saved.headers["location"] == "/policies?saved=system"
        assert "Saved: System-wide limits." in (await admin.get(saved.headers["location"])).text
    finally:
        for client in (agent, sue, admin):
            await client.aclose()

    assert await stored_policy(db, campaign) == DEFAULT_POLICY_JSON, "refused forms changed nothing"
    async with db() as s:
        assert await contact_store.setting(s, contact_store.DEFAULT_POLICY) == policy_json(TEST_POLICY)
        system = await contact_store.setting(s, contact_store.SYSTEM_POLICY)
    assert system["phone_caps"]["per_day"] == 6 and system["windows"][0]["end"] == "17:00"
    [(target, detail, _ip)] = await audit_rows(db, "contact_policy_set")
    assert target == contact_store.SYSTEM_POLICY and detail == {"policy": system}
    assert await audit_rows(db, "campaign_updated") == []


# --- in a real browser -------------------------------------------------------------------------


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield page
    await context.close()
    assert errors == [], f"the page logged errors: {errors}"


async def test_a_supervisor_edits_caps_and_hours_in_the_browser(hub_server, db, page):
    await add_user(db, "sue", role="supervisor")
    await add_campaign(db, "Evening", DEFAULT_POLICY_JSON)
    await sign_in(page, hub_server.base, "sue")
    await page.get_by_role("link", name="Contact policies").first.click()
    await page.get_by_role("link", name="Edit Evening").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Contact policy: Evening")

    await page.get_by_label("Calls a day").first.fill("5")
    await page.get_by_label("Row 1: from").fill("08:30")
    await page.get_by_label("Row 1: until").fill("12:30")
    await page.get_by_role("group", name="Row 1: days").get_by_label("Fri").uncheck()
    await page.get_by_role("group", name="Row 3: days").get_by_label("Sat").focus()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Space")  # the days are reachable and ticked with the keyboard
    await expect(page.get_by_role("group", name="Row 3: days").get_by_label("Sun")).to_be_checked()
    await page.get_by_role("button", name="Save policy").click()

    await expect(page.get_by_test_id("policy-saved")).to_have_text(
        "Saved: Evening. The hub applies it at once."
    )
    row = page.locator('[data-policy^="campaign-"]')
    await expect(row.locator(".hours")).to_have_text(
        ["Mon–Thu 08:30–12:30", "Mon–Fri 13:30–20:00", "Sat, Sun 10:00–18:00"]
    )
    await expect(row).to_contain_text("Lead: 5")

    await row.get_by_role("link", name="Edit Evening").click()
    await expect(page.get_by_label("Calls a day").first).to_have_value("5")
    await expect(page.get_by_label("Row 1: from")).to_have_value("08:30")
    await expect(page.get_by_label("Row 4: from")).to_have_value("")  # spare rows to add hours
    if shots := os.environ.get("LINEUP_SCREENSHOT_DIR"):
        await page.screenshot(path=f"{shots}/policy-editor.png", full_page=True)
