"""Lead import in a real browser (Debian's Chromium): upload, map columns, pushed progress, rejected rows."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import text

from tests.browser import sign_in
from tests.seed import add_user

ROWS = 30_000  # two chunks for the job, so the page has something to show before the end
DNC_ROW = 50
# Every htmx SSE message the page received: its event name and the status the page then showed.
RECORD_PUSHES = """
window.__pushes = [];
document.addEventListener("htmx:sseMessage", function (e) {
  var progress = document.getElementById("import-progress");
  window.__pushes.push({event: e.detail.type, status: progress ? progress.dataset.status : null});
});
"""


def phone(k: int) -> str:
    return f"139{k:08d}"


def leads_file() -> tuple[bytes, list[list[str]]]:
    """A CSV whose headers no template knows, and the rejected rows it must give: [row, reason, cells…]."""
    rows, rejected = [["who", "number", "where"]], []
    for k in range(ROWS):
        if k == 1:
            row, reason = ["=1+1", "12345", "Pudong"], "invalid phone"
        elif k % 100 == 7:
            row, reason = [f"Bad {k}", f"139{k:05d}", "Xuhui"], "invalid phone"  # 8 digits
        elif k % 100 == 13:  # the previous row's phone, spelled differently
            n = phone(k - 1)
            row, reason = [f"Again {k}", f"{n[:3]} {n[3:7]} {n[7:]}", "Minhang"], "repeated in this file"
        else:
            row, reason = [f"Lead {k}", phone(k), "Jing'an"], ""
        if k == DNC_ROW:
            reason = "on a do-not-call list"
        rows.append(row)
        if reason:
            rejected.append([str(k + 2), reason, *row])  # the header is row 1
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode(), rejected


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    await context.add_init_script(RECORD_PUSHES)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    yield page
    await context.close()
    assert errors == [], f"the page logged errors: {errors}"


def count(text: str | None) -> int:
    """A count as the page shows it, with or without thousands separators."""
    return int(re.sub(r"[^\d]", "", text or ""))


async def test_supervisor_maps_unknown_columns_watches_progress_and_downloads_rejected_rows(
    hub_server, db, page, tmp_path
):
    await add_user(db, "sue", role="supervisor")
    content, rejected = leads_file()
    async with db() as s:
        await s.execute(
            text("INSERT INTO dnc_numbers (phone_e164) VALUES (:p)"), {"p": "+86" + phone(DNC_ROW)}
        )
        await s.commit()

    await sign_in(page, hub_server.base, "sue")
    await page.get_by_role("link", name="Import leads").first.click()
    await expect(page).to_have_url(f"{hub_server.base}/imports")
    await page.get_by_label("Spreadsheet (CSV, XLSX or XLS)").set_input_files(
        {"name": "spring-fair.csv", "mimeType": "text/csv", "buffer": content}
    )
    await page.get_by_role("button", name="Upload").click()

    # No header is recognised: the mapping step says so and shows the file; the user picks the columns.
    await expect(page).to_have_url(re.compile(r"/imports/\d+$"))
    await expect(page.get_by_role("status")).to_contain_text("wrong template")
    await expect(page.locator(".preview-table")).to_contain_text("Lead 0")
    await page.get_by_label("Phone").select_option(label="number")
    await page.get_by_label("Name").select_option(label="who")
    await page.get_by_label("Area").select_option(label="where")
    await page.get_by_role("button", name="Start import").click()

    # The progress arrives by push (server-sent events) on the same page, ending with the counts.
    done = page.get_by_test_id("import-done")
    await expect(done).to_be_visible(timeout=25_000)
    pushes = await page.evaluate("window.__pushes")
    statuses = [p["status"] for p in pushes if p["event"] == "progress"]
    # The stream opens on the current state, which cannot be the end yet (the worker process is
    # still starting); every update after it is pushed, so "running" must show before "done".
    assert statuses[0] in ("queued", "running") and statuses[-1] == "done", pushes
    assert "running" in statuses, f"no progress was pushed before the end: {pushes}"
    result = page.get_by_test_id("import-result")
    shown = {
        name: count(await result.locator(f"[data-count={name}]").text_content())
        for name in ("total", "inserted", "invalid", "duplicate", "dnc")
    }
    reasons = [r[1] for r in rejected]
    assert shown == {
        "total": ROWS,
        "inserted": ROWS - len(rejected),
        "invalid": reasons.count("invalid phone"),
        "duplicate": reasons.count("repeated in this file"),
        "dnc": 1,
    }

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download rejected rows (CSV)").click()
    download = await download_info.value
    await download.save_as(tmp_path / download.suggested_filename)
    saved = (tmp_path / download.suggested_filename).read_bytes()
    assert saved.startswith("\ufeff".encode()), "Excel needs the BOM to read UTF-8"
    rows = list(csv.reader(io.StringIO(saved.decode("utf-8-sig"))))
    assert rows[0] == ["row", "reason", "cells"]
    assert rows[1] == ["3", "invalid phone", "'=1+1", "12345", "Pudong"], "a formula-like cell is escaped"
    rejected[0][2] = "'=1+1"
    assert rows[1:] == rejected
