"""Allocation against a running hub and a real database: preview, commit, audit, API, guards."""

from __future__ import annotations

import asyncio
import re

import httpx
from sqlalchemy import text

from hub.allocation import AgentWeight, make_plan
from hub.passwords import hash_password
from storage import allocation as store
from storage import users as user_store
from storage.import_jobs import create_batch
from storage.lead_intake import NewLead, insert_leads
from tests.agent_client import AgentClient
from tests.seed import PASSWORD, add_leads, add_user, cn_mobiles, csrf_in, signed_in, token

HTML = {"accept": "text/html"}
_HASH = hash_password(PASSWORD)


async def _agent(db, username: str, tier: str, team: str | None = None, role: str = "sales") -> int:
    async with db() as s:
        team_id = (await user_store.team_named(s, team)).id if team else None
        user = await user_store.add_user(
            s,
            username=username,
            display_name=username.title(),
            password_hash=_HASH,
            role=role,
            team_id=team_id,
            tier=tier,
        )
        return user.id


async def _team_id(db, name: str) -> int:
    async with db() as s:
        return (await user_store.team_named(s, name)).id


def _agent_counts(html: str) -> dict[int, int]:
    rows = re.findall(r'<tr data-agent-id="(\d+)".*?data-count="agent">([\d,]+)<', html, re.S)
    return {int(agent): int(n.replace(",", "")) for agent, n in rows}


def _counts(html: str) -> dict[str, int]:
    return {k: int(v.replace(",", "")) for k, v in re.findall(r'data-count="(\w+)">([\d,]+)<', html)}


def _commit_form(html: str) -> dict[str, str]:
    form = re.search(r'<form method="post" action="/allocation">(.*?)</form>', html, re.S).group(1)
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))


def _error(html: str) -> str:
    return re.search(r'data-testid="allocation-error">([^<]+)<', html).group(1)


async def _owners(db) -> dict[int | None, int]:
    async with db() as s:
        rows = await s.execute(text("SELECT owner_id, count(*) FROM leads GROUP BY owner_id"))
        return {owner: n for owner, n in rows}


async def _seed_floor(db) -> dict[str, int]:
    """Team North: ann (A), bob (B), cat (B). Team South: dan and eve, each holding a lead.

    100 leads: 2 held, 6 owned by dan, 1 deleted, 1 closed — 90 can be allocated.
    """
    ids = {
        "sue": await add_user(db, "sue", role="supervisor"),
        "ann": await _agent(db, "ann", "A", "North"),
        "bob": await _agent(db, "bob", "B", "North"),
        "cat": await _agent(db, "cat", "B", "North"),
        "dan": await _agent(db, "dan", "A", "South"),
        "eve": await _agent(db, "eve", "B", "South"),
    }
    await add_leads(db, 100)
    async with db() as s:
        lead_ids = [r[0] for r in await s.execute(text("SELECT id FROM leads ORDER BY id"))]
        await s.execute(
            text(
                "UPDATE leads SET held_by = :u, lease_expires_at = now() + interval '1 hour' WHERE id = :id"
            ),
            [{"u": ids["dan"], "id": lead_ids[0]}, {"u": ids["eve"], "id": lead_ids[1]}],
        )
        await s.execute(
            text("UPDATE leads SET owner_id = :u WHERE id = ANY(:ids)"),
            {"u": ids["dan"], "ids": lead_ids[2:8]},
        )
        await s.execute(text("UPDATE leads SET deleted_at = now() WHERE id = :id"), {"id": lead_ids[8]})
        await s.execute(text("UPDATE leads SET status = 'closed' WHERE id = :id"), {"id": lead_ids[9]})
        await s.commit()
    return ids


