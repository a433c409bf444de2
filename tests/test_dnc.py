"""Do-not-call lists: the storage rules, the page (typed numbers, uploads, removal) and the JSON API."""

from __future__ import annotations

import re

import httpx
import openpyxl
from sqlalchemy import text

from storage import dnc
from tests.seed import add_user, signed_in, token

A, B, C = "+8613812345678", "+8613987654321", "+8618611112222"


async def _campaign(db, name: str) -> int:
    async with db() as s:
        campaign_id = (
            await s.execute(
                text("INSERT INTO campaigns (name, kind) VALUES (:n, 'sales') RETURNING id"), {"n": name}
            )
        ).scalar_one()
        await s.commit()
    return campaign_id


async def _scalar(db, sql: str, **params):
    async with db() as s:
        return (await s.execute(text(sql), params)).scalar()


async def _csrf(http: httpx.AsyncClient, path: str = "/dnc") -> str:
    page = await http.get(path)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def _error(html: str) -> str:
    return re.search(r'data-testid="dnc-error">([^<]+)<', html).group(1)


async def test_lists_are_idempotent_and_scoped_to_campaigns(db):
    spring, autumn = await _campaign(db, "Spring"), await _campaign(db, "Autumn")
    async with db() as s:
        assert await dnc.add_numbers(s, [A, A, B], campaign_id=None, reason="asked", added_by=None) == 2
        assert await dnc.add_numbers(s, [A, C], campaign_id=None, reason="again", added_by=None) == 1
        assert await dnc.add_numbers(s, [C], campaign_id=spring, reason="", added_by=None) == 1
        assert await dnc.add_numbers(s, [C], campaign_id=spring, reason="", added_by=None) == 0
        await s.commit()
        assert await dnc.remove_numbers(s, [C], campaign_id=None) == 1
        await s.commit()
        assert await dnc.is_blocked(s, A, None) and await dnc.is_blocked(s, A, autumn)
        assert await dnc.is_blocked(s, C, spring)
        assert not await dnc.is_blocked(s, C, autumn) and not await dnc.is_blocked(s, C, None)
        assert await dnc.remove_numbers(s, [C], campaign_id=autumn) == 0
        assert await dnc.remove_numbers(s, [], campaign_id=None) == 0
        await s.commit()
    assert await _scalar(db, "SELECT reason FROM dnc_numbers WHERE phone_e164 = :p", p=A) == "asked"


