"""Lead claims at scale: 10,000,000 leads, 50 concurrent claimers, against the naive claim.

    python bench/claims.py [--leads 10000000] [--claimers 50] [--processes 2] [--duration 20] [--json]

Fills a fresh database with ``--leads`` leads (two campaigns weighted 3:1 and the general pool,
a fifth of them owned by the claimers, shared phone numbers, retries due and not due, earlier
contacts) and measures, in the same run:

- **naive**: what older telesales systems do, ``SELECT … ORDER BY random() LIMIT 1`` then
  ``UPDATE … WHERE held_by IS NULL``, with no contact policy;
- **lineup**: the hub's claim (``hub.dispatch.Dispatcher.next_lead``: dispatch order, mix
  weights, the contact policy checked under the number's lock), in one process as one hub
  process would run it (``--processes 2`` spreads the claimers over two, as two hub processes).

Each claimer loops: claim (timed, ``time.perf_counter``), then release the lead as a no-answer
would (status retry, due in two hours) with one UPDATE, not timed. Dispositions themselves are
measured end to end, over websockets, by bench/agents.py. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench.figures import BUDGET_CLAIMS_PER_S, BUDGET_P99_MS, percentile
from bench.lab import resolve_services
from hub.contact_gate import ContactGate
from hub.dispatch import Dispatcher
from hub.policy import DEMO_POLICY_JSON
from storage.db import create_engine, session_factory, sync_url
from storage.migrate import migrate
from tests.services import create_database, drop_database

log = logging.getLogger("bench.claims")

LEASE_S = 600.0
DISPATCH_POOL = 4  # as a hub process (LINEUP_DISPATCH_POOL_SIZE)
WARMUP_S = 3.0
NAIVE_WINDOW_S = 45.0
CAMPAIGNS = (("Courses A", 3), ("Courses B", 1))  # name, mix weight

NAIVE_PICK = (
    "SELECT id FROM leads WHERE held_by IS NULL AND deleted_at IS NULL AND status <> 'closed'"
    " AND next_attempt_at <= now() AND (owner_id = $1 OR owner_id IS NULL) ORDER BY random() LIMIT 1"
)
NAIVE_TAKE = (
    "UPDATE leads SET held_by = $1, lease_expires_at = now() + interval '10 minutes'"
    " WHERE id = $2 AND held_by IS NULL RETURNING id"
)
RELEASE = (
    "UPDATE leads SET held_by = NULL, lease_expires_at = NULL, cleared_at = NULL, status = 'retry',"
    " next_attempt_at = now() + interval '2 hours', attempts = attempts + 1 WHERE id = $1"
)

# Lead i: campaign A (6 in 10), B (3 in 10) or none; owned by a claimer (1 in 5); a number shared
# with lead i + PHONES; a retry due (1 in 40) or not yet due (1 in 40); closed (1 in 20).
PHONES = 9_000_000
FILL = """
INSERT INTO leads (id, name, phone_e164, area, status, owner_id, campaign_id, next_attempt_at,
                   attempts, last_outcome, created_at)
SELECT i, 'Lead ' || i, '+86138' || lpad((i % {phones})::text, 8, '0'), 'Area ' || (i % 50),
    CASE WHEN i % 20 = 1 THEN 'closed' WHEN i % 40 IN (2, 3) THEN 'retry' ELSE 'new' END,
    CASE WHEN i % 5 = 0 THEN ('{agents}'::int[])[1 + (i / 5) % {claimers}] END,
    CASE WHEN i % 10 < 6 THEN {campaign_a} WHEN i % 10 < 9 THEN {campaign_b} END,
    CASE WHEN i % 40 = 2 THEN now() - interval '1 hour' WHEN i % 40 = 3 THEN now() + interval '1 day'
         ELSE now() - interval '2 days' END,
    CASE WHEN i % 40 IN (2, 3) THEN 1 ELSE 0 END,
    CASE WHEN i % 40 IN (2, 3) THEN 'no_answer' END,
    now() - interval '2 days'
