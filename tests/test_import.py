"""Lead import: upload, column mapping, a background job with pushed progress, rejected rows."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import httpx
import openpyxl
from sqlalchemy import text

from tests.agent_client import AgentClient
from tests.seed import add_leads, add_user, signed_in, token
from tests.services import ROOT

TEMPLATE_ROWS = [
    ["序号", "楼盘", "姓名", "电话", "区域"],
    ["1", "万科城", "王伟", "138 1234 5678", "朝阳区"],
    ["2", "碧桂园", "李娜", "+86-139-8765-4321", "海淀区"],
    ["3", "保利花园", '=HYPERLINK("x")', "12345", "浦东新区"],  # invalid phone, formula-like name
    ["4", "万科城", "王伟", "13812345678", "朝阳区"],  # repeated within the file
    ["5", "龙湖天街", "赵强", "(010) 6552 9988", "朝阳区"],  # a landline
]


def _csv(rows: list[list[str]], encoding: str = "utf-8", quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n", quoting=quoting).writerows(rows)
    return out.getvalue().encode(encoding)


async def _csrf(http: httpx.AsyncClient, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', (await http.get(path)).text).group(1)


async def _upload(http: httpx.AsyncClient, name: str, content: bytes) -> httpx.Response:
    return await http.post(
        "/imports", data={"csrf": await _csrf(http, "/imports")}, files={"file": (name, content)}
    )


async def _finished(http: httpx.AsyncClient, batch_id: int) -> dict:
    """Follow the pushed progress events to the end, then read the result."""
    async with http.stream("GET", f"/imports/{batch_id}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        async for line in events.aiter_lines():
            if line == "event: end":
                break
    return (await http.get(f"/api/imports/{batch_id}")).json()


async def _import(http: httpx.AsyncClient, name: str, content: bytes, **mapping: int) -> dict:
    uploaded = await _upload(http, name, content)
    assert uploaded.status_code == 303, uploaded.text
    batch_id = int(uploaded.headers["location"].rsplit("/", 1)[1])
    page = await http.get(f"/imports/{batch_id}")
    assert 'id="mapping-form"' in page.text
    form = {"csrf": await _csrf(http, f"/imports/{batch_id}")}
    if mapping:
        form |= {f"col_{k}": str(v) for k, v in mapping.items()}
    else:  # take what the page detected
        form |= dict(
            re.findall(
                r'<select name="(col_\w+)"[^>]*>(?:(?!</select>).)*?<option value="(\d+)" selected',
                page.text,
                re.S,
            )
        )
    started = await http.post(f"/imports/{batch_id}/start", data=form)
    assert started.status_code == 303, started.text
    return await _finished(http, batch_id)


def _counts(result: dict) -> dict:
    return {k: result[k] for k in ("total", "inserted", "invalid", "duplicate", "dnc")}


async def test_upload_map_import_csv_gbk_xlsx_with_counts_dedup_and_dnc(hub_server, db, tmp_path):
    await add_user(db, "sue", role="supervisor")
    http = await signed_in(hub_server.base, "sue")
    first = await _import(http, "leads.csv", _csv(TEMPLATE_ROWS))
    assert first["status"] == "done"
    assert _counts(first) == {"total": 5, "inserted": 3, "invalid": 1, "duplicate": 1, "dnc": 0}

    # The same people again, GBK-encoded: now all known (plus the in-file repeat and the bad phone).
    second = await _import(http, "again-gbk.csv", _csv(TEMPLATE_ROWS, "gbk"))
    assert _counts(second) == {"total": 5, "inserted": 0, "invalid": 1, "duplicate": 4, "dnc": 0}

    async with db() as s:
        await s.execute(text("INSERT INTO dnc_numbers (phone_e164) VALUES ('+8613900001111')"))
        await s.commit()
    book = openpyxl.Workbook()
    for row in [["name", "phone", "area"], ["Amy", "13900001111", "Pudong"], ["Ben", 13900002222, "Xuhui"]]:
        book.active.append(row)
    book.save(tmp_path / "english.xlsx")
    third = await _import(http, "english.xlsx", (tmp_path / "english.xlsx").read_bytes())
    assert _counts(third) == {"total": 2, "inserted": 1, "invalid": 0, "duplicate": 0, "dnc": 1}

    rejected = await http.get(f"/imports/{first['id']}/rejected.csv")
    assert rejected.status_code == 200 and rejected.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(rejected.content.decode("utf-8-sig"))))
    assert [r[:2] for r in rows[1:]] == [["4", "invalid phone"], ["5", "repeated in this file"]]
    assert rows[1][4] == '\'=HYPERLINK("x")', "a formula-like cell is escaped"
    await http.aclose()

    async with db() as s:
        leads = (
            await s.execute(
                text("SELECT name, phone_e164, area, attributes, batch_id FROM leads ORDER BY id")
            )
        ).all()
        audited = dict(
            (await s.execute(text("SELECT action, count(*) FROM audit_log GROUP BY action"))).all()
        )
    assert [lead.phone_e164 for lead in leads] == [
        "+8613812345678",
        "+8613987654321",
        "+861065529988",
        "+8613900002222",
    ]
    assert leads[0].name == "王伟" and leads[0].area == "朝阳区" and leads[0].attributes["楼盘"] == "万科城"
    assert audited["leads_imported"] == 3 and audited["rejects_exported"] == 1
    uploads = hub_server.log_path.parent / f"data-{hub_server.port}" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == [], "uploaded files are deleted"


async def test_bad_files_and_mappings_get_clear_errors_and_import_nothing(hub_server, db):
    await add_user(db, "sid", role="admin")
    http = await signed_in(hub_server.base, "sid")
    for name, content, message in [
        ("empty.csv", b"", "empty"),
        ("picture.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a spreadsheet"),
        ("fake.xlsx", b"PK\x03\x04 this is not really a workbook" + bytes(200), "not a spreadsheet"),
    ]:
        response = await _upload(http, name, content)
        assert response.status_code == 400, name
        assert message in re.search(r'data-testid="import-error">([^<]+)<', response.text).group(1).lower()

    # A file without a recognisable phone column: the mapping step says so and insists on a choice.
    uploaded = await _upload(http, "wrong.csv", b"foo,bar\n1,2\n")
    batch_id = int(uploaded.headers["location"].rsplit("/", 1)[1])
    page = await http.get(f"/imports/{batch_id}")
    assert "wrong template" in page.text and "foo" in page.text
    refused = await http.post(f"/imports/{batch_id}/start", data={"csrf": await _csrf(http, "/imports")})
    assert refused.status_code == 400 and "phone numbers" in refused.text
    # Mapping the wrong column just makes every phone invalid; a header-only file fails clearly.
    result = await _import(http, "wrong.csv", b"foo,bar\n1,2\n", phone=1)
    assert _counts(result) == {"total": 1, "inserted": 0, "invalid": 1, "duplicate": 0, "dnc": 0}
    empty = await _import(http, "header-only.csv", "序号,楼盘,姓名,电话\n".encode())
    assert empty["status"] == "failed" and "no data rows" in empty["error"]
    await http.aclose()
    uploads = hub_server.log_path.parent / f"data-{hub_server.port}" / "uploads"
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM leads"))).scalar() == 0
        waiting = {
            r[0]
            for r in await s.execute(
                text("SELECT mapping->>'path' FROM import_batches WHERE status = 'uploaded'")
            )
        }
    # Only the upload still waiting for its column mapping is kept; finished and failed ones are gone.
    assert {p.name for p in uploads.iterdir()} == waiting and len(waiting) == 1


async def test_api_import_with_mapping_and_agent_wakes_up(hub_server, db):
    await add_user(db, "ann")
    await add_user(db, "sue", role="supervisor")
    agent = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    await agent.send("state.set", state="ready")
    await agent.expect("lead.none")

    auth = {"Authorization": f"Bearer {await token(hub_server.base, 'sue')}"}
    content = b"who,number,where\nAmy,13700001111,Pudong\nBob,not-a-phone,Xuhui\n"
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30, headers=auth) as http:
        bad = await http.post("/api/imports", files={"file": ("x.csv", content)}, data={"mapping": "[1]"})
        assert bad.status_code == 400 and bad.json()["error"] == "bad_mapping"
        unmapped = await http.post("/api/imports", files={"file": ("x.csv", content)})
        assert unmapped.status_code == 400 and "phone" in unmapped.json()["message"]
        created = await http.post(
            "/api/imports",
            files={"file": ("x.csv", content)},
            data={"mapping": json.dumps({"phone": 1, "name": 0, "area": 2})},
        )
        assert created.status_code == 202
        result = await _finished(http, created.json()["id"])
    assert _counts(result) == {"total": 2, "inserted": 1, "invalid": 1, "duplicate": 0, "dnc": 0}
    lead = (await agent.expect("lead.assigned"))["lead"]
    assert lead["name"] == "Amy" and lead["area"] == "Pudong" and lead["phone_masked"] == "137****1111"
    await agent.close()
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=30) as anonymous:
        assert (await anonymous.get(f"/api/imports/{created.json()['id']}")).status_code == 401


def _cli_import(database_url: str, redis_url: str, tmp_path, source, **env: str) -> tuple[int, dict]:
    """``lineup import SOURCE``: its exit status and the JSON summary it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "import", str(source)],
        cwd=ROOT,
        env={
            **os.environ,
            "LINEUP_DATABASE_URL": database_url,
            "LINEUP_REDIS_URL": redis_url,
            "LINEUP_DATA_DIR": str(tmp_path / "var"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


async def test_cli_import_prints_json_summary(database_url, redis_url, db, tmp_path):
    await add_leads(db, 1)  # an unrelated existing lead
    source = tmp_path / "leads.csv"
    source.write_bytes(_csv(TEMPLATE_ROWS))
    status, summary = _cli_import(database_url, redis_url, tmp_path, source)
    assert status == 0, summary
    assert {k: summary[k] for k in ("total", "invalid", "duplicate", "dnc", "inserted")} == {
        "total": 5,
        "invalid": 1,
        "duplicate": 1,
        "dnc": 0,
        "inserted": 3,
    }
    assert source.exists(), "the CLI keeps the user's own file"
    status, summary = _cli_import(database_url, redis_url, tmp_path, tmp_path / "missing.csv")
    assert status == 1 and summary["error"] == "not_found"


async def test_verdicts_hold_across_chunks_and_a_failed_import_leaves_nothing(
    database_url, redis_url, db, tmp_path
):
    """Chunks of two rows: a phone's first row decides, whichever chunk the repeats fall in."""
    known, fresh, listed = "13600000001", "13700000002", "13900000003"
    async with db() as s:
        await s.execute(
            text("INSERT INTO leads (name, phone_e164) VALUES ('Old', '+86' || :p)"), {"p": known}
        )
        await s.execute(text("INSERT INTO dnc_numbers (phone_e164) VALUES ('+86' || :p)"), {"p": listed})
        await s.commit()
    rows = [
        ["姓名", "电话"],
        ["A", fresh],  # row 2: new lead
        ["B", listed],  # row 3: do-not-call
        ["C", known],  # row 4: an existing lead
        ["D", "12345"],  # row 5: invalid
        ["E", f"+86 {fresh}"],  # row 6: repeats row 2 (a lead made by an earlier chunk)
        ["F", listed],  # row 7: repeats row 3 (rejected by an earlier chunk)
        ["G", known],  # row 8: repeats row 4
        ["H", "13800000004"],  # row 9: new lead
        ["I", "138 0000 0004"],  # row 10: repeats row 9 in the same chunk
        ["J\rK", "13800000005"],  # row 11: new lead, a bare carriage return in a quoted cell
    ]
    source = tmp_path / "chunks.csv"
    source.write_bytes(_csv(rows, quoting=csv.QUOTE_ALL))
    _, summary = _cli_import(database_url, redis_url, tmp_path, source, LINEUP_IMPORT_CHUNK_ROWS="2")
    assert {k: summary[k] for k in ("total", "invalid", "duplicate", "dnc", "inserted")} == {
        "total": 10,
        "invalid": 1,
        "duplicate": 5,
        "dnc": 1,
        "inserted": 3,
    }
    async with db() as s:
        reasons = dict(
            (await s.execute(text("SELECT row_number, reason FROM import_rejects ORDER BY 1"))).all()
        )
        names = (
            await s.execute(text("SELECT array_agg(name ORDER BY id) FROM leads WHERE batch_id IS NOT NULL"))
        ).scalar()
    assert reasons == {
        3: "dnc",
        4: "duplicate_existing",
        5: "invalid_phone",
        6: "duplicate_in_file",
        7: "duplicate_in_file",
        8: "duplicate_in_file",
        10: "duplicate_in_file",
    }
    assert names == ["A", "H", "J\rK"]

    # Too many rows, found only in the third chunk: the chunks settled before are undone too.
    source.write_bytes(_csv([["姓名", "电话"], *[[f"N{i}", f"1370000{i:04d}"] for i in range(10, 16)]]))
    _, refused = _cli_import(
        database_url, redis_url, tmp_path, source, LINEUP_IMPORT_CHUNK_ROWS="2", LINEUP_IMPORT_MAX_ROWS="5"
    )
    assert refused["status"] == "failed" and "more than 5 rows" in refused["error"]
    assert refused["inserted"] == 0
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM leads WHERE name LIKE 'N%'"))).scalar() == 0
        assert (await s.execute(text("SELECT count(*) FROM import_rejects"))).scalar() == len(reasons)


async def test_files_over_the_size_limit_are_refused_unread(start_hub, db):
    server = start_hub(LINEUP_UPLOAD_MAX_BYTES="2000000")
    await add_user(db, "sal", role="supervisor")
    http = await signed_in(server.base, "sal")
    big = _csv([["name", "phone"]] + [["X" * 20, "13812345678"]] * 80_000)
    assert len(big) > 2_000_000
    response = await _upload(http, "big.csv", big)
    assert response.status_code == 413 and "limit is 1 MB" in response.text
    await http.aclose()