async def test_preview_then_commit_by_tier_ratio_deals_what_the_preview_showed(hub_server, db):
    ids = await _seed_floor(db)
    north = await _team_id(db, "North")
    http = await signed_in(hub_server.base, "sue")
    page = await http.get("/allocation")
    assert page.status_code == 200 and "North" in page.text
    assert re.search(r'data-testid="pool-count">\s*90 unowned leads', page.text)

    preview = await http.post(
        "/allocation/preview",
        data={"csrf": csrf_in(page.text), "mode": "ratio", "ratio": "A:1, B:2", "team_id": str(north)},
    )
    assert preview.status_code == 200, preview.text
    assert _agent_counts(preview.text) == {ids["ann"]: 18, ids["bob"]: 36, ids["cat"]: 36}
    assert {k: v for k, v in _counts(preview.text).items() if k != "agent"} == {
        "total": 90,
        "agents": 3,
        "allocated": 90,
        "leftover": 0,
    }
    commit_fields = _commit_form(preview.text)
    assert commit_fields["ratio"] == "A:1, B:2" and commit_fields["team_id"] == str(north)
    async with db() as s:
        candidates = await store.candidate_lead_ids(s)  # what the preview saw, before the commit
    async with db() as s:
        before = {
            r[0]: (r[1], r[2]) for r in await s.execute(text("SELECT id, owner_id, held_by FROM leads"))
        }

    result = await http.post("/allocation", data=commit_fields)
    assert result.status_code == 200, result.text
    assert "Allocated 90 leads to 3 agents." in result.text
    assert _counts(result.text)["skipped"] == 0 and 'data-testid="changed"' not in result.text
    assert _agent_counts(result.text) == {ids["ann"]: 18, ids["bob"]: 36, ids["cat"]: 36}
    await http.aclose()

    # Exactly the preview's deal: the same seed over the same leads and weights.
    weights = [AgentWeight(ids["ann"], 1), AgentWeight(ids["bob"], 2), AgentWeight(ids["cat"], 2)]
    plan = make_plan(candidates, weights, int(commit_fields["seed"]))
    async with db() as s:
        after = {r[0]: (r[1], r[2]) for r in await s.execute(text("SELECT id, owner_id, held_by FROM leads"))}
        audit = (
            await s.execute(
                text("SELECT actor_id, target, detail FROM audit_log WHERE action = 'leads_allocated'")
            )
        ).all()
    for agent, leads in plan.assignments.items():
        assert all(after[lead][0] == agent for lead in leads)
    # Held, owned, deleted and closed leads were not touched.
    untouched = set(before) - set(candidates)
    assert len(untouched) == 10 and all(after[lead] == before[lead] for lead in untouched)

    assert len(audit) == 1
    actor, target, detail = audit[0]
    assert actor == ids["sue"] and target == "pool"
    assert detail["mode"] == "ratio" and detail["ratio"] == {"A": 1, "B": 2} and detail["team_id"] == north
    assert detail["batch_id"] is None and detail["skipped"] == 0 and detail["allocated"] == 90
    assert detail["counts"] == {str(ids["ann"]): 18, str(ids["bob"]): 36, str(ids["cat"]): 36}


async def test_commit_recomputes_and_reports_what_changed_after_the_preview(hub_server, db):
    ids = await _seed_floor(db)
    http = await signed_in(hub_server.base, "sue")
    page = await http.get("/allocation")
    preview = await http.post("/allocation/preview", data={"csrf": csrf_in(page.text), "mode": "even"})
    assert _agent_counts(preview.text) == {ids[n]: 18 for n in ("ann", "bob", "cat", "dan", "eve")}
    # Meanwhile an agent takes a lead and another supervisor gives 4 leads to dan.
    async with db() as s:
        free = await store.candidate_lead_ids(s)
        await s.execute(
            text("UPDATE leads SET held_by = :u WHERE id = :id"), {"u": ids["ann"], "id": free[0]}
        )
        await s.execute(
            text("UPDATE leads SET owner_id = :u WHERE id = ANY(:ids)"), {"u": ids["dan"], "ids": free[1:5]}
        )
        await s.commit()

    result = await http.post("/allocation", data=_commit_form(preview.text))
    await http.aclose()
    assert result.status_code == 200
    assert 'data-testid="changed"' in result.text
    assert "The preview showed 90 leads; 85 were unowned at commit." in result.text
    assert _counts(result.text)["allocated"] == 85 and "Ann: 18 in the preview, 17 now" in result.text
    assert sorted(_agent_counts(result.text).values()) == [17, 17, 17, 17, 17]
    owners = await _owners(db)
    assert owners[ids["dan"]] == 6 + 4 + 17 and owners[None] == 5  # 3 held, 1 deleted, 1 closed


