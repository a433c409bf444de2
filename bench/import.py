"""Lead import at scale: a dirty million-row CSV through the real import job, against a naive import.

    python bench/import.py --rows 1000000 [--naive-rows 20000] [--json]

Generates the customer template (``序号,楼盘,姓名,电话,区域``) with realistic dirt — invalid phones,
numbers repeated in other spellings, landlines, full-width digits, blank rows — and knows exactly
what it wrote. Each import runs in a fresh child process on a fresh database (copied from one
migrated template seeded with do-not-call numbers and existing leads), so the peak RSS reported is
that import's alone:

- the real job (``hub.import_jobs.run_import``, as ``hub.import_worker`` runs it for an upload) on the
  whole file and on its first tenth: rows/s, and peak RSS to show memory stays flat in file size;
- the baseline: the first ``--naive-rows`` rows the way a simple app would do it (phonenumbers per
  row, a SELECT per row, ``session.add(Lead(...))`` and a commit per row).

Every run's counts are checked against what the generator wrote. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import csv
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select, text

from bench.lab import Services, forget_redis_keys, resolve_services
from bench.lead_file import (
    HEADER,
    LANDLINE_FORMATS,
    Written,
    already_a_lead,
    check_generator,
    generate,
    head,
    library_e164,
    on_dnc_list,
    unique_phone,
)
from storage.db import create_engine, session_factory
from storage.lead_intake import NewLead, insert_leads
from storage.migrate import migrate
from storage.models import DncNumber, Lead
from tests.services import create_database, drop_database

log = logging.getLogger("bench.import")

# DESIGN.md section 8, "Import".
BUDGET_ROWS_PER_S = 50_000
# "Flat": the whole file may not need more than this much more peak RSS than its first tenth. A job
# that held the file would need ≥ 3×: a million rows as Python lists of strings take ~0.5 GB. Not
# 1.0: the first tenth is only five 20,000-row chunks, too short to fill the chunk queue every time.
FLAT_RATIO = 1.5

# --- the child processes: one measurement each, so the peak RSS is that import's ------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _rss_kb() -> int:
    return _status_kb("VmRSS")


def _peak_rss_kb() -> int:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would
    # report its parent's peak (the generator's) when that was higher.
    return _status_kb("VmHWM")


async def measure_import(job: dict[str, Any]) -> dict[str, Any]:
    """Run the real job on ``job["path"]`` the way ``hub.import_worker`` does (Redis progress on)."""
    from redis.asyncio import Redis

    from hub.import_jobs import run_import
    from hub.settings import Settings
    from storage import import_jobs as job_store

    settings = Settings(
        database_url=job["database_url"],
        redis_url=job["redis_url"],
        redis_prefix=job["redis_prefix"],
        data_dir=Path(job["data_dir"]),
    )
    engine = create_engine(settings.database_url, pool_size=2)
    redis = Redis.from_url(settings.redis_url)
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    # The job deletes its file when it ends, as it does an upload's.
    work = settings.upload_dir / f"{secrets.token_hex(8)}.upload"
    shutil.copyfile(job["path"], work)
    async with session_factory(engine)() as s:
        batch_id = await job_store.create_batch(
            s,
            filename=Path(job["path"]).name,
            created_by=None,
            campaign_id=None,
            bytes_total=work.stat().st_size,
            mapping={},
            status="queued",
        )
    # Time Postgres' part by wrapping the per-chunk step (looked up on the module at call time):
    # while it runs, the parser thread reads the next chunk.
    settle_chunk, phases = job_store.settle_chunk, {"postgres_s": 0.0, "chunks": 0}

    async def timed_settle_chunk(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        settled = await settle_chunk(*args, **kwargs)
        phases["postgres_s"] += time.perf_counter() - began
        phases["chunks"] += 1
        return settled

    job_store.settle_chunk = timed_settle_chunk  # type: ignore[assignment]
    rss_start = _rss_kb()
    start = time.perf_counter()
    try:
        result = await run_import(
            engine, redis, settings, batch_id, work, mapping=None, campaign_id=None, actor_id=None
        )
        seconds = time.perf_counter() - start
    finally:
        await redis.aclose()
        await engine.dispose()
    return {
        "batch_id": batch_id,
        "status": result.status,
        "error": result.error,
        "counts": {k: result.counts[k] for k in ("total", "inserted", "invalid", "duplicate", "dnc")},
        "seconds": seconds,
        **phases,
        "rss_start_kb": rss_start,
        "rss_peak_kb": _peak_rss_kb(),
    }


async def measure_naive(job: dict[str, Any]) -> dict[str, Any]:
    """The first ``job["rows"]`` rows the way a simple app would import them: one row at a time."""
    engine = create_engine(job["database_url"], pool_size=1)
    counts = Counter[str]()
    rss_start = _rss_kb()
    start = time.perf_counter()
    try:
        async with session_factory(engine)() as s:
            # Read on the event loop, as a simple app would.
            with open(job["path"], encoding="utf-8", newline="") as f:  # noqa: ASYNC230
                reader = csv.reader(f)
                next(reader)
                for _, row in zip(range(job["rows"]), reader, strict=False):
                    if not any(cell.strip() for cell in row):
                        continue
                    counts["total"] += 1
                    _, estate, name, raw, area = row
                    phone = library_e164(raw.strip())
                    if phone is None:
                        counts["invalid"] += 1
                        continue
                    known = select(Lead.id).where(Lead.phone_e164 == phone, Lead.deleted_at.is_(None))
                    if await s.scalar(known.limit(1)) is not None:
                        counts["duplicate"] += 1
                        continue
                    if await s.scalar(select(DncNumber.id).where(DncNumber.phone_e164 == phone).limit(1)):
                        counts["dnc"] += 1
                        continue
                    s.add(
                        Lead(
                            name=name,
                            phone_e164=phone,
                            area=area,
                            attributes={"楼盘": estate},
                            source=NAIVE_SOURCE,
                        )
                    )
                    await s.commit()
                    counts["inserted"] += 1
        seconds = time.perf_counter() - start
    finally:
        await engine.dispose()
    return {
        "counts": {k: counts[k] for k in ("total", "inserted", "invalid", "duplicate", "dnc")},
        "seconds": seconds,
        "rss_start_kb": rss_start,
        "rss_peak_kb": _peak_rss_kb(),
    }


NAIVE_SOURCE = "bench-naive"


def child_main(raw: str) -> int:
    logging.basicConfig(level=logging.INFO, format="ts=%(asctime)s level=%(levelname)s %(message)s")
    job = json.loads(raw)
    measure = measure_naive if job["kind"] == "naive" else measure_import
    print(json.dumps(asyncio.run(measure(job))), flush=True)
    return 0


# --- the parent: files, databases, children, checks, report ---------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Run:
    label: str
    rows: int
    written: Written
    figures: dict[str, Any]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.figures["seconds"]


async def seed_known(database_url: str, unique: int) -> tuple[int, int]:
    """The do-not-call numbers and existing leads the generator's files contain; returns their counts."""
    phones = [unique_phone(j)[2] for j in range(unique)]
    dnc = [{"phone_e164": p, "reason": "bench"} for j, p in enumerate(phones) if on_dnc_list(j)]
    known = [NewLead(name=f"老客户{j}", phone_e164=p) for j, p in enumerate(phones) if already_a_lead(j)]
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as s:
            for start in range(0, len(dnc), 5000):
                await s.execute(insert(DncNumber), dnc[start : start + 5000])
            await s.commit()
            for start in range(0, len(known), 1000):
                await insert_leads(s, known[start : start + 1000], batch_id=None)
    finally:
        await engine.dispose()
    return len(dnc), len(known)


