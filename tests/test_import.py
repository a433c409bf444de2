"""Lead import from the page and the CLI, against a running hub and a real database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import openpyxl
from sqlalchemy import text

from tests.agent_client import AgentClient
from tests.seed import PASSWORD, add_leads, add_user, token
from tests.services import ROOT

TEMPLATE_ROWS = [
    ["序号", "楼盘", "姓名", "电话", "区域"],
    ["1", "万科城", "王伟", "138 1234 5678", "朝阳区"],
    ["2", "碧桂园", "李娜", "+86-139-8765-4321", "海淀区"],
    ["3", "保利花园", "张敏", "12345", "浦东新区"],  # invalid
    ["4", "万科城", "王伟", "13812345678", "朝阳区"],  # duplicate within the file
    ["5", "龙湖天街", "赵强", "(010) 6552 9988", "朝阳区"],  # landline
]


async def _signed_in(base: str, username: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=base, timeout=30)
    page = await http.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = await http.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf})
    assert response.status_code == 303
    return http


async def _upload(http: httpx.AsyncClient, name: str, content: bytes) -> httpx.Response:
    page = await http.get("/imports", headers={"accept": "text/html"})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return await http.post(
        "/imports", data={"csrf": csrf}, files={"file": (name, content)}, headers={"accept": "text/html"}
    )


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def _csv(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    return "\n".join(",".join(r) for r in rows).encode(encoding)


async def test_page_import_of_csv_gbk_and_xlsx_with_counts_and_dedup(hub_server, db, tmp_path):
    await add_user(db, "sue", role="supervisor")
    http = await _signed_in(hub_server.base, "sue")

    first = await _upload(http, "leads.csv", _csv(TEMPLATE_ROWS))
    assert first.status_code == 200, first.text
    assert _counts(first.text) == {"total": 5, "inserted": 3, "invalid": 1, "duplicate": 1}

    # The same people again, GBK-encoded: all duplicates of existing leads now.
    second = await _upload(http, "again-gbk.csv", _csv(TEMPLATE_ROWS, "gbk"))
    assert _counts(second.text) == {"total": 5, "inserted": 0, "invalid": 1, "duplicate": 4}

    book = openpyxl.Workbook()
    sheet = book.active
    for row in [["name", "phone", "area"], ["Amy", "13900001111", "Pudong"], ["Ben", 13900002222, "Xuhui"]]:
        sheet.append(row)
    book.save(tmp_path / "english.xlsx")
    third = await _upload(http, "english.xlsx", (tmp_path / "english.xlsx").read_bytes())
    assert _counts(third.text) == {"total": 2, "inserted": 2, "invalid": 0, "duplicate": 0}
    await http.aclose()

    async with db() as s:
        leads = (
            await s.execute(text("SELECT name, phone_e164, area, attributes FROM leads ORDER BY id"))
        ).all()
        batches = (
            await s.execute(text("SELECT status, total, inserted FROM import_batches ORDER BY id"))
        ).all()
        audited = (
            await s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'leads_imported'"))
        ).scalar()
    assert [lead.phone_e164 for lead in leads] == [
        "+8613812345678",
        "+8613987654321",
        "+861065529988",
        "+8613900001111",
        "+8613900002222",
    ]
    assert leads[0].name == "王伟" and leads[0].area == "朝阳区" and leads[0].attributes["楼盘"] == "万科城"
    assert batches == [("done", 5, 3), ("done", 5, 0), ("done", 2, 2)]
    assert audited == 3
    uploads = Path(hub_server.log_path.parent / f"data-{hub_server.port}" / "uploads")
    assert not uploads.exists() or list(uploads.iterdir()) == [], "uploaded files are deleted"


async def test_bad_files_get_clear_errors_and_import_nothing(hub_server, db):
    await add_user(db, "sid", role="admin")
    http = await _signed_in(hub_server.base, "sid")
    cases = [
        ("wrong.csv", b"foo,bar\n1,2\n", "phone"),
        ("empty.csv", b"", "empty"),
        ("header-only.csv", "序号,楼盘,姓名,电话\n".encode(), "no data rows"),
        ("picture.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a spreadsheet"),
        ("fake.xlsx", b"PK\x03\x04 this is not really a workbook" + bytes(200), "not a spreadsheet"),
    ]
    for name, content, message in cases:
        response = await _upload(http, name, content)
        assert response.status_code == 400, name
        error = re.search(r'data-testid="import-error">([^<]+)<', response.text).group(1)
        assert message.lower() in error.lower(), (name, error)
    await http.aclose()
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM leads"))).scalar() == 0


async def test_import_wakes_an_idle_ready_agent(hub_server, db):
    await add_user(db, "ann")
    await add_user(db, "sue", role="supervisor")
    agent = await AgentClient.connect(hub_server.ws_base, await token(hub_server.base, "ann"))
    await agent.send("state.set", state="ready")
    await agent.expect("lead.none")
    http = await _signed_in(hub_server.base, "sue")
    await _upload(http, "leads.csv", _csv(TEMPLATE_ROWS))
    await http.aclose()
    assert (await agent.expect("lead.assigned"))["lead"]["phone_masked"].count("*") >= 4
    await agent.close()


async def test_cli_import_prints_json_summary(database_url, redis_url, db, tmp_path):
    await add_leads(db, 1)  # an unrelated existing lead
    source = tmp_path / "leads.csv"
    source.write_bytes(_csv(TEMPLATE_ROWS))
    env = {
        **os.environ,
        "LINEUP_DATABASE_URL": database_url,
        "LINEUP_REDIS_URL": redis_url,
        "LINEUP_DATA_DIR": str(tmp_path / "var"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "import", str(source)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: summary[k] for k in ("total", "invalid", "duplicate", "inserted")} == {
        "total": 5,
        "invalid": 1,
        "duplicate": 1,
        "inserted": 3,
    }
    bad = subprocess.run(
        [sys.executable, "-m", "hub.cli", "import", str(tmp_path / "missing.csv")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"] == "not_found"
