"""Campaigns (lead pools) against a running hub and a real database: pages, API, rules, audit."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from sqlalchemy import text

from storage import campaigns as store
from storage import users as user_store
from tests.seed import add_leads, add_user, csrf_in, signed_in, token


async def _create(http: httpx.AsyncClient, name: str, kind: str) -> int:
    csrf = csrf_in((await http.get("/campaigns")).text)
    created = await http.post("/campaigns", data={"csrf": csrf, "name": name, "kind": kind})
    assert created.status_code == 303, created.text
    location = created.headers["location"]
    assert re.fullmatch(r"/campaigns/\d+\?created=1", location)
    return int(location.split("/")[2].split("?")[0])


async def _save(http: httpx.AsyncClient, campaign_id: int, **fields) -> httpx.Response:
    page = await http.get(f"/campaigns/{campaign_id}")
    assert page.status_code == 200
    return await http.post(f"/campaigns/{campaign_id}", data={"csrf": csrf_in(page.text), **fields})


async def _in_team(db, user_id: int, team: str) -> int:
    async with db() as s:
        team_id = (await user_store.team_named(s, team)).id
        await s.execute(text("UPDATE users SET team_id = :t WHERE id = :u"), {"t": team_id, "u": user_id})
        await s.commit()
    return team_id


async def _members(db, campaign_id: int) -> tuple[list[int], list[int]]:
    async with db() as s:
        return await store.members_of(s, campaign_id)


def _error(page: httpx.Response) -> str:
    match = re.search(r'data-testid="campaign-error">([^<]*)<', page.text)
    assert match, page.text[:2000]
    return match.group(1)


async def test_create_on_the_page_refuses_duplicate_names_and_bad_input(hub_server, db):
    sue = await add_user(db, "sue", role="supervisor")
    http = await signed_in(hub_server.base, "sue")

    empty = await http.get("/campaigns")
    assert empty.status_code == 200 and 'data-testid="campaigns-empty"' in empty.text
    for field in ("campaign-name", "kind-sales", "kind-tmk"):
        assert f'for="{field}"' in empty.text, f"{field} has a label"

    spring = await _create(http, "Spring sales", "sales")
    page = await http.get(f"/campaigns/{spring}?created=1")
    assert "<h1>Spring sales</h1>" in page.text and 'data-testid="campaign-created"' in page.text
    listing = await http.get("/campaigns")
    assert f'data-campaign-id="{spring}"' in listing.text and "Spring sales" in listing.text

    csrf = csrf_in(listing.text)
    for form, message in (
        ({"name": "  Spring sales ", "kind": "tmk"}, "A campaign with that name exists"),
        ({"name": "   ", "kind": "sales"}, "Give the campaign a name"),
        ({"name": "x" * 101, "kind": "sales"}, "The name is too long"),
        ({"name": "Autumn", "kind": "retail"}, "Choose the kind: sales or TMK"),
    ):
        refused = await http.post("/campaigns", data={"csrf": csrf, **form})
        assert refused.status_code == 400 and message in _error(refused), form
        # What the user typed is still there to correct.
        assert f'value="{form["name"].strip()}"' in refused.text
    no_csrf = await http.post("/campaigns", data={"name": "Autumn", "kind": "sales"})
    assert no_csrf.status_code == 400 and "The form expired" in _error(no_csrf)

    # Unknown campaigns are 404 on the page and on save; ids too big for the column too.
    for path in ("/campaigns/999999", "/campaigns/99999999999999"):
        assert (await http.get(path)).status_code == 404
        assert (await http.post(path, data={"csrf": csrf, "name": "x"})).status_code == 404
    await http.aclose()

    async with db() as s:
        campaigns = await store.list_campaigns(s)
        rows = (
            await s.execute(
                text("SELECT actor_id, target, detail FROM audit_log WHERE action = 'campaign_created'")
            )
        ).all()
    assert [(c.name, c.kind) for c in campaigns] == [("Spring sales", "sales")], "refusals stored nothing"
    assert rows == [(sue, f"campaign:{spring}", {"name": "Spring sales", "kind": "sales", "settings": {}})]


async def test_members_by_kind_and_team_on_the_page(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    sam = await add_user(db, "sam", role="sales")
    tina = await add_user(db, "tina", role="tmk")
    sid = await add_user(db, "sid", role="sales")
    tom = await add_user(db, "tom", role="tmk")
    north = await _in_team(db, sid, "North")
    await _in_team(db, tom, "North")  # a TMK agent in a team attached to a sales campaign
    http = await signed_in(hub_server.base, "sue")
    sales = await _create(http, "Sales pool", "sales")
    tmk = await _create(http, "Trial bookings", "tmk")

    page = await http.get(f"/campaigns/{sales}")
    assert f'id="user-{sam}"' in page.text and f'id="user-{sid}"' in page.text
    assert f'id="user-{tina}"' not in page.text, "only agents of the campaign's kind are offered"
    assert f'for="team-{north}"' in page.text and "1 sales agent" in page.text

    saved = await _save(http, sales, name="Sales pool", active="on", user_id=str(sam), team_id=str(north))
    assert saved.status_code == 303 and saved.headers["location"] == f"/campaigns/{sales}?saved=1"
    assert await _members(db, sales) == ([sam], [north])
    listing = await http.get("/campaigns")
    row = re.search(rf'data-campaign-id="{sales}".*?</tr>', listing.text, re.S).group(0)
    assert '<td data-count="members">1</td>' in row and '<td data-count="teams">1</td>' in row

    # A TMK agent in a sales campaign is refused, and nothing of the save is kept.
    refused = await _save(
        http, sales, name="Renamed", active="on", user_id=[str(sam), str(tina)], team_id=str(north)
    )
    assert refused.status_code == 400
    assert "Tina (tina) is a TMK agent and cannot join a sales campaign" in _error(refused)
    assert await _members(db, sales) == ([sam], [north])
    async with db() as s:
        assert (await store.get_campaign(s, sales)).name == "Sales pool"

    assert (await _save(http, tmk, name="Trial bookings", active="on", user_id=str(tina))).status_code == 303
    async with db() as s:
        assert await store.campaigns_of_agent(s, sam) == [sales]
        assert await store.campaigns_of_agent(s, sid) == [sales], "through the team"
        assert await store.campaigns_of_agent(s, tina) == [tmk]
        assert await store.campaigns_of_agent(s, tom) == [], "a team brings only agents of the kind"

    # Pausing a campaign takes it off its agents' lists (the active box unchecked).
    paused = await _save(http, sales, name="Sales pool", user_id=str(sam), team_id=str(north))
    assert paused.status_code == 303
    async with db() as s:
        assert await store.campaigns_of_agent(s, sid) == []
        assert (await store.get_campaign(s, sales)).active is False
    await http.aclose()


async def test_handoff_must_be_a_sales_campaign(hub_server, db):
    sue = await add_user(db, "sue", role="supervisor")
    http = await signed_in(hub_server.base, "sue")
    sales = await _create(http, "Sales pool", "sales")
    tmk = await _create(http, "Trial bookings", "tmk")
    other_tmk = await _create(http, "Other TMK", "tmk")

    page = await http.get(f"/campaigns/{tmk}")
    assert 'for="handoff"' in page.text and f'<option value="{sales}"' in page.text
    assert f'<option value="{other_tmk}"' not in page.text
    assert 'for="handoff"' not in (await http.get(f"/campaigns/{sales}")).text, (
        "sales campaigns hand off nothing"
    )

    for handoff, message in (
        (str(other_tmk), "is not a sales campaign"),
        ("999999", "There is no campaign 999999 to hand leads off to"),
        ("abc", "The selection is not valid"),
    ):
        refused = await _save(
            http, tmk, name="Trial bookings", active="on", description="x", handoff_campaign_id=handoff
        )
        assert refused.status_code == 400 and message in _error(refused), handoff
    async with db() as s:
        assert (await store.get_campaign(s, tmk)).settings == {}

    ok = await _save(
        http,
        tmk,
        name="Trial bookings",
        active="on",
        description="  Book a free lesson  ",
        handoff_campaign_id=str(sales),
    )
    assert ok.status_code == 303
    async with db() as s:
        assert (await store.get_campaign(s, tmk)).settings == {
            "description": "Book a free lesson",
            "handoff_campaign_id": sales,
        }
        # A sales campaign cannot hand off; settings keys the store does not know are refused.
        for campaign_id, settings, code in (
            (sales, {"handoff_campaign_id": sales}, "handoff_not_tmk"),
            (tmk, {"handof_campaign_id": sales}, "settings_unknown"),
        ):
            with pytest.raises(store.CampaignError) as refused_store:
                await store.update_campaign(s, campaign_id, "X", True, settings, actor_id=sue)
            assert refused_store.value.problems[0].code == code
    listing = await http.get("/campaigns")
    row = re.search(rf'data-campaign-id="{tmk}".*?</tr>', listing.text, re.S).group(0)
    assert "<td>Sales pool</td>" in row and "Book a free lesson" in row

    # Renaming onto another campaign's name is refused like creating it.
    taken = await _save(http, tmk, name="Sales pool", active="on", handoff_campaign_id=str(sales))
    assert taken.status_code == 400 and "A campaign with that name exists" in _error(taken)
    await http.aclose()

    async with db() as s:
        updates = (
            await s.execute(
                text("SELECT actor_id, target, detail FROM audit_log WHERE action = 'campaign_updated'")
            )
        ).all()
        members = (
            await s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'campaign_members_set'"))
        ).scalar()
    assert len(updates) == 1 and members == 1, "refused saves leave no audit rows"
    actor, target, detail = updates[0]
    assert (actor, target) == (sue, f"campaign:{tmk}")
    assert detail["changed"]["settings"]["to"]["handoff_campaign_id"] == sales


async def test_api_with_bearer_token_counts_and_permissions(hub_server, db):
    sue = await add_user(db, "sue", role="supervisor")
    sam = await add_user(db, "sam", role="sales")
    tina = await add_user(db, "tina", role="tmk")
    north = await _in_team(db, sam, "North")
    bearer = {"Authorization": f"Bearer {await token(hub_server.base, 'sue')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=bearer) as api:
        created = await api.post("/api/campaigns", json={"name": "API sales", "kind": "sales"})
        assert created.status_code == 201, created.text
        campaign = created.json()
        assert campaign["name"] == "API sales" and campaign["kind"] == "sales" and campaign["active"]
        tmk = await api.post(
            "/api/campaigns",
            json={"name": "API TMK", "kind": "tmk", "settings": {"handoff_campaign_id": campaign["id"]}},
        )
        assert tmk.status_code == 201 and tmk.json()["settings"]["handoff_campaign_id"] == campaign["id"]

        duplicate = await api.post("/api/campaigns", json={"name": "API sales", "kind": "tmk"})
        assert duplicate.status_code == 409 and duplicate.json()["error"] == "conflict"
        assert "A campaign with that name exists" in duplicate.json()["message"]
        for body, status in (
            ({"name": "X", "kind": "retail"}, 400),
            ({"name": 5, "kind": "sales"}, 400),
            ({"name": "Y", "kind": "tmk", "settings": {"handoff_campaign_id": tmk.json()["id"]}}, 400),
            ([1, 2], 400),
        ):
            assert (await api.post("/api/campaigns", json=body)).status_code == status, body
        not_json = await api.post("/api/campaigns", content=b"name=x", headers={"content-type": "text/plain"})
        assert not_json.status_code == 415

        members = f"/api/campaigns/{campaign['id']}/members"
        put = await api.put(members, json={"user_ids": [sam, sam], "team_ids": [north]})
        assert put.status_code == 200 and put.json() == {
            "campaign_id": campaign["id"],
            "user_ids": [sam],
            "team_ids": [north],
        }
        wrong = await api.put(members, json={"user_ids": [tina, 999999], "team_ids": [424242]})
        assert wrong.status_code == 400
        assert [p["code"] for p in wrong.json()["problems"]] == [
            "user_wrong_role",
            "user_missing",
            "team_missing",
        ]
        assert "Tina (tina) is a TMK agent and cannot join a sales campaign" in wrong.json()["message"]
        assert "Agent 999999 does not exist" in wrong.json()["message"]
        for body in (
            {"user_ids": ["1"], "team_ids": []},
            {"user_ids": [True], "team_ids": []},
            {"user_ids": []},
        ):
            assert (await api.put(members, json=body)).status_code == 400, body
        assert (await api.put(members, json={"user_ids": [0], "team_ids": []})).status_code == 400
        missing = await api.put("/api/campaigns/999999/members", json={"user_ids": [], "team_ids": []})
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"

        # Open leads: neither closed nor deleted.
        await add_leads(db, 5)
        async with db() as s:
            await s.execute(text("UPDATE leads SET campaign_id = :c"), {"c": campaign["id"]})
            await s.execute(text("UPDATE leads SET status = 'closed' WHERE id = (SELECT min(id) FROM leads)"))
            await s.execute(
                text("UPDATE leads SET deleted_at = now() WHERE id = (SELECT max(id) FROM leads)")
            )
            await s.commit()
        listed = {c["name"]: c for c in (await api.get("/api/campaigns")).json()["campaigns"]}
        assert listed["API sales"] | {"created_at": None} == {
            "id": campaign["id"],
            "name": "API sales",
            "kind": "sales",
            "active": True,
            "settings": {},
            "created_at": None,
            "members": 1,
            "teams": 1,
            "open_leads": 3,
        }
        assert listed["API TMK"]["open_leads"] == 0 and listed["API TMK"]["members"] == 0

    # A sales agent may not manage campaigns: 403 for the API and the pages; no sign-in is 401.
    agent = {"Authorization": f"Bearer {await token(hub_server.base, 'sam')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=agent) as http:
        assert (await http.get("/api/campaigns")).status_code == 403
        assert (await http.post("/api/campaigns", json={"name": "Mine", "kind": "sales"})).status_code == 403
        assert (await http.put(members, json={"user_ids": [], "team_ids": []})).status_code == 403
        assert (await http.get("/campaigns", headers={"accept": "text/html"})).status_code == 403
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30) as anonymous:
        assert (await anonymous.get("/api/campaigns")).status_code == 401
    page_agent = await signed_in(hub_server.base, "sam")
    assert (await page_agent.get("/campaigns")).status_code == 403
    assert (await page_agent.get(f"/campaigns/{campaign['id']}")).status_code == 403
    await page_agent.aclose()

    async with db() as s:
        audit = (
            await s.execute(
                text(
                    "SELECT action, actor_id, target, detail FROM audit_log"
                    " WHERE action LIKE 'campaign%' ORDER BY id"
                )
            )
        ).all()
        assert await store.members_of(s, campaign["id"]) == ([sam], [north]), "refused PUTs changed nothing"
    assert [(a, actor, target) for a, actor, target, _d in audit] == [
        ("campaign_created", sue, f"campaign:{campaign['id']}"),
        ("campaign_created", sue, f"campaign:{tmk.json()['id']}"),
        ("campaign_members_set", sue, f"campaign:{campaign['id']}"),
    ]
    assert audit[2][3]["users_added"] == [sam] and audit[2][3]["teams_added"] == [north]


async def test_campaign_named_and_concurrent_member_sets(db):
    """Get-or-create under a race, and whole-set replacement when many supervisors save at once."""
    agents = [await add_user(db, f"agent{i}", role="sales") for i in range(6)]

    async def named() -> int:
        async with db() as s:
            campaign = await store.campaign_named(s, "Registrations", "tmk")
            await s.commit()
            return campaign.id

    ids = await asyncio.gather(*(named() for _ in range(8)))
    assert len(set(ids)) == 1
    async with db() as s:
        with pytest.raises(store.CampaignError) as mismatch:
            await store.campaign_named(s, "Registrations", "sales")
        assert mismatch.value.problems[0].code == "kind_mismatch"
        created = (
            await s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'campaign_created'"))
        ).scalar()
        assert created == 1, "only the creation is audited"
        pool = await store.create_campaign(s, "Pool", "sales", actor_id=None)
        await s.commit()

    sets = [agents[i : i + 3] for i in range(4)]

    async def replace(users: list[int]) -> None:
        async with db() as s:
            await store.set_members(s, pool.id, users, [], actor_id=None)
            await s.commit()

    await asyncio.gather(*(replace(users) for users in sets * 3))
    stored, _teams = await _members(db, pool.id)
    assert stored in [sorted(users) for users in sets], "one whole set, never a mix"
