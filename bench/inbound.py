"""Inbound burst through real Kamailio: carrier INVITE → agent's ``call.inbound``, and routing answers.

    python bench/inbound.py --agents 20 --calls 200 --concurrency 10 [--json]

One hub process on Kamailio (loopback), ``--agents`` sales agents each with a sipp phone that
answers at once and a websocket client that goes ready again after every call. A sipp carrier
places ``--calls`` calls to DID 800 (``--concurrency`` at a time, each talking ``--talk-ms``).

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
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets
from sqlalchemy import text

from bench.figures import percentile
from bench.lab import PASSWORD, Lab, open_lab
from storage import inbound as inbound_store
from storage.db import create_engine, session_factory
from telephony.kamailio.gateway import call_id_for
from telephony.kamailio.lab import KamailioServer, ensure_installed, free_port
from telephony.kamailio.phones import SippPhone, carrier_call, stop_all

log = logging.getLogger("bench.inbound")

SERVED, UNSERVED = "800", "899"
FIRST_EXTENSION = 3000
WARM_UP = 4  # calls to each number before measuring
_SENT = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*\n\w+ message sent", re.MULTILINE)
_CALL_ID = re.compile(r"^Call-ID:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
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
    import httpx

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


def _invite(msg_log: Path) -> tuple[str, float] | None:
    """The Call-ID and wall-clock send time of the carrier's first INVITE."""
    body = msg_log.read_text(errors="replace")
    sent, call = _SENT.search(body), _CALL_ID.search(body)
    if not sent or not call:
        return None
    return call.group(1), datetime.strptime(sent.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()


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
            gate = asyncio.Semaphore(args.concurrency)

            async def one(i: int, did: str) -> Path:
                async with gate:
                    result = await carrier_call(
                        kamailio, work, did=did, caller=callers[i % len(callers)], talk_ms=args.talk_ms
                    )
                    return result.message_log

            # Warm-up, not measured: every Kamailio worker opens its connection to the hub.
            await asyncio.gather(*(one(i, did) for i in range(WARM_UP) for did in (SERVED, UNSERVED)))
            started = time.perf_counter()
            unserved = await asyncio.gather(*(one(i, UNSERVED) for i in range(args.baseline_calls)))
            served = await asyncio.gather(*(one(i, SERVED) for i in range(args.calls)))
            burst_s = time.perf_counter() - started
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*agents, return_exceptions=True)
            stop_all(phones)
            kamailio.stop()
        invites = {log_path: _invite(log_path) for log_path in [*unserved, *served]}
        measured = {invite[0] for invite in invites.values() if invite}
        latencies = []
        missing_pops = 0
        for msg_log in served:
            invite = invites[msg_log]
            pop_at = pops.at.get(call_id_for(invite[0])) if invite else None
            if invite is None or pop_at is None:
                missing_pops += 1
                continue
            latencies.append((pop_at - invite[1]) * 1000)
        routing = _routing_ms(kamailio.log_path, measured)
    return {
        "agents": args.agents,
        "calls": args.calls,
        "concurrency": args.concurrency,
        "burst_s": round(burst_s, 2),
        "invite_to_pop_ms": _stats(latencies),
        "calls_without_pop": missing_pops,
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
    out(f"{figures['calls']} calls, {figures['concurrency']} at a time, ")
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
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--talk-ms", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--hub-log", type=Path, help="keep the hub's log here")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= args.agents:
        parser.error("--concurrency is from 1 to --agents (every call in a burst must find an agent)")
    logging.basicConfig(level=logging.WARNING, format="ts=%(asctime)s level=%(levelname)s %(message)s")
    figures = asyncio.run(run(args))
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    else:
        _print(figures)


if __name__ == "__main__":
    main()