async def run_child(
    job: dict[str, Any], profile: Path | None = None, py_spy: str = "py-spy"
) -> dict[str, Any]:
    """Run one measurement in a fresh process (its own session, stopped here on the way out)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    if profile is not None:
        fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(profile.suffix, "raw")
        argv = [py_spy, "record", "--rate", "200", "--format", fmt, "--output", str(profile), "--", *argv]
    child = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    try:
        out, _ = await child.communicate()
    finally:
        if child.returncode is None:
            os.killpg(child.pid, signal.SIGTERM)
            await child.wait()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"the {job['kind']} measurement failed (exit {child.returncode})")
    return json.loads(lines[-1])


async def database_facts(database_url: str, batch_id: int | None) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            if batch_id is None:
                leads = await conn.scalar(
                    text("SELECT count(*) FROM leads WHERE source = :s"), {"s": NAIVE_SOURCE}
                )
                return {"leads": leads}
            batch = (
                await conn.execute(
                    text(
                        "SELECT status, total, inserted, invalid, duplicate, dnc"
                        " FROM import_batches WHERE id = :b"
                    ),
                    {"b": batch_id},
                )
            ).one()
            rejects = await conn.execute(
                text("SELECT reason, count(*) FROM import_rejects WHERE batch_id = :b GROUP BY reason"),
                {"b": batch_id},
            )
            leads = await conn.scalar(text("SELECT count(*) FROM leads WHERE batch_id = :b"), {"b": batch_id})
            return {"batch": dict(batch._mapping), "rejects": dict(rejects.all()), "leads": leads}
    finally:
        await engine.dispose()


def check_import(run: Run, facts: dict[str, Any]) -> list[Check]:
    """The job's counts, its batch row, its rejected rows and its leads against what was written."""
    w, counts = run.written, run.figures["counts"]
    rejects = {
        "invalid_phone": w.invalid,
        "duplicate_in_file": w.repeated,
        "duplicate_existing": w.existing,
        "dnc": w.dnc,
    }
    batch = {k: v for k, v in facts["batch"].items() if k != "status"}
    return [
        Check(f"{run.label}: job finished", run.figures["status"] == "done", run.figures.get("error", "")),
        Check(f"{run.label}: counts = written", counts == w.expected, f"{counts} vs {w.expected}"),
        Check(f"{run.label}: batch row = written", batch == w.expected, f"{batch}"),
        Check(f"{run.label}: rejected rows by reason", facts["rejects"] == rejects, f"{facts['rejects']}"),
        Check(
            f"{run.label}: leads in the batch", facts["leads"] == w.expected["inserted"], f"{facts['leads']}"
        ),
    ]


