"""The "Why not?" page and API: the contact policy's answer for a lead or a number, with reasons."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

from sqlalchemy import text

from hub.policy import Caps, ContactPolicy, first_instant, local, policy_json, zone_named
from storage import contact as contact_store
from tests.seed import add_leads, add_user, api_client, signed_in

SHANGHAI = zone_named("Asia/Shanghai")


async def test_reasons_and_earliest_times_for_leads_and_numbers(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    await add_user(db, "ann", role="sales")
    listed, blacked_out, called = await add_leads(db, 3)
    today = local(datetime.now(SHANGHAI), SHANGHAI).date()
    async with db() as s:
        await s.execute(text("INSERT INTO dnc_numbers (phone_e164) VALUES (:p)"), {"p": listed})
        campaign = (
            await s.execute(
                text(
                    "INSERT INTO campaigns (name, kind, settings) VALUES ('Quiet', 'sales', :s) RETURNING id"
                ),
                {"s": json.dumps({"contact": policy_json(ContactPolicy(blackout_dates=frozenset({today})))})},
            )
        ).scalar()
        await s.execute(
            text("UPDATE leads SET campaign_id = :c WHERE phone_e164 = :p"), {"c": campaign, "p": blacked_out}
        )
        await s.execute(
            text(
                "INSERT INTO contact_attempts (lead_id, agent_id, outcome, phone_e164)"
                " SELECT id, 1, 'no_answer', phone_e164 FROM leads WHERE phone_e164 = :p"
            ),
            {"p": called},
        )
        await contact_store.put_setting(
            s, contact_store.SYSTEM_POLICY, policy_json(ContactPolicy(phone_caps=Caps(per_day=1))), None
        )
        await s.commit()
        ids = dict((await s.execute(text("SELECT phone_e164, id FROM leads"))).all())

    async with await api_client(hub_server.base, "sue") as api:
        dnc = (await api.get(f"/api/leads/{ids[listed]}/decision")).json()
        assert (dnc["dialable"], dnc["earliest"]) == (False, None)
        assert [r["code"] for r in dnc["reasons"]] == ["do_not_call"]
        assert "*" in dnc["phone_masked"] and listed[-4:] in dnc["phone_masked"]

        quiet = (await api.get(f"/api/leads/{ids[blacked_out]}/decision")).json()
        assert [r["code"] for r in quiet["reasons"]] == ["blackout_date"]
        asked = datetime.fromisoformat(quiet["at"])
        tomorrow = first_instant(local(asked, SHANGHAI).date() + timedelta(days=1), time(0), SHANGHAI)
        assert datetime.fromisoformat(quiet["earliest"]) == tomorrow
        assert quiet["customer_zone"] == "Asia/Shanghai" and "a day without calls" in quiet["main_reason"]

        number = (await api.get(f"/api/phones/{called}/decision")).json()
        assert [r["code"] for r in number["reasons"]] == ["phone_cap_day"]
        assert number["lead_id"] is None and "called 1 times today (cap 1)" in number["reasons"][0]["message"]
        fresh = (await api.get("/api/phones/+8613700000001/decision")).json()
        assert fresh["dialable"] and fresh["reasons"] == []

        assert (await api.get("/api/leads/999999/decision")).status_code == 404
        assert (await api.get("/api/phones/12345/decision")).status_code == 400
        assert (await api.get(f"/api/phones/{called}/decision?campaign_id=999")).status_code == 404

    async with await api_client(hub_server.base, "ann") as agent_api:
        assert (await agent_api.get(f"/api/leads/{ids[listed]}/decision")).status_code == 403

    page = await signed_in(hub_server.base, "sue")
    try:
        answer = await page.get("/why-not", params={"lead": ids[blacked_out]})
        assert answer.status_code == 200
        assert "may not be called now" in answer.text and 'data-code="blackout_date"' in answer.text
        missing = await page.get("/why-not", params={"lead": "abc"})
        assert missing.status_code == 400 and "named by its number" in missing.text
    finally:
        await page.aclose()


async def test_policies_are_saved_validated_and_applied_at_once(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    await add_user(db, "root", role="admin")
    await add_leads(db, 1)
    async with db() as s:
        campaign = (
            await s.execute(
                text("INSERT INTO campaigns (name, kind) VALUES ('Evening', 'sales') RETURNING id")
            )
        ).scalar()
        await s.execute(text("UPDATE leads SET campaign_id = :c"), {"c": campaign})
        await s.commit()
        lead_id = (await s.execute(text("SELECT id FROM leads"))).scalar()
    everyday = [0, 1, 2, 3, 4, 5, 6]
    closed_today = {
        "lead_caps": {"per_day": 2},
        "retry_after_minutes": {"no_answer": 30},
        "windows": [{"weekdays": everyday, "start": "00:00", "end": "24:00"}],
        "blackout_dates": [local(datetime.now(SHANGHAI), SHANGHAI).date().isoformat()],
    }
    async with await api_client(hub_server.base, "sue") as api:
        before = (await api.get(f"/api/campaigns/{campaign}/contact-policy")).json()
        assert before["source"] == "default"  # the tests' default: always open
        bad = await api.put(
            f"/api/campaigns/{campaign}/contact-policy",
            json={
                "lead_caps": {"per_day": 0},
                "windows": [{"weekdays": [1], "start": "20:00", "end": "08:00"}],
            },
        )
        assert bad.status_code == 400
        assert {p["field"] for p in bad.json()["problems"]} == {"lead_caps.per_day", "windows[0]"}
        assert (await api.get(f"/api/leads/{lead_id}/decision")).json()["dialable"], "nothing was saved"
        form = await api.put(f"/api/campaigns/{campaign}/contact-policy", content=json.dumps(closed_today))
        assert form.status_code == 415, "writes take JSON only"

        saved = await api.put(f"/api/campaigns/{campaign}/contact-policy", json=closed_today)
        assert saved.status_code == 200 and saved.json()["policy"]["lead_caps"]["per_day"] == 2
        decision = (await api.get(f"/api/leads/{lead_id}/decision")).json()
        assert [r["code"] for r in decision["reasons"]] == ["blackout_date"], "applied at once"
        assert (await api.put("/api/contact-policies/system", json=closed_today)).status_code == 403
        assert (await api.get(f"/api/campaigns/{campaign + 100}/contact-policy")).status_code == 404

    async with await api_client(hub_server.base, "root") as admin:
        assert (await admin.get("/api/contact-policies/system")).json()["source"] == "built-in"
        mornings = {"windows": [{"weekdays": everyday, "start": "06:00", "end": "07:00"}]}
        assert (await admin.put("/api/contact-policies/system", json=mornings)).status_code == 200
        evenings = {**closed_today, "windows": [{"weekdays": everyday, "start": "20:00", "end": "21:00"}]}
        refused = await admin.put(f"/api/campaigns/{campaign}/contact-policy", json=evenings)
        assert refused.status_code == 400
        assert refused.json()["problems"] == [
            {"field": "windows", "message": "never overlap the system-wide calling hours"}
        ]
        assert (await admin.put("/api/contact-policies/weekly", json=mornings)).status_code == 404
    async with db() as s:
        actions = (await s.execute(text("SELECT action FROM audit_log ORDER BY id"))).scalars().all()
        stored = (
            await s.execute(
                text("SELECT settings -> 'contact' FROM campaigns WHERE id = :c"), {"c": campaign}
            )
        ).scalar()
    assert "campaign_updated" in actions and "contact_policy_set" in actions
    assert stored["windows"][0]["end"] == "24:00" and stored["zone"] == "Asia/Shanghai"
