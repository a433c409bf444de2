"""Inbound burst through real Kamailio: carrier INVITE → agent's ``call.inbound``, and routing answers.

    python bench/inbound.py --agents 20 --calls 300 --rate 10 --at-once 10 [--json]

One hub process on Kamailio (loopback), ``--agents`` sales agents each with a sipp phone that
answers at once and a websocket client that goes ready again after every call. A sipp carrier
places ``--calls`` calls to DID 800 from one sipp process (``--rate`` new calls a second, at most
``--at-once`` in progress, each talking ``--talk-ms``).

Figures:
- INVITE → ``call.inbound``: the carrier's INVITE (sipp's message log, wall clock) to the frame
  arriving at the agent's websocket client (wall clock, same machine);
- routing answer: Kamailio's own measure of the hub's answer to its routing query (``t1 - t0`` in
  Kamailio's log), for DID 800 and, as the baseline of the same run, for DID 899 which nobody
  serves (the hub answers 404 after reading no agent): the floor of HTTP + JSON in both programs.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import websockets
from sqlalchemy import text

from bench.figures import percentile
from bench.lab import PASSWORD, Lab, open_lab
from storage import inbound as inbound_store
from storage.db import create_engine, session_factory
from telephony.kamailio.gateway import call_id_for
from telephony.kamailio.lab import KamailioServer, ensure_installed, free_port
from telephony.kamailio.phones import BurstResult, SippPhone, carrier_burst, stop_all

log = logging.getLogger("bench.inbound")

SERVED, UNSERVED = "800", "899"
FIRST_EXTENSION = 3000
WARM_UP = 8  # calls to each number before measuring (every Kamailio worker connects)
_QUERY = re.compile(r"ACD: hub query rc=(\d+) call_id=(\S+) t0=([\d.]+) t1=([\d.]+) resp=(.*)$", re.MULTILINE)


@dataclass
class Pops:
    """``call.inbound`` frames by call id, with the wall-clock time they arrived."""

    at: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def _agent(lab: Lab, username: str, pops: Pops, stop: asyncio.Event) -> None:
    """Stay ready: after each inbound call's wrap-up, say ready again."""
    async with websockets.connect(f"{lab.hub.ws_base}/ws/agent?token={await _token(lab, username)}") as ws:
        await ws.send(json.dumps({"type": "state.set", "state": "ready"}))
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            frame = json.loads(raw)
            if frame["type"] == "call.inbound":
                pops.at[frame["call_id"]] = time.time()
            elif frame["type"] == "agent.state" and frame["state"] in ("wrap_up", "paused"):
                await ws.send(json.dumps({"type": "state.set", "state": "ready"}))
            elif frame["type"] == "error":
                pops.errors.append(frame["code"])


async def _token(lab: Lab, username: str) -> str:
    async with httpx.AsyncClient(base_url=lab.hub.base) as client:
        answer = await client.post("/api/auth/token", json={"username": username, "password": PASSWORD})
        return str(answer.json()["token"])


async def _prepare(lab: Lab) -> None:
    engine = create_engine(lab.database_url, pool_size=1)
    async with session_factory(engine)() as s:
        await s.execute(
            text("UPDATE users SET sip_extension = CAST(:first + id AS text) WHERE role = 'sales'"),
            {"first": FIRST_EXTENSION},
        )
        ids = list((await s.execute(text("SELECT id FROM users WHERE role = 'sales' ORDER BY id"))).scalars())
        await inbound_store.save_inbound_number(
            s,
            did=SERVED,
            name="Bench",
            strategy="longest_idle",
            ring_timeout_s=15,
            agent_ids=ids,
            actor_id=None,
        )
        await s.commit()
    await engine.dispose()