FROM generate_series({start}, {stop}) AS i
"""
CONTACTS = """
INSERT INTO contact_attempts (lead_id, agent_id, outcome, note, phone_e164, created_at)
SELECT id, {first_agent}, 'no_answer', '', phone_e164, now() - interval '26 hours'
FROM leads WHERE status = 'retry'
"""
FILL_CHUNK = 1_000_000


@dataclass(frozen=True)
class Result:
    name: str
    claimers: int
    processes: int
    window_s: float
    claims: int
    claims_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    refused: int  # naive: lost the race to another claimer; lineup: offers with no lead
    unfinished: int  # claims still running when the window closed (naive only)


def summarise(
    name: str,
    claimers: int,
    processes: int,
    window_s: float,
    latencies: list[float],
    refused: int,
    unfinished: int = 0,
) -> Result:
    ordered = sorted(t * 1000 for t in latencies)
    return Result(
        name,
        claimers,
        processes,
        round(window_s, 2),
        len(ordered),
        round(len(ordered) / window_s, 1),
        round(percentile(ordered, 0.50), 2),
        round(percentile(ordered, 0.99), 2),
        round(ordered[-1] if ordered else 0.0, 2),
        refused,
        unfinished,
    )


# -- the database ---------------------------------------------------------------------------------


async def fill(url: str, leads: int, claimers: int) -> list[int]:
    """Agents, campaigns, policy and ``leads`` leads; returns the claimers' user ids."""
    conn = await asyncpg.connect(sync_url(url))
    try:
        agent_ids = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO users (username, display_name, password_hash, role)"
                " SELECT 'claimer' || n, 'Claimer ' || n, 'x', 'sales' FROM generate_series(1, $1) n"
                " RETURNING id",
                claimers,
            )
        ]
        campaign_ids = []
        for name, weight in CAMPAIGNS:
            cid = await conn.fetchval(
                "INSERT INTO campaigns (name, kind, mix_weight) VALUES ($1, 'sales', $2) RETURNING id",
                name,
                weight,
            )
            await conn.execute(
                "INSERT INTO campaign_agents (campaign_id, user_id) SELECT $1, unnest($2::int[])",
                cid,
                agent_ids,
            )
            campaign_ids.append(cid)
        # Open at any hour so the figures do not depend on when the bench runs; caps still apply.
        await conn.execute(
            "INSERT INTO system_settings (key, value) VALUES ('contact.default', $1::jsonb)",
            json.dumps(DEMO_POLICY_JSON),
        )
        # Indexes are built once after the fill, as a bulk load would: far faster than row by row.
        indexes = [
            r["indexdef"]
            for r in await conn.fetch(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'leads' AND indexname <> 'leads_pkey'"
            )
        ]
        for definition in indexes:
            await conn.execute("DROP INDEX " + definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0])
        started = time.perf_counter()
        for start in range(1, leads + 1, FILL_CHUNK):
            stop = min(leads, start + FILL_CHUNK - 1)
            await conn.execute(
                FILL.format(
                    phones=PHONES,
                    agents="{" + ",".join(map(str, agent_ids)) + "}",
                    claimers=claimers,
                    campaign_a=campaign_ids[0],
                    campaign_b=campaign_ids[1],
                    start=start,
                    stop=stop,
                )
            )
            log.info("event=filled leads=%s seconds=%.0f", stop, time.perf_counter() - started)
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for definition in indexes:
            await conn.execute(definition)
        await conn.execute("SELECT setval('leads_id_seq', $1)", leads)
        await conn.execute(CONTACTS.format(first_agent=agent_ids[0]))
        await conn.execute("VACUUM ANALYZE leads")
        await conn.execute("VACUUM ANALYZE contact_attempts")
        log.info("event=indexed seconds=%.0f", time.perf_counter() - started)
        return agent_ids
    finally:
        await conn.close()


# -- the naive claim ------------------------------------------------------------------------------


