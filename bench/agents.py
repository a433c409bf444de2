"""Lead-loop load: N agents dispose of each lead the moment it arrives, against 1 agent alone.

    python bench/agents.py --agents 200 --leads 20000 --duration 30 [--json]

Every agent is a real websocket client of ``/ws/agent``: it goes ready and answers each
``lead.assigned`` with ``lead.dispose`` (``not_interested``, no call). For every disposition sent inside
the measurement window the time until the next ``lead.assigned`` is recorded (``time.perf_counter``).
The same measurement with one agent on the same hub runs first, as the baseline of this run.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import resource
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import websockets
from sqlalchemy import text
from websockets.asyncio.client import ClientConnection

from bench.cpu import CpuMeter
from bench.figures import Check, RunResult, Tally, as_json, render_table, summarise
from bench.lab import PASSWORD, Lab, open_lab
from storage.db import create_engine

log = logging.getLogger("bench.agents")

OUTCOME = "not_interested"  # final: each lead is disposed of once and never comes back
CONNECT_CONCURRENCY = 32
TOKEN_CONCURRENCY = 8
DRAIN_TIMEOUT_S = 10.0
ATTEMPTS_PER_LEAD = text("SELECT lead_id, count(*) FROM contact_attempts GROUP BY lead_id")
RETRIES = 5  # in a row, after an "internal" error only; any other error stops that agent
RETRY_BACKOFF_S = 0.05


@dataclass
class Window:
    """One run's measurement window on the ``perf_counter`` clock, shared by its agents."""

    start: float
    end: float
    deadline: float  # loop.time() at which the agents stop working
    pool_empty_at: float | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def after(cls, warmup_s: float, duration_s: float) -> Window:
        now, loop = time.perf_counter(), asyncio.get_running_loop()
        window = cls(now + warmup_s, now + warmup_s + duration_s, loop.time() + warmup_s + duration_s)
        loop.call_at(window.deadline, window.closed.set)
        return window

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end

    def pool_empty(self, t: float) -> None:
        """The first ``lead.none`` ends the window: claims/s is counted over the time leads existed."""
        if self.pool_empty_at is None:
            self.pool_empty_at = t
            self.end = max(self.start, min(self.end, t))
            self.closed.set()


class LoadAgent:
    """One agent socket: disposes of every lead as soon as it arrives, until the window closes."""

    def __init__(self, ws: ClientConnection, window: Window, tally: Tally) -> None:
        self.ws = ws
        self.window = window
        self.tally = tally
        self._ids = itertools.count(1)
        self._pending: dict[int, dict[str, Any]] = {}  # commands sent and not yet answered, by id
        self._retries = 0
        self._sent_at: float | None = None  # when the lead.dispose awaiting the next lead first went out
        self._working = True

    async def run(self) -> None:
        await self._send({"type": "state.set", "state": "ready"})
        try:
            async with asyncio.timeout_at(self.window.deadline):
                while self._working:
                    await self._on_frame(json.loads(await self.ws.recv()))
        except TimeoutError:
            pass
        await self._drain()

    async def _drain(self) -> None:
        """Wait for the answer to a command still in flight, so the database check is exact."""
        self._working = False
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while self._pending:
                    await self._on_frame(json.loads(await self.ws.recv()))
        except (TimeoutError, websockets.ConnectionClosed):
            self.tally.unacked += len(self._pending)

    async def _send(self, command: dict[str, Any]) -> None:
        command_id = next(self._ids)
        self._pending[command_id] = command
        await self.ws.send(json.dumps({**command, "id": command_id}))

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        now = time.perf_counter()
        kind = frame.get("type")
        if kind == "lead.assigned":
            await self._on_lead(frame["lead"]["id"], now)
        elif kind == "ack":
            self._on_ack(frame)
        elif kind == "error":
            await self._on_error(frame)
        elif kind == "lead.none":
            self.tally.lead_none += 1
            self.window.pool_empty(now)
            self._working = False

    async def _on_lead(self, lead_id: int, now: float) -> None:
        self.tally.assigned_leads.append(lead_id)
        if self.window.contains(now):
            self.tally.claims += 1
        if self._sent_at is not None and self.window.contains(self._sent_at):
            self.tally.latencies_s.append(now - self._sent_at)
        self._sent_at = None
        if self._working:
            self._sent_at = time.perf_counter()
            await self._send({"type": "lead.dispose", "lead_id": lead_id, "outcome": OUTCOME})

    def _on_ack(self, frame: dict[str, Any]) -> None:
        command = self._pending.pop(frame.get("id"), None)
        if command is None:
            return
        self._retries = 0
        if command["type"] == "lead.dispose":
            self.tally.acked_leads.append(command["lead_id"])

    async def _on_error(self, frame: dict[str, Any]) -> None:
        """Count it; resend a command the hub failed on ("internal"), else this agent stops."""
        self.tally.errors[str(frame.get("code"))] += 1
        command = self._pending.pop(frame.get("id"), None)
        if command is None:
            return  # an error after the ack (e.g. the next claim failed): the idle rescan recovers
        if frame.get("code") == "internal" and self._retries < RETRIES and self._working:
            self._retries += 1
            # Back off with jitter, as a real client would, so a burst does not repeat itself.
            await asyncio.sleep(random.uniform(0, RETRY_BACKOFF_S * 2**self._retries))
            await self._send(command)
        else:
            log.warning("event=agent_stopped command=%s error=%s", command, frame)
            self.tally.stopped_agents += 1
            self._working = False