async def test_assignment_never_takes_a_lead_claimed_or_assigned_meanwhile(db):
    ann = await _agent(db, "ann", "A")
    bob = await _agent(db, "bob", "B")
    await add_leads(db, 6)
    async with db() as s:
        leads = await store.candidate_lead_ids(s)
        # After the plan was made: bob claims one lead, another allocation gives one to bob.
        await s.execute(text("UPDATE leads SET held_by = :u WHERE id = :id"), {"u": bob, "id": leads[0]})
        await s.execute(text("UPDATE leads SET owner_id = :u WHERE id = :id"), {"u": bob, "id": leads[1]})
        await s.commit()
    async with db() as s:
        result = await store.assign(s, {ann: leads[:4], bob: leads[4:]})
        await s.commit()
    assert result.assigned == {ann: 2, bob: 2} and result.skipped == 2
    async with db() as s:
        rows = dict((await s.execute(text("SELECT id, (owner_id, held_by)::text FROM leads"))).all())
    assert rows[leads[0]] == f"(,{bob})" and rows[leads[1]] == f"({bob},)"
    assert [rows[lead] for lead in leads[2:]] == [f"({ann},)", f"({ann},)", f"({bob},)", f"({bob},)"]


async def test_concurrent_commits_give_every_lead_once(hub_server, db):
    for name in ("ann", "bob", "cat"):
        await _agent(db, name, "A")
    await add_user(db, "sue", role="supervisor")
    await add_leads(db, 300)
    headers = {"Authorization": f"Bearer {await token(hub_server.base, 'sue')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=headers) as http:
        responses = await asyncio.gather(
            *(http.post("/api/allocations", json={"mode": "even", "seed": i}) for i in range(6))
        )
    done = [r.json() for r in responses if r.status_code == 200]
    refused = [r.json() for r in responses if r.status_code != 200]
    assert all(r["code"] == "no_leads" for r in refused), refused
    assert sum(r["allocated"] for r in done) == 300
    # Every commit planned the leads it saw; those another commit got first were skipped, not stolen.
    assert all(r["allocated"] + r["skipped"] == r["total_leads"] for r in done)
    owners = await _owners(db)
    assert None not in owners and sum(owners.values()) == 300
    per_agent: dict[int, int] = {}
    for r in done:
        for agent in r["agents"]:
            per_agent[agent["id"]] = per_agent.get(agent["id"], 0) + agent["assigned"]
    assert per_agent == owners  # what the responses report is what the database holds


async def test_batch_filter_cap_and_the_shared_pool_side_by_side(hub_server, db):
    ann = await _agent(db, "ann", "A", "North")
    await _agent(db, "eve", "B", "South")
    await add_user(db, "sue", role="supervisor")
    async with db() as s:
        first = await create_batch(
            s,
            filename="march.csv",
            created_by=None,
            campaign_id=None,
            bytes_total=0,
            mapping={},
            status="running",
        )
        second = await create_batch(
            s,
            filename="april.xlsx",
            created_by=None,
            campaign_id=None,
            bytes_total=0,
            mapping={},
            status="running",
        )
        phones = cn_mobiles(30, seed=9)
        await insert_leads(s, [NewLead(f"M{i}", p) for i, p in enumerate(phones[:10])], batch_id=first)
        await insert_leads(s, [NewLead(f"A{i}", p) for i, p in enumerate(phones[10:])], batch_id=second)
    headers = {"Authorization": f"Bearer {await token(hub_server.base, 'sue')}"}
    body = {"mode": "even", "team_id": await _team_id(db, "North"), "batch_id": second, "per_agent_cap": 5}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=headers) as http:
        preview = (await http.post("/api/allocations/preview", json=body)).json()
        assert (preview["total_leads"], preview["allocated"], preview["leftover"]) == (20, 5, 15)
        committed = await http.post(
            "/api/allocations", json={**body, "seed": preview["seed"], "fingerprint": preview["fingerprint"]}
        )
    assert committed.status_code == 200
    assert committed.json()["changed_since_preview"] is False
    assert committed.json()["agents"] == [
        {"id": ann, "name": "Ann", "tier": "A", "weight": 1, "count": 5, "assigned": 5}
    ]
    async with db() as s:
        owned = (
            await s.execute(
                text("SELECT batch_id, count(*) FROM leads WHERE owner_id = :u GROUP BY batch_id"), {"u": ann}
            )
        ).all()
    assert owned == [(second, 5)]

    # Ann's websocket gives her own lead first; Eve, who owns none, still pulls from the pool.
    ann_ws = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    eve_ws = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "eve"))
    for client in (ann_ws, eve_ws):
        await client.send("state.set", state="ready")
    ann_lead = (await ann_ws.expect("lead.assigned"))["lead"]
    eve_lead = (await eve_ws.expect("lead.assigned"))["lead"]
    await ann_ws.close()
    await eve_ws.close()
    async with db() as s:
        owner = dict((await s.execute(text("SELECT id, owner_id FROM leads"))).all())
    assert owner[ann_lead["id"]] == ann
    assert owner[eve_lead["id"]] is None and eve_lead["id"] != ann_lead["id"]