async def naive_run(url: str, agent_ids: list[int]) -> Result:
    """The naive claim with every claimer at once, for a fixed window; unfinished claims are cut."""
    pool = await asyncpg.create_pool(sync_url(url), min_size=len(agent_ids), max_size=len(agent_ids))
    latencies: list[float] = []
    lost = 0
    start = time.perf_counter()
    end = start + NAIVE_WINDOW_S

    async def claimer(agent_id: int) -> None:
        nonlocal lost
        async with pool.acquire() as conn:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                lead_id = await conn.fetchval(NAIVE_PICK, agent_id)
                taken = await conn.fetchval(NAIVE_TAKE, agent_id, lead_id) if lead_id else None
                if time.perf_counter() > end:
                    return
                if taken is None:
                    lost += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                await conn.execute(RELEASE, taken)

    tasks = [asyncio.create_task(claimer(a)) for a in agent_ids]
    await asyncio.wait(tasks, timeout=NAIVE_WINDOW_S)
    unfinished = sum(1 for t in tasks if not t.done())
    for task in tasks:
        task.cancel()  # asyncpg cancels the running query on the server
    await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()
    return summarise("naive", len(agent_ids), 1, NAIVE_WINDOW_S, latencies, lost, unfinished)


# -- the hub's claim, one process per core --------------------------------------------------------


async def _no_reset(connection: asyncpg.Connection) -> None:
    """The release leaves no session state (as the claim's pool in hub.dispatch)."""


def lineup_worker(url: str, agent_ids: list[int], begin: float, duration: float, out: Any) -> None:
    """One process's claimers; sends (latencies in the window, offers with no lead) back."""
    out.send(asyncio.run(_lineup_claimers(url, agent_ids, begin, duration)))
    out.close()


async def _lineup_claimers(
    url: str, agent_ids: list[int], begin: float, duration: float
) -> tuple[list[float], int]:
    engine = create_engine(url, pool_size=2)  # the contact policies, re-read every few seconds
    dispatcher = Dispatcher(url, ContactGate(session_factory(engine)), LEASE_S, DISPATCH_POOL)
    await dispatcher.start()
    release_pool = await asyncpg.create_pool(
        sync_url(url), min_size=DISPATCH_POOL, max_size=DISPATCH_POOL, reset=_no_reset
    )

    async def release(lead_id: int) -> None:
        await release_pool.execute(RELEASE, lead_id)

    latencies: list[float] = []
    empty = 0
    day = datetime.now(UTC).date()
    window_start, window_end = begin + WARMUP_S, begin + WARMUP_S + duration

    async def claimer(agent_id: int) -> None:
        nonlocal empty
        await asyncio.sleep(max(0.0, begin - time.time()))
        while time.time() < window_end:
            wall, t0 = time.time(), time.perf_counter()
            offer = await dispatcher.next_lead(agent_id, general_pool=True, new_lead_cap=None, day=day)
            elapsed = time.perf_counter() - t0
            if offer.lead is None:
                empty += 1
                await asyncio.sleep(0.01)
                continue
            if window_start <= wall and wall + elapsed <= window_end:
                latencies.append(elapsed)
            await release(offer.lead.id)

    await asyncio.gather(*(claimer(a) for a in agent_ids))
    await release_pool.close()
    await dispatcher.close()
    await engine.dispose()
    return latencies, empty


def lineup_run(url: str, agent_ids: list[int], processes: int, duration: float) -> Result:
    context = multiprocessing.get_context("spawn")
    begin = time.time() + 5.0  # every process connected and imported before the start
    workers, pipes = [], []
    for p in range(processes):
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(
            target=lineup_worker, args=(url, agent_ids[p::processes], begin, duration, send), daemon=True
        )
        worker.start()
        workers.append(worker)
        pipes.append(receive)
    latencies: list[float] = []
    empty = 0
    for receive in pipes:
        got, none = receive.recv()
        latencies += got
        empty += none
    for worker in workers:
        worker.join(timeout=30)
    return summarise("lineup", len(agent_ids), processes, duration, latencies, empty)


# -- checks and the report ------------------------------------------------------------------------