async def fetch_tokens(base: str, usernames: list[str]) -> list[str]:
    """One bearer token per user (the hub verifies an argon2 hash for each: slow by design)."""
    gate = asyncio.Semaphore(TOKEN_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def one(username: str) -> str:
            async with gate:
                body = {"username": username, "password": PASSWORD}
                response = await client.post("/api/auth/token", json=body)
                response.raise_for_status()
                return str(response.json()["token"])

        return list(await asyncio.gather(*(one(u) for u in usernames)))


async def connect_agents(ws_base: str, tokens: list[str]) -> list[ClientConnection]:
    """Open every socket and read its snapshot; closes what was opened if any fails."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    sockets: list[ClientConnection] = []

    async def one(token: str) -> None:
        async with gate:
            ws = await websockets.connect(f"{ws_base}/ws/agent?token={token}", open_timeout=60)
            sockets.append(ws)
            snapshot = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if snapshot.get("type") != "snapshot":
                raise RuntimeError(f"expected a snapshot first, got {snapshot}")

    try:
        await asyncio.gather(*(one(t) for t in tokens))
    except BaseException:
        await close_agents(sockets)
        raise
    return sockets


async def close_agents(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def measure(lab: Lab, tokens: list[str], warmup_s: float, duration_s: float) -> tuple[RunResult, Tally]:
    """One run: connect, go ready together, work until the window closes, close every socket."""
    sockets = await connect_agents(lab.hub.ws_base, tokens)
    tally = Tally()
    try:
        window = Window.after(warmup_s, duration_s)
        meter = CpuMeter(lab.hub.process.pid if lab.hub.process else None)
        agents = [LoadAgent(ws, window, tally) for ws in sockets]
        cpu, *_ = await asyncio.gather(meter.measure(warmup_s, window.closed), *(a.run() for a in agents))
    finally:
        await close_agents(sockets)
    empty_after = None if window.pool_empty_at is None else window.pool_empty_at - window.start
    if empty_after is not None:
        log.warning(
            "event=pool_ran_dry agents=%s after_s=%.1f hint=seed_more_leads", len(tokens), empty_after
        )
    return summarise(len(tokens), tally, window.end - window.start, empty_after, cpu), tally


async def check_invariants(database_url: str, tallies: list[Tally]) -> list[Check]:
    """What the database says against what the agents were told."""
    acked = [lead for t in tallies for lead in t.acked_leads]
    assigned = [lead for t in tallies for lead in t.assigned_leads]
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(ATTEMPTS_PER_LEAD)).all()
    finally:
        await engine.dispose()
    per_lead = {lead: count for lead, count in rows}
    total = sum(per_lead.values())
    twice = sum(1 for count in per_lead.values() if count > 1)
    differ = len(set(per_lead) ^ set(acked))
    repeats = len(assigned) - len(set(assigned))
    return [
        Check(
            "contact_attempts = acknowledged dispositions", total == len(acked), f"{total:,} = {len(acked):,}"
        ),
        Check("no lead has two contact_attempts", twice == 0, f"{twice} leads with more than one"),
        Check("attempted leads are the acknowledged ones", differ == 0, f"{differ} lead ids differ"),
        Check("no lead assigned twice", repeats == 0, f"{repeats} repeats in {len(assigned):,} assignments"),
    ]


def raise_open_files(needed: int) -> None:
    """Sockets are files: lift the soft limit (inherited by the hub process) as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning("event=open_files_limited wanted=%s hard_limit=%s", needed, hard)


async def bench(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Set up, run the 1-agent baseline then the N-agent load, check invariants, clean up."""
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure: say how busy it was
    async with open_lab(args.agents + 1, args.leads, keep_log=args.hub_log) as lab:
        started = time.perf_counter()
        tokens = await fetch_tokens(lab.hub.base, lab.usernames)
        token_s = time.perf_counter() - started
        log.info("event=tokens count=%s seconds=%.1f", len(tokens), token_s)
        baseline, base_tally = await measure(lab, tokens[:1], args.warmup, args.baseline_duration)
        log.info("event=baseline_done claims_per_s=%s p99_ms=%s", baseline.claims_per_s, baseline.p99_ms)
        loaded, load_tally = await measure(lab, tokens[1:], args.warmup, args.duration)
        log.info("event=load_done claims_per_s=%s p99_ms=%s", loaded.claims_per_s, loaded.p99_ms)
        checks = await check_invariants(lab.database_url, [base_tally, load_tally])
        config = {
            "agents": args.agents,
            "leads": args.leads,
            "duration_s": args.duration,
            "baseline_duration_s": args.baseline_duration,
            "warmup_s": args.warmup,
            "token_s": round(token_s, 2),
            "postgres": lab.services.postgres,
            "redis": lab.services.redis,
            "load_average_1m": round(load_before, 2),
        }
    report = as_json(config, baseline, loaded, checks)
    output = json.dumps(report, indent=2) if args.json else render_table(config, baseline, loaded, checks)
    sys.stdout.write(output + "\n")
    return report, all(c.ok for c in checks)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=200, help="agents in the loaded run (default 200)")
    parser.add_argument("--leads", type=int, default=20_000, help="shared-pool leads seeded (default 20000)")
    parser.add_argument("--duration", type=float, default=30.0, help="loaded run's window in seconds")
    parser.add_argument(
        "--baseline-duration",
        type=float,
        default=None,
        help="1-agent run's window in seconds (default: min(duration, 10))",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds excluded before each window")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--hub-log", type=Path, help="keep a copy of the hub's log here")
    args = parser.parse_args(argv)
    if args.agents < 1 or args.leads < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--agents, --leads and --duration must be positive, --warmup not negative")
    if args.baseline_duration is None:
        args.baseline_duration = min(args.duration, 10.0)
    return args


async def _main(args: argparse.Namespace) -> bool:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM cleans up like Ctrl-C: cancel, and the finally clauses drop the database.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    _, ok = await bench(args)
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="ts=%(asctime)s level=%(levelname)s %(message)s", stream=sys.stderr
    )
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    raise_open_files(2 * (args.agents + 1) + 512)
    try:
        import uvloop  # comes with uvicorn[standard]; the client should cost the machine little
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    try:
        return 0 if run(_main(args)) else 1
    except KeyboardInterrupt:
        log.warning("event=interrupted")
        return 130
    except asyncio.CancelledError:  # SIGTERM, after the clean-up ran
        log.warning("event=terminated")
        return 143


if __name__ == "__main__":
    sys.exit(main())