def _routing_ms(kamailio_log: Path, measured: set[str]) -> dict[str, list[float]]:
    """Kamailio's measure of each routing query of the ``measured`` calls, by answer (route / reject)."""
    found: dict[str, list[float]] = {"route": [], "reject": []}
    for rc, call, t0, t1, resp in _QUERY.findall(kamailio_log.read_text(errors="replace")):
        kind = "route" if '"route"' in resp else "reject"
        if rc == "200" and call in measured:
            found[kind].append((float(t1) - float(t0)) * 1000)
    return found


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 0.50),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    missing = ensure_installed()
    if missing:
        raise SystemExit(missing)
    sip_port, rpc_port = free_port("udp"), free_port("tcp")
    env = {
        "LINEUP_GATEWAY": "kamailio",
        "LINEUP_KAMAILIO_RPC_URL": f"http://127.0.0.1:{rpc_port}/RPC",
        "LINEUP_KAMAILIO_SIP_ADDRESS": f"127.0.0.1:{sip_port}",
    }
    work = Path(tempfile.mkdtemp(prefix="lineup-bench-inbound-"))
    async with open_lab(args.agents, args.calls, env=env, keep_log=args.hub_log) as lab:
        await _prepare(lab)
        kamailio = KamailioServer(work / "kamailio", lab.hub.base, dids=(SERVED, UNSERVED))
        kamailio.sip_port, kamailio.rpc_port = sip_port, rpc_port
        phones: list[SippPhone] = []
        stop = asyncio.Event()
        pops = Pops()
        agents: list[asyncio.Task[None]] = []
        try:
            kamailio.start()
            async with session_factory(create_engine(lab.database_url, pool_size=1))() as s:
                extensions = list(
                    (
                        await s.execute(
                            text("SELECT sip_extension FROM users WHERE role = 'sales' ORDER BY id")
                        )
                    ).scalars()
                )
                callers = list((await s.execute(text("SELECT phone_e164 FROM leads ORDER BY id"))).scalars())
            for ext in extensions:
                phone = SippPhone(work, ext, "answer", ring_ms=0, proxy=kamailio.address)
                phones.append(phone.start())
                await phone.register(kamailio)
            agents = [asyncio.create_task(_agent(lab, u, pops, stop)) for u in lab.usernames]
            await asyncio.sleep(1.0)  # every agent has said ready

            async def burst(did: str, calls: int) -> BurstResult:
                return await carrier_burst(
                    kamailio, work, did=did, caller=callers[0], calls=calls, rate_per_s=args.rate,
                    at_once=args.at_once, talk_ms=args.talk_ms,
                )  # fmt: skip

            # Warm-up, not measured: every Kamailio worker opens its connection to the hub.
            await burst(SERVED, WARM_UP)
            await burst(UNSERVED, WARM_UP)
            unserved = await burst(UNSERVED, args.baseline_calls)
            served = await burst(SERVED, args.calls)
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*agents, return_exceptions=True)
            stop_all(phones)
            kamailio.stop()
        latencies = []
        for sip_call_id, sent_at in served.invites.items():
            pop_at = pops.at.get(call_id_for(sip_call_id))
            if pop_at is not None:
                latencies.append((pop_at - sent_at) * 1000)
        routing = _routing_ms(kamailio.log_path, set(served.invites) | set(unserved.invites))
    return {
        "agents": args.agents,
        "calls": args.calls,
        "rate_per_s": args.rate,
        "at_once": args.at_once,
        "burst_s": round(served.elapsed_s, 2),
        "answered_calls": served.successful_calls,
        "invite_to_pop_ms": _stats(latencies),
        "calls_without_pop": len(served.invites) - len(latencies),
        "routing_answer_ms": _stats(routing["route"]),
        "baseline_reject_ms": _stats(routing["reject"]),
        "agent_errors": sorted(set(pops.errors)),
    }


def _print(figures: dict[str, Any]) -> None:
    rows = [
        ("carrier INVITE → call.inbound", figures["invite_to_pop_ms"]),
        ("routing answer (DID 800, ACD)", figures["routing_answer_ms"]),
        ("baseline: routing answer (DID 899, nobody serves it)", figures["baseline_reject_ms"]),
    ]
    out = sys.stdout.write
    out(f"{figures['calls']} calls, {figures['rate_per_s']:g}/s, at most {figures['at_once']} at a time, ")
    out(f"{figures['agents']} agents, {figures['burst_s']} s\n")
    out(f"{'what':<55} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}\n")
    for name, s in rows:
        out(f"{name:<55} {s['n']:>5} {s['p50']:>8.2f} {s['p99']:>8.2f} {s['max']:>8.2f}\n")
    ok = figures["routing_answer_ms"]["p99"] < 20
    out(f"budget: routing answer p99 < 20 ms: {'met' if ok else 'MISSED'}; ")
    out(f"calls without a pop: {figures['calls_without_pop']}\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--baseline-calls", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="new calls a second")
    parser.add_argument("--at-once", type=int, default=10, help="calls in progress at most")
    parser.add_argument("--talk-ms", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--hub-log", type=Path, help="keep the hub's log here")
    args = parser.parse_args()
    if not 1 <= args.at_once <= args.agents:
        parser.error("--at-once is from 1 to --agents (every call in a burst must find an agent)")
    logging.basicConfig(level=logging.WARNING, format="ts=%(asctime)s level=%(levelname)s %(message)s")
    figures = asyncio.run(run(args))
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    else:
        _print(figures)


if __name__ == "__main__":
    main()
