"""Recycle bin (soft delete, restore, purge, delete all) and the retention purge, against the real hub."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from hub.retention import purge_expired
from hub.runtime import Hub
from hub.settings import Settings
from storage.recycle import purge_leads_created_before
from tests.agent_client import AgentClient
from tests.seed import add_user, cn_mobiles, signed_in, token


async def _batch(
    db, filename: str = "leads.csv", rejects: int = 0, created_at: datetime | None = None
) -> int:
    async with db() as s:
        batch_id = (
            await s.execute(
                text(
                    "INSERT INTO import_batches (filename, created_at) VALUES (:f, coalesce(:at, now()))"
                    " RETURNING id"
                ),
                {"f": filename, "at": created_at},
            )
        ).scalar_one()
        for row in range(2, 2 + rejects):
            await s.execute(
                text(
                    "INSERT INTO import_rejects (batch_id, row_number, reason, cells)"
                    " VALUES (:b, :r, 'invalid_phone', CAST(:cells AS jsonb))"
                ),
                {"b": batch_id, "r": row, "cells": json.dumps(["王伟", f"1380000{row:04d}"])},
            )
        await s.commit()
    return batch_id


async def _leads(
    db, phones: list[str], batch_id: int | None = None, owner_id: int | None = None, created_at=None
) -> list[int]:
    """Leads (and the customer record of each phone) written with plain SQL; returns their ids."""
    ids = []
    async with db() as s:
        for phone in phones:
            await s.execute(
                text("INSERT INTO customers (phone_e164) VALUES (:p) ON CONFLICT (phone_e164) DO NOTHING"),
                {"p": phone},
            )
            ids.append(
                (
                    await s.execute(
                        text(
                            "INSERT INTO leads (batch_id, owner_id, name, phone_e164, created_at)"
                            " VALUES (:b, :o, 'Lead', :p, coalesce(:at, now())) RETURNING id"
                        ),
                        {"b": batch_id, "o": owner_id, "p": phone, "at": created_at},
                    )
                ).scalar_one()
            )
        await s.commit()
    return ids


async def _scalar(db, sql: str, **params):
    async with db() as s:
        return (await s.execute(text(sql), params)).scalar()


async def _csrf(http: httpx.AsyncClient, path: str = "/recycle-bin") -> str:
    page = await http.get(path)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def _post(http: httpx.AsyncClient, path: str, **data: str | list[str]) -> httpx.Response:
    return await http.post(path, data={"csrf": await _csrf(http), **data})


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def _error(html: str) -> str:
    return re.search(r'data-testid="recycle-error">([^<]+)<', html).group(1)


async def _deleted_ids(db) -> list[int]:
    return await _scalar(
        db, "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM leads WHERE deleted_at IS NOT NULL"
    )


async def test_page_deletes_by_batch_and_ids_skips_held_leads_and_restores(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    await add_user(db, "ann")
    batch_a = await _batch(db, "spring.csv")
    a_ids = await _leads(db, cn_mobiles(3, seed=1), batch_a)
    agent = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    await agent.send("state.set", state="ready")
    held = (await agent.expect("lead.assigned"))["lead"]["id"]
    assert held in a_ids
    batch_b = await _batch(db, "autumn.csv")
    b_ids = await _leads(db, cn_mobiles(2, seed=2), batch_b)

    http = await signed_in(hub_server.base, "sue")
    by_batch = await _post(http, "/recycle-bin/delete", batch_id=str(batch_a))
    assert by_batch.status_code == 200, by_batch.text
    assert _counts(by_batch.text) == {"deleted": 2, "skipped_held": 1}
    by_ids = await _post(http, "/recycle-bin/delete", ids=f" {b_ids[0]} ")
    assert _counts(by_ids.text) == {"deleted": 1}
    assert await _deleted_ids(db) == sorted([i for i in a_ids if i != held] + [b_ids[0]])

    page = await http.get("/recycle-bin")
    assert re.search(r'data-testid="bin-total">(\d+)<', page.text).group(1) == "3"
    phones = re.findall(r'data-testid="bin-phone">([^<]+)<', page.text)
    assert len(phones) == 3 and all("****" in p for p in phones)
    assert not any(p[3:] in page.text for p in cn_mobiles(3, seed=1)), "full numbers never reach the page"

    # The agent keeps the lead on screen; the next one is the only active lead left.
    await agent.reply(await agent.send("lead.dispose", lead_id=held, outcome="no_answer"))
    assert (await agent.expect("lead.assigned"))["lead"]["id"] == b_ids[1]
    await agent.close()

    selected = await _post(http, "/recycle-bin/restore", scope="selected", ids=[str(b_ids[0])])
    assert _counts(selected.text) == {"restored": 1}
    by_batch = await _post(http, "/recycle-bin/restore", scope="batch", batch_id=str(batch_a))
    assert _counts(by_batch.text) == {"restored": 2}
    assert await _deleted_ids(db) == []
    empty = await http.get("/recycle-bin")
    assert 'data-testid="bin-empty"' in empty.text and 'id="confirm-purge"' not in empty.text
    await http.aclose()

    async with db() as s:
        audited = (
            await s.execute(
                text("SELECT action, detail FROM audit_log WHERE action LIKE 'leads_%' ORDER BY id")
            )
        ).all()
    assert [(a.action, a.detail["scope"]) for a in audited] == [
        ("leads_deleted", "batch"),
        ("leads_deleted", "selected"),
        ("leads_restored", "selected"),
        ("leads_restored", "batch"),
    ]
    assert audited[0].detail | {} == {
        "scope": "batch",
        "batch_id": batch_a,
        "deleted": 2,
        "skipped_held": 1,
        "not_found": 0,
        "complete": True,
    }


async def test_delete_all_and_purge_are_admin_only_and_erase_contact_history(hub_server, db):
    await add_user(db, "ada", role="admin")
    await add_user(db, "sue", role="supervisor")
    ann = await add_user(db, "ann")
    shared_phone, *others = cn_mobiles(4, seed=3)
    batch_a, batch_b, batch_c = (
        await _batch(db, rejects=2),
        await _batch(db, rejects=1),
        await _batch(db, rejects=1),
    )
    [worked] = await _leads(db, [others[0]], batch_a, owner_id=ann)
    plain, shared = await _leads(db, [others[1], shared_phone], batch_a)
    [other_batch] = await _leads(db, [others[2]], batch_b)
    [kept] = await _leads(db, [shared_phone], batch_c, owner_id=ann)  # same customer as `shared`
    async with db() as s:  # fresh leads come in their shuffled order: `worked` first here
        await s.execute(text("UPDATE leads SET shuffle = -1 WHERE id = :l"), {"l": worked})
        await s.commit()

    # Real contact history: the agent calls its first lead and records the outcome with a note.
    agent = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    await agent.send("state.set", state="ready")
    assert (await agent.expect("lead.assigned"))["lead"]["id"] == worked
    call_id = (await agent.reply(await agent.send("call.dial", lead_id=worked)))["call_id"]
    await agent.expect("call.state", call_id=call_id, state="ended")
    await agent.reply(await agent.send("lead.dispose", lead_id=worked, outcome="no_answer", note="private"))
    assert (await agent.expect("lead.assigned"))["lead"]["id"] == kept  # held from now on
    assert await _scalar(db, "SELECT count(*) FROM contact_attempts WHERE lead_id = :l", l=worked) == 1

    supervisor = await signed_in(hub_server.base, "sue")
    page = await supervisor.get("/recycle-bin")
    assert 'id="confirm-purge"' not in page.text and 'id="confirm-delete-all"' not in page.text
    assert (await _post(supervisor, "/recycle-bin/delete-all", confirm="DELETE ALL")).status_code == 403
    assert (await _post(supervisor, "/recycle-bin/purge", confirm="PURGE")).status_code == 403
    await supervisor.aclose()
    sue = {"Authorization": f"Bearer {await token(hub_server.base, 'sue')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=sue) as api:
        assert (await api.post("/api/leads/delete-all", json={"confirm": "DELETE ALL"})).status_code == 403
        assert (await api.post("/api/leads/purge", json={"confirm": "PURGE"})).status_code == 403
    assert await _deleted_ids(db) == []

    admin = await signed_in(hub_server.base, "ada")
    for word in ("delete all", "DELETE ALL ", ""):
        wrong = await _post(admin, "/recycle-bin/delete-all", confirm=word)
        assert wrong.status_code == 400 and "DELETE ALL" in _error(wrong.text)
    assert await _deleted_ids(db) == []
    everything = await _post(admin, "/recycle-bin/delete-all", confirm="DELETE ALL")
    assert _counts(everything.text) == {"deleted": 4, "skipped_held": 1}
    assert await _deleted_ids(db) == sorted([worked, plain, shared, other_batch])

    wrong = await _post(admin, "/recycle-bin/purge", confirm="purge")
    assert wrong.status_code == 400 and "PURGE" in _error(wrong.text)
    assert len(await _deleted_ids(db)) == 4
    purged = await _post(admin, "/recycle-bin/purge", confirm="PURGE")
    assert _counts(purged.text) == {
        "leads": 4,
        "contact_attempts": 1,
        "calls_anonymised": 1,
        "customers": 3,
        "import_rejects": 3,
    }
    await admin.aclose()
    await agent.close()

    assert await _scalar(db, "SELECT array_agg(id) FROM leads") == [kept]
    assert await _scalar(db, "SELECT count(*) FROM contact_attempts") == 0
    assert await _scalar(db, "SELECT array_agg(phone_e164) FROM calls WHERE lead_id = :l", l=worked) == [""]
    assert await _scalar(db, "SELECT array_agg(phone_e164) FROM customers") == [shared_phone]
    assert await _scalar(db, "SELECT array_agg(DISTINCT batch_id) FROM import_rejects") == [batch_c]
    async with db() as s:
        audited = (
            await s.execute(
                text("SELECT actor_id, action, detail FROM audit_log WHERE action LIKE 'leads_%' ORDER BY id")
            )
        ).all()
    assert [(a.action, a.detail["scope"]) for a in audited] == [
        ("leads_deleted", "all"),
        ("leads_purged", "all"),
    ]
    assert audited[1].detail["leads"] == 4 and audited[1].detail["contact_attempts"] == 1
    assert audited[0].actor_id == audited[1].actor_id is not None


async def test_api_flow_and_bad_input_changes_nothing(hub_server, db):
    await add_user(db, "ada", role="admin")
    await add_user(db, "sue", role="supervisor")
    batch = await _batch(db)
    phones = cn_mobiles(3, seed=4)
    ids = await _leads(db, phones, batch)
    sue = {"Authorization": f"Bearer {await token(hub_server.base, 'sue')}"}
    ada = {"Authorization": f"Bearer {await token(hub_server.base, 'ada')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30) as api:
        deleted = await api.post("/api/leads/delete", json={"ids": [ids[0], ids[1], 999_999]}, headers=sue)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"scope": "selected", "deleted": 2, "skipped_held": 0, "not_found": 1}
        listed = (await api.get("/api/leads/deleted", headers=sue)).json()
        assert listed["total"] == 2 and listed["pages"] == 1
        assert sorted(lead["id"] for lead in listed["leads"]) == ids[:2]
        assert all("****" in lead["phone_masked"] and "phone_e164" not in lead for lead in listed["leads"])

        await _leads(db, [phones[0]])  # the number came back in a new import meanwhile
        restored = await api.post("/api/leads/restore", json={"all": True}, headers=sue)
        assert restored.json() == {"scope": "all", "restored": 1, "skipped_duplicate": 1, "not_found": 0}
        assert await _deleted_ids(db) == [ids[0]]

        state = (await _deleted_ids(db), await _scalar(db, "SELECT count(*) FROM audit_log"))
        refused = [
            ("/api/leads/delete", {"ids": []}, sue, "at least one"),
            ("/api/leads/delete", {"ids": ["1"]}, sue, "ids"),
            ("/api/leads/delete", {"ids": [1.5]}, sue, "ids"),
            ("/api/leads/delete", {"ids": [True]}, sue, "ids"),
            ("/api/leads/delete", {"ids": [-3]}, sue, "ids"),
            ("/api/leads/delete", {"ids": [2**63]}, sue, "ids"),
            ("/api/leads/delete", {"batch_id": 999}, sue, "no import batch 999"),
            ("/api/leads/delete", {"batch_id": "x"}, sue, "batch"),
            ("/api/leads/delete", {"ids": [ids[2]], "batch_id": batch}, sue, "exactly one"),
            ("/api/leads/delete", {}, sue, "exactly one"),
            ("/api/leads/delete", {"all": True}, sue, "exactly one"),
            ("/api/leads/delete", [ids[2]], sue, "json object"),
            ("/api/leads/restore", {"all": False}, sue, "exactly one"),
            ("/api/leads/restore", {"ids": f"{ids[0]}"}, sue, "ids"),
            ("/api/leads/delete-all", {"confirm": "delete all"}, ada, "DELETE ALL"),
            ("/api/leads/delete-all", {}, ada, "DELETE ALL"),
            ("/api/leads/purge", {"confirm": "PURGE "}, ada, "PURGE"),
            ("/api/leads/purge", {"confirm": "PURGE", "batch_id": 999}, ada, "no import batch"),
        ]
        for path, body, who, message in refused:
            response = await api.post(path, json=body, headers=who)
            assert response.status_code == 400, (path, body, response.text)
            assert message.lower() in response.json()["message"].lower(), (path, body, response.json())
        not_json = await api.post(
            "/api/leads/delete", content=b"{oops", headers={**sue, "content-type": "application/json"}
        )
        assert not_json.status_code == 400
        form_post = await api.post(
            "/api/leads/delete",
            content=f'{{"ids": [{ids[2]}]}}',
            headers={**sue, "content-type": "text/plain"},
        )
        assert form_post.status_code == 415
        assert (await api.get("/api/leads/deleted", params={"page": "x"}, headers=sue)).status_code == 400
        assert (await api.post("/api/leads/delete", json={"ids": [ids[2]]})).status_code == 401

        http = await signed_in(hub_server.base, "sue")
        page_refusals = [
            ("/recycle-bin/delete", {"batch_id": "999"}, "no import batch 999"),
            ("/recycle-bin/delete", {"ids": f"{ids[2]}, abc"}, "whole numbers"),
            ("/recycle-bin/delete", {"ids": "1; DROP TABLE leads"}, "whole numbers"),
            ("/recycle-bin/delete", {"ids": " , "}, "select at least one"),
            ("/recycle-bin/delete", {"batch_id": str(batch), "ids": str(ids[2])}, "not both"),
            ("/recycle-bin/delete", {}, "choose an import batch"),
            ("/recycle-bin/restore", {"scope": "selected"}, "select at least one"),
            ("/recycle-bin/restore", {"scope": "batch", "batch_id": ""}, "choose an import batch"),
            ("/recycle-bin/restore", {"scope": "everything"}, "choose what"),
        ]
        for path, data, message in page_refusals:
            response = await _post(http, path, **data)
            assert response.status_code == 400, (path, data)
            assert message in _error(response.text).lower(), (path, data, _error(response.text))
        no_csrf = await http.post("/recycle-bin/delete", data={"ids": str(ids[2])})
        assert no_csrf.status_code == 400 and "expired" in _error(no_csrf.text)
        await http.aclose()
        assert (await _deleted_ids(db), await _scalar(db, "SELECT count(*) FROM audit_log")) == (
            state[0],
            state[1] + 1,  # the page sign-in
        )

        purged = await api.post("/api/leads/purge", json={"confirm": "PURGE", "batch_id": batch}, headers=ada)
        assert purged.json() == {
            "scope": "batch",
            "leads": 1,
            "contact_attempts": 0,
            "calls_anonymised": 0,
            "customers": 0,  # the re-imported lead still has this number's customer
            "import_rejects": 0,
        }
    assert await _deleted_ids(db) == []
    assert await _scalar(db, "SELECT count(*) FROM leads") == 3


async def test_retention_purges_only_old_leads_in_chunks(db):
    long_ago = datetime.now(UTC) - timedelta(days=400)
    agent = await add_user(db, "ann")
    old_batch, new_batch = await _batch(db, rejects=3, created_at=long_ago), await _batch(db, rejects=1)
    old = await _leads(db, cn_mobiles(5, seed=5), old_batch, created_at=long_ago)
    new = await _leads(db, cn_mobiles(2, seed=6), new_batch)
    async with db() as s:
        await s.execute(text("UPDATE leads SET held_by = :a WHERE id = :l"), {"a": agent, "l": old[4]})
        await s.execute(
            text(
                "INSERT INTO contact_attempts (lead_id, agent_id, outcome, note, created_at)"
                " VALUES (:old, :a, 'busy', 'old note', :at), (:new, :a, 'busy', 'new note', now())"
            ),
            {"old": old[0], "new": new[0], "a": agent, "at": long_ago},
        )
        await s.commit()

    async with db() as s:
        counts = await purge_leads_created_before(s, datetime.now(UTC) - timedelta(days=30), chunk=2)
    assert (counts.leads, counts.contact_attempts, counts.customers, counts.import_rejects) == (4, 1, 4, 3)
    assert await _scalar(db, "SELECT array_agg(id ORDER BY id) FROM leads") == [old[4], *new]
    assert await _scalar(db, "SELECT array_agg(note) FROM contact_attempts") == ["new note"]
    assert await _scalar(db, "SELECT array_agg(DISTINCT batch_id) FROM import_rejects") == [new_batch]


async def test_scheduled_retention_through_a_hub(database_url, redis_url, db):
    long_ago = datetime.now(UTC) - timedelta(days=91)
    old = await _leads(db, cn_mobiles(3, seed=7), created_at=long_ago)
    new = await _leads(db, cn_mobiles(1, seed=8), created_at=datetime.now(UTC) - timedelta(days=89))

    async def run(days: int) -> int:
        hub = Hub(
            Settings(database_url=database_url, redis_url=redis_url, secret_key="k", retention_days=days)
        )
        try:
            return await purge_expired(hub)
        finally:
            await hub.engine.dispose()
            await hub.redis.aclose()

    assert await run(0) == 0, "retention is off by default"
    assert await _scalar(db, "SELECT count(*) FROM leads") == 4
    assert await run(90) == 3
    assert await _scalar(db, "SELECT array_agg(id) FROM leads") == new
    assert await run(90) == 0
    async with db() as s:
        audited = (await s.execute(text("SELECT actor_id, action, detail FROM audit_log"))).all()
    assert len(audited) == 1, "only runs that purged something are audited"
    assert audited[0].actor_id is None and audited[0].action == "retention_purge"
    assert audited[0].detail["leads"] == 3 and audited[0].detail["retention_days"] == 90
    assert old  # the three purged ids are gone
    assert await _scalar(db, "SELECT count(*) FROM leads WHERE id = ANY(:ids)", ids=old) == 0