async def test_agents_may_not_allocate(hub_server, db):
    await add_user(db, "uma", role="sales")
    await add_leads(db, 5)
    http = await signed_in(hub_server.base, "uma")
    assert (await http.get("/allocation")).status_code == 403
    assert (await http.post("/allocation/preview", data={"mode": "even"})).status_code == 403
    await http.aclose()
    headers = {"Authorization": f"Bearer {await token(hub_server.base, 'uma')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=headers) as api:
        for path in ("/api/allocations/preview", "/api/allocations"):
            refused = await api.post(path, json={"mode": "even"})
            assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert await _owners(db) == {None: 5}


async def test_bad_input_gets_a_clear_message_and_allocates_nothing(hub_server, db):
    await _agent(db, "ann", "A", "North")
    await _agent(db, "bob", "B", "North")
    await add_user(db, "sue", role="supervisor")
    empty_team = await _team_id(db, "Empty")
    async with db() as s:
        spent = await create_batch(
            s,
            filename="spent.csv",
            created_by=None,
            campaign_id=None,
            bytes_total=0,
            mapping={},
            status="running",
        )
    await add_leads(db, 12)
    http = await signed_in(hub_server.base, "sue")
    csrf = csrf_in((await http.get("/allocation")).text)
    cases = [
        ({"mode": "ratio", "ratio": "A:x"}, "“A:x” is not TIER:WEIGHT"),
        ({"mode": "ratio", "ratio": "A:0,B:0"}, "At least one tier needs a weight above 0"),
        ({"mode": "ratio", "ratio": ""}, "Enter a ratio"),
        ({"mode": "ratio", "ratio": "C:1"}, "No matching agent has a tier in the ratio"),
        ({"mode": "even", "team_id": "9999"}, "There is no such team"),
        ({"mode": "even", "batch_id": "9999"}, "There is no such import batch"),
        ({"mode": "even", "team_id": str(empty_team)}, "“Empty” has no active sales or telemarketing agent"),
        ({"mode": "even", "batch_id": str(spent)}, "“spent.csv” has no unowned leads left"),
        ({"mode": "even", "per_agent_cap": "-3"}, "limit per agent"),
        ({"mode": "fair"}, "Choose an even split or a tier ratio"),
    ]
    for fields, message in cases:
        for path in ("/allocation/preview", "/allocation"):
            response = await http.post(path, data={"csrf": csrf, **fields})
            assert response.status_code == 400, (path, fields)
            assert message in _error(response.text), (path, fields, _error(response.text))
            assert 'value="ratio"' in response.text  # the form is shown again to fix the input
    no_csrf = await http.post("/allocation", data={"mode": "even"})
    assert no_csrf.status_code == 400 and "The form expired" in _error(no_csrf.text)
    await http.aclose()

    headers = {"Authorization": f"Bearer {await token(hub_server.base, 'sue')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=headers) as api:
        bad = await api.post("/api/allocations", json={"mode": "ratio", "ratio": "A:x"})
        assert bad.status_code == 400 and bad.json()["code"] == "ratio_format"
        assert "is not TIER:WEIGHT" in bad.json()["message"]
        zero = await api.post("/api/allocations/preview", json={"mode": "ratio", "ratio": "A:0,B:0"})
        assert zero.status_code == 400 and zero.json()["code"] == "ratio_all_zero"
        team = await api.post("/api/allocations", json={"mode": "even", "team_id": 9999})
        assert team.status_code == 400 and team.json()["code"] == "unknown_team"
        junk = await api.post(
            "/api/allocations", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert junk.status_code == 400
        form = await api.post("/api/allocations", data={"mode": "even"})
        assert form.status_code == 400, "only JSON is accepted by the API"
        seed = await api.post("/api/allocations", json={"mode": "even", "seed": "x"})
        assert seed.status_code == 400 and seed.json()["code"] == "bad_seed"
    assert await _owners(db) == {None: 12}
    async with db() as s:
        assert (
            await s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'leads_allocated'"))
        ).scalar() == 0