def check_naive(run: Run, facts: dict[str, Any]) -> list[Check]:
    """Same leads, same rejects; a row-by-row import calls a repeat of a DNC number "dnc" again."""
    expected, counts = run.written.expected, run.figures["counts"]
    same = [counts[k] == expected[k] for k in ("total", "inserted", "invalid")]
    same.append(counts["duplicate"] + counts["dnc"] == expected["duplicate"] + expected["dnc"])
    return [
        Check(f"{run.label}: counts = written", all(same), f"{counts} vs {expected}"),
        Check(f"{run.label}: leads inserted", facts["leads"] == expected["inserted"], f"{facts['leads']}"),
    ]


async def bench(args: argparse.Namespace) -> tuple[dict[str, Any], list[Run], list[Check]]:
    workdir = Path(tempfile.mkdtemp(prefix="lineup-bench-import-"))
    # Registered first so it runs last: after the bundled servers' own atexit stops.
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    services: Services = resolve_services(workdir)
    full, tenth = workdir / "leads.csv", workdir / "leads-tenth.csv"
    tag = f"bench_import_{secrets.token_hex(4)}"
    prefix = f"lineup-bench-{secrets.token_hex(4)}:"
    created: list[str] = []

    async def fresh_database(suffix: str, template: str | None = None) -> str:
        url = await create_database(services.admin_database_url, f"{tag}_{suffix}", template=template)
        created.append(f"{tag}_{suffix}")
        return url

    load_average = os.getloadavg()[0]
    try:
        check_generator()
        tenth_rows, naive_rows = max(1, args.rows // 10), min(args.naive_rows, args.rows)
        started = time.perf_counter()
        written = await asyncio.to_thread(generate, full, args.rows, args.seed, (tenth_rows, naive_rows))
        await asyncio.to_thread(head, full, tenth, tenth_rows)
        log.info(
            "event=generated rows=%s bytes=%s s=%.1f",
            args.rows,
            full.stat().st_size,
            time.perf_counter() - started,
        )
        template_url = await fresh_database("template")
        await migrate(template_url)
        seeded = await seed_known(template_url, written[args.rows].unique)
        log.info("event=template_ready dnc=%s existing_leads=%s", *seeded)

        common = {"redis_url": services.redis_url, "redis_prefix": prefix, "data_dir": str(workdir / "data")}
        runs: list[Run] = []
        checks: list[Check] = []
        plan = [  # the naive run reads only the first rows of the file it is given
            ("naive ORM, row by row", naive_rows, "naive", full),
            ("import job, first tenth", tenth_rows, "import", tenth),
            ("import job, whole file", args.rows, "import", full),
        ]
        for number, (label, rows, kind, path) in enumerate(plan):
            url = await fresh_database(f"run{number}", template=f"{tag}_template")
            job = {**common, "kind": kind, "database_url": url, "path": str(path), "rows": rows}
            profile = args.profile if kind == "import" and rows == args.rows else None
            log.info("event=run label=%r rows=%s", label, rows)
            run = Run(label, rows, written[rows], await run_child(job, profile, args.py_spy))
            facts = await database_facts(url, run.figures.get("batch_id"))
            checks += check_naive(run, facts) if kind == "naive" else check_import(run, facts)
            runs.append(run)
            await drop_database(services.admin_database_url, created.pop())
        config = {
            "rows": args.rows,
            "bytes": full.stat().st_size,
            "seed": args.seed,
            "postgres": services.postgres,
            "redis": services.redis,
            "cpus": os.cpu_count(),
            "load_average_1m": round(load_average, 2),
            "dnc_seeded": seeded[0],
            "existing_leads_seeded": seeded[1],
        }
        return config, runs, checks
    finally:
        for name in reversed(created):
            await drop_database(services.admin_database_url, name)
        await forget_redis_keys(services.redis_url, prefix)
        for path in (full, tenth):
            path.unlink(missing_ok=True)
        log.info("event=cleaned_up databases=%s redis_prefix=%s", len(created), prefix)


def budget(runs: list[Run]) -> list[Check]:
    """DESIGN.md section 8: ≥ 50,000 rows/s for the whole file, and memory flat in file size."""
    _, tenth, whole = runs
    ratio = whole.figures["rss_peak_kb"] / tenth.figures["rss_peak_kb"]
    return [
        Check(
            f"rows/s ≥ {BUDGET_ROWS_PER_S:,} (whole file)",
            whole.rows_per_s >= BUDGET_ROWS_PER_S,
            f"{whole.rows_per_s:,.0f}",
        ),
        Check(
            f"memory flat: peak RSS whole file / first tenth ≤ {FLAT_RATIO:g}",
            ratio <= FLAT_RATIO,
            f"{ratio:.2f} ({_mb(whole.figures['rss_peak_kb'])} vs {_mb(tenth.figures['rss_peak_kb'])})",
        ),
    ]


def _mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def render_table(config: dict[str, Any], runs: list[Run], checks: list[Check]) -> str:
    naive, _, whole = runs
    w = whole.written
    landlines = sum(n for label, n in w.formats.items() if label in {f[0] for f in LANDLINE_FORMATS})
    lines = [
        f"Lineup lead import: a {config['rows']:,}-row CSV ({config['bytes'] / 1e6:.1f} MB, "
        f"header {','.join(HEADER)}), each run in a fresh process and database",
        f"  dirt: {w.invalid / w.rows:.1%} invalid phones, {w.repeated / w.rows:.1%} repeats in other "
        f"spellings, {landlines / w.unique:.1%} landlines, {w.blank / w.rows:.1%} blank rows",
        f"  seeded: {config['dnc_seeded']:,} do-not-call numbers, {config['existing_leads_seeded']:,} "
        "existing leads (some of each are in the file)",
        f"  postgres {config['postgres']}, redis {config['redis']}; machine: {config['cpus']} CPUs, "
        f"load average {config['load_average_1m']:g} before the run",
        "",
        f"  {'':<26}{'rows':>11}{'seconds':>10}{'rows/s':>10}{'RSS start':>12}{'peak RSS':>11}",
    ]
    for run in runs:
        f = run.figures
        lines.append(
            f"  {run.label:<26}{run.rows:>11,}{f['seconds']:>10.2f}{run.rows_per_s:>10,.0f}"
            f"{_mb(f['rss_start_kb']):>12}{_mb(f['rss_peak_kb']):>11}"
        )
    f = whole.figures
    rest = f["seconds"] - f["postgres_s"]
    lines += [
        f"  whole file: Postgres busy {f['postgres_s']:.2f} s (COPY + settle of {f['chunks']} chunks, while"
        f" Python reads the next), the rest {rest:.2f} s (first chunk, waiting for Python, progress, audit)",
        f"  import job vs naive: ×{whole.rows_per_s / naive.rows_per_s:,.0f} rows/s",
        "",
        f"  {'counts':<26}{'total':>11}{'inserted':>10}{'invalid':>10}{'duplicate':>12}{'dnc':>11}",
    ]
    for label, counts in [
        ("written (whole file)", w.expected),
        ("import job, whole file", whole.figures["counts"]),
        (f"written (first {naive.rows:,})", naive.written.expected),
        ("naive ORM, row by row", naive.figures["counts"]),
    ]:
        lines.append(
            f"  {label:<26}{counts['total']:>11,}{counts['inserted']:>10,}{counts['invalid']:>10,}"
            f"{counts['duplicate']:>12,}{counts['dnc']:>11,}"
        )
    lines.append("  (row by row, a repeat of a do-not-call number meets the list again: dnc, not duplicate)")
    lines += ["", "Budget (DESIGN.md section 8, import):"]
    lines += [f"  {'met ' if c.ok else 'MISS'}  {c.name}: {c.detail}" for c in budget(runs)]
    lines += ["", "Checks (counts against what the generator wrote):"]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'}  {c.name}" + ("" if c.ok else f": {c.detail}") for c in checks]
    return "\n".join(lines)


def as_json(config: dict[str, Any], runs: list[Run], checks: list[Check]) -> dict[str, Any]:
    return {
        "config": config,
        "runs": [
            {"label": r.label, "rows": r.rows, "rows_per_s": round(r.rows_per_s, 1), **r.figures}
            for r in runs
        ],
        "written": {
            **{k: v for k, v in vars(runs[-1].written).items() if k != "formats"},
            "formats": dict(runs[-1].written.formats),
            "expected": runs[-1].written.expected,
        },
        "budget": [asdict(c) for c in budget(runs)],
        "checks": [asdict(c) for c in checks],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="data rows in the file (default 1000000)")
    parser.add_argument(
        "--naive-rows", type=int, default=20_000, help="rows the naive baseline imports (default 20000)"
    )
    parser.add_argument("--seed", type=int, default=2024, help="the generator's seed")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the whole-file import with py-spy into this file (.svg flame graph, .json speedscope, "
        "else collapsed stacks); slows the import down",
    )
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy executable for --profile")
    args = parser.parse_args(argv)
    if args.rows < 10 or args.naive_rows < 1:
        parser.error("--rows must be at least 10 and --naive-rows positive")
    if args.profile is not None:
        args.profile = args.profile.resolve()
    return args


async def _main(args: argparse.Namespace) -> bool:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM cleans up like Ctrl-C: cancel, and the finally clauses drop the databases.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    config, runs, checks = await bench(args)
    print(
        json.dumps(as_json(config, runs, checks), indent=2)
        if args.json
        else render_table(config, runs, checks)
    )
    return all(c.ok for c in checks)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1])
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="ts=%(asctime)s level=%(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return 0 if asyncio.run(_main(args)) else 1
    except KeyboardInterrupt:
        log.warning("event=interrupted")
        return 130
    except asyncio.CancelledError:  # SIGTERM, after the clean-up ran
        log.warning("event=terminated")
        return 143


if __name__ == "__main__":
    sys.exit(main())