async def test_page_adds_searches_and_removes_masked_numbers_with_audit(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    spring = await _campaign(db, "Spring")
    http = await signed_in(hub_server.base, "sue")

    typed = "138 1234 5678\n12345\n+86 139-8765-4321\n13812345678\n"
    added = await http.post(
        "/dnc/add", data={"csrf": await _csrf(http), "phones": typed, "campaign": "", "reason": "asked"}
    )
    assert added.status_code == 200, added.text
    assert _counts(added.text) == {"total": 4, "added": 2, "already": 0, "invalid": 1, "repeated": 1}
    assert re.findall(r'data-testid="dnc-invalid"><td>(\d+)</td><td>([^<]*)<', added.text) == [("2", "12345")]
    to_campaign = await http.post(
        "/dnc/add", data={"csrf": await _csrf(http), "phones": "18611112222", "campaign": str(spring)}
    )
    assert _counts(to_campaign.text)["added"] == 1

    page = await http.get("/dnc")
    assert page.status_code == 200
    assert "138****5678" in page.text and "13812345678" not in page.text, "the list shows masked numbers"
    assert re.search(r'data-testid="dnc-total">(\d+)<', page.text).group(1) == "3"
    found = await http.get("/dnc", params={"q": "138-1234-5678"})
    assert re.findall(r'data-testid="dnc-phone">([^<]+)<', found.text) == ["138****5678"]
    only_spring = await http.get("/dnc", params={"list": str(spring)})
    assert re.findall(r'data-testid="dnc-phone">([^<]+)<', only_spring.text) == ["186****2222"]
    bad_search = await http.get("/dnc", params={"q": "not a number"})
    assert "not a valid phone number" in _error(bad_search.text)

    entry = await _scalar(db, "SELECT id FROM dnc_numbers WHERE phone_e164 = :p", p=B)
    removed = await http.post("/dnc/remove", data={"csrf": await _csrf(http), "entry": str(entry)})
    assert _counts(removed.text) == {"removed": 1}
    typed_removal = await http.post(
        "/dnc/remove", data={"csrf": await _csrf(http), "phones": "13812345678\n13900000000", "campaign": ""}
    )
    assert _counts(typed_removal.text) == {"removed": 1, "not_listed": 1, "invalid": 0}
    await http.aclose()

    assert await _scalar(db, "SELECT array_agg(phone_e164) FROM dnc_numbers") == [C]
    async with db() as s:
        audited = (
            await s.execute(
                text("SELECT action, target, detail FROM audit_log WHERE action LIKE 'dnc_%' ORDER BY id")
            )
        ).all()
    assert [(a.action, a.target) for a in audited] == [
        ("dnc_added", "dnc:system"),
        ("dnc_added", f"dnc:campaign:{spring}"),
        ("dnc_removed", "dnc:entries"),
        ("dnc_removed", "dnc:system"),
    ]
    assert audited[0].detail["added"] == 2 and audited[0].detail["invalid"] == 1
    assert audited[3].detail["removed"] == 1


async def test_page_bad_input_is_refused_and_changes_nothing(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    await add_user(db, "ann")
    http = await signed_in(hub_server.base, "sue")
    csrf = await _csrf(http)
    cases = [
        ({"phones": "13812345678", "campaign": ""}, "expired"),  # no CSRF token
        ({"csrf": csrf, "phones": "  \n ,", "campaign": ""}, "at least one"),
        ({"csrf": csrf, "phones": "12345\nabc", "campaign": ""}, "none of the numbers"),
        ({"csrf": csrf, "phones": "13812345678", "campaign": "999"}, "no campaign 999"),
        ({"csrf": csrf, "phones": "13812345678", "campaign": "x1"}, "campaign id"),
        ({"csrf": csrf, "phones": "13812345678", "campaign": "", "reason": "x" * 65}, "too long"),
    ]
    for data, message in cases:
        response = await http.post("/dnc/add", data=data)
        assert response.status_code == 400, data
        assert message in _error(response.text).lower(), (data, _error(response.text))
    bad_remove = await http.post("/dnc/remove", data={"csrf": csrf, "entry": "1 OR 1=1"})
    assert bad_remove.status_code == 400
    await http.aclose()

    agent = await signed_in(hub_server.base, "ann")
    assert (await agent.get("/dnc")).status_code == 403
    assert (await agent.post("/dnc/add", data={"phones": "13812345678"})).status_code == 403
    await agent.aclose()
    assert await _scalar(db, "SELECT count(*) FROM dnc_numbers") == 0
    assert await _scalar(db, "SELECT count(*) FROM audit_log WHERE action LIKE 'dnc_%'") == 0


async def _upload(http: httpx.AsyncClient, name: str, content: bytes, **fields: str) -> httpx.Response:
    return await http.post(
        "/dnc/upload", data={"csrf": await _csrf(http), **fields}, files={"file": (name, content)}
    )


async def test_upload_csv_and_xlsx_reports_invalid_rows(hub_server, db, tmp_path):
    await add_user(db, "sue", role="supervisor")
    spring = await _campaign(db, "Spring")
    http = await signed_in(hub_server.base, "sue")

    csv = "姓名,电话\n王伟,138 1234 5678\n李娜,12345\n\n张敏,+86 139 8765 4321\n赵强,\n".encode()
    first = await _upload(http, "dnc.csv", csv, campaign="", reason="complaint")
    assert first.status_code == 200, first.text
    assert _counts(first.text) == {"total": 4, "added": 2, "already": 0, "invalid": 2}
    assert re.findall(r'data-testid="dnc-invalid"><td>(\d+)</td>', first.text) == ["3", "6"]

    # No header: numbers in the first column, typed into numeric cells; row 1 is data.
    book = openpyxl.Workbook()
    for row in [[13812345678, "x"], [18611112222, "y"], ["not a phone", "z"]]:
        book.active.append(row)
    book.save(tmp_path / "numbers.xlsx")
    second = await _upload(
        http, "numbers.xlsx", (tmp_path / "numbers.xlsx").read_bytes(), campaign=str(spring)
    )
    assert _counts(second.text) == {"total": 3, "added": 2, "already": 0, "invalid": 1}
    assert re.findall(r'data-testid="dnc-invalid"><td>(\d+)</td>', second.text) == ["3"]

    for name, content, message in [
        ("empty.csv", b"", "empty"),
        ("picture.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a spreadsheet"),
        ("junk.csv", "电话\nabc\n12\n".encode(), "none of the numbers"),
        ("header-only.csv", b"phone\n", "no numbers"),
    ]:
        response = await _upload(http, name, content, campaign="")
        assert response.status_code == 400, name
        assert message in _error(response.text).lower(), (name, _error(response.text))
    missing = await http.post("/dnc/upload", data={"csrf": await _csrf(http)}, files={"other": ("x", b"1")})
    assert missing.status_code == 400
    await http.aclose()

    async with db() as s:
        rows = (await s.execute(text("SELECT phone_e164, campaign_id FROM dnc_numbers ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [(A, None), (B, None), (A, spring), (C, spring)]
    uploads = hub_server.log_path.parent / f"data-{hub_server.port}" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == [], "uploaded files are deleted"


async def test_api_add_check_remove_and_bad_requests(hub_server, db):
    await add_user(db, "sue", role="supervisor")
    await add_user(db, "ann")
    spring = await _campaign(db, "Spring")
    headers = {"Authorization": f"Bearer {await token(hub_server.base, 'sue')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=headers) as api:
        added = await api.post(
            "/api/dnc", json={"phones": ["138 1234 5678", "bogus", B], "campaign_id": None, "reason": "asked"}
        )
        assert added.status_code == 200, added.text
        assert added.json() == {
            "campaign_id": None,
            "added": 2,
            "already_listed": 0,
            "invalid": [{"index": 1, "value": "bogus"}],
        }
        again = await api.post("/api/dnc", json={"phones": [C, A], "campaign_id": spring})
        assert again.json()["added"] == 2

        check = (await api.get("/api/dnc", params={"phone": "18611112222"})).json()
        assert check["phone"] == C and check["blocked"] is False
        assert [entry["campaign_id"] for entry in check["lists"]] == [spring]
        in_spring = (await api.get("/api/dnc", params={"phone": C, "campaign_id": spring})).json()
        assert in_spring["blocked"] is True
        system = (await api.get("/api/dnc", params={"phone": A, "campaign_id": spring})).json()
        assert system["blocked"] is True and len(system["lists"]) == 2

        removed = await api.request("DELETE", "/api/dnc", json={"phones": [A, C, "x"], "campaign_id": None})
        assert removed.json() == {
            "campaign_id": None,
            "removed": 1,
            "not_listed": 1,
            "invalid": [{"index": 2, "value": "x"}],
        }

        before = await _scalar(db, "SELECT count(*) FROM dnc_numbers")
        bad = [
            ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
            ({"content": b'{"phones": ["13812345678"]}', "headers": {"content-type": "text/plain"}}, 415),
            ({"json": {"phones": "13812345678"}}, 400),
            ({"json": {"phones": []}}, 400),
            ({"json": {"phones": [13812345678]}}, 400),
            ({"json": {"phones": ["12345"]}}, 400),
            ({"json": {"phones": [A], "campaign_id": 999}}, 400),
            ({"json": {"phones": [A], "campaign_id": "spring"}}, 400),
            ({"json": {"phones": [A], "campaign_id": True}}, 400),
            ({"json": {"phones": [A], "reason": 5}}, 400),
            ({"json": {"phones": ["13800000000"] * 10_001}}, 400),
        ]
        for kwargs, status in bad:
            for method in ("POST", "DELETE"):
                response = await api.request(method, "/api/dnc", **kwargs)
                assert response.status_code == status, (method, kwargs, response.text)
                assert response.json()["error"] == "bad_request" and response.json()["message"]
        assert (await api.get("/api/dnc", params={"phone": "nope"})).status_code == 400
        assert (await api.get("/api/dnc", params={"phone": A, "campaign_id": "x"})).status_code == 400
        assert await _scalar(db, "SELECT count(*) FROM dnc_numbers") == before

    agent = {"Authorization": f"Bearer {await token(hub_server.base, 'ann')}"}
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30) as anonymous:
        assert (await anonymous.post("/api/dnc", json={"phones": [A]})).status_code == 401
        assert (await anonymous.get("/api/dnc", params={"phone": A}, headers=agent)).status_code == 403
        assert (await anonymous.post("/api/dnc", json={"phones": [A]}, headers=agent)).status_code == 403
    assert await _scalar(db, "SELECT count(*) FROM audit_log WHERE action = 'dnc_added'") == 2
    assert await _scalar(db, "SELECT count(*) FROM audit_log WHERE action = 'dnc_removed'") == 1