async def invariants(url: str) -> list[tuple[str, bool, str]]:
    conn = await asyncpg.connect(sync_url(url))
    try:
        held = await conn.fetchval("SELECT count(*) FROM leads WHERE held_by IS NOT NULL")
        double = await conn.fetchval(
            "SELECT count(*) FROM (SELECT held_by FROM leads WHERE held_by IS NOT NULL"
            " GROUP BY held_by HAVING count(*) > 1) d"
        )
    finally:
        await conn.close()
    return [
        ("no agent holds two leads", double == 0, f"{double} agents with more than one"),
        ("every claim released", held == 0, f"{held} leads still held"),
    ]


def render(config: dict[str, Any], naive: Result, lineup: Result, checks: list[tuple[str, bool, str]]) -> str:
    met = lineup.claims_per_s >= BUDGET_CLAIMS_PER_S and lineup.p99_ms < BUDGET_P99_MS
    lines = [
        f"Lead claims — {config['leads']:,} leads, {config['claimers']} concurrent claimers, "
        f"Postgres {config['postgres']}",
        "",
        f"  {'':<24}{'naive':>14}{'lineup':>14}{'lineup vs naive':>16}",
    ]

    def row(label: str, a: float, b: float, *, more_is_better: bool) -> None:
        gain = (b / a if more_is_better else a / b) if a and b else 0.0
        ratio = f"×{gain:,.0f} better" if gain else ""
        lines.append(f"  {label:<24}{a:>12,.2f}  {b:>12,.2f}  {ratio:>14}")

    row("claims/s", naive.claims_per_s, lineup.claims_per_s, more_is_better=True)
    row("p50 claim (ms)", naive.p50_ms, lineup.p50_ms, more_is_better=False)
    row("p99 claim (ms)", naive.p99_ms, lineup.p99_ms, more_is_better=False)
    row("max claim (ms)", naive.max_ms, lineup.max_ms, more_is_better=False)
    lines += [
        f"  {'claims':<24}{naive.claims:>12,}  {lineup.claims:>12,}",
        f"  {'window (s)':<24}{naive.window_s:>12}  {lineup.window_s:>12}",
        f"  naive: {naive.refused} lost races, {naive.unfinished} claims still running when cut",
        f"  lineup: {lineup.processes} processes, {lineup.refused} offers found no lead",
        "",
        f"  budget ≥ {BUDGET_CLAIMS_PER_S:,.0f} claims/s and p99 < {BUDGET_P99_MS:g} ms: "
        + ("met" if met else "NOT met"),
    ]
    lines += [f"  [{'ok' if ok else 'FAIL'}] {name} {detail}".rstrip() for name, ok, detail in checks]
    return "\n".join(lines)


async def prepare(args: argparse.Namespace) -> tuple[str, str, str, list[int], float]:
    services = resolve_services(Path(tempfile.mkdtemp(prefix="lineup-claims-")))
    name = f"bench_claims_{secrets.token_hex(4)}"
    url = await create_database(services.admin_database_url, name)
    await migrate(url)
    started = time.perf_counter()
    agent_ids = await fill(url, args.leads, args.claimers)
    return services.admin_database_url, name, url, agent_ids, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=10_000_000)
    parser.add_argument("--claimers", type=int, default=50)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    admin_url, name, url, agent_ids, fill_s = asyncio.run(prepare(args))
    try:
        naive = asyncio.run(naive_run(url, agent_ids))
        log.info("event=naive_done claims=%s", naive.claims)
        lineup = lineup_run(url, agent_ids, args.processes, args.duration)
        checks = asyncio.run(invariants(url))
    finally:
        asyncio.run(drop_database(admin_url, name))
    config = {
        "leads": args.leads,
        "claimers": args.claimers,
        "processes": args.processes,
        "duration_s": args.duration,
        "fill_s": round(fill_s, 1),
        "postgres": "configured" if os.environ.get("LINEUP_DATABASE_URL") else "bundled",
    }
    if args.json:
        print(
            json.dumps({"config": config, "naive": asdict(naive), "lineup": asdict(lineup), "checks": checks})
        )
    else:
        print(render(config, naive, lineup, checks))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
