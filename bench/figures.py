"""What a lead-loop run measured, and how it is printed: a table for people, JSON for programs."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# DESIGN.md section 8, "Lead claim (next lead)".
BUDGET_CLAIMS_PER_S = 2000.0
BUDGET_P99_MS = 20.0


@dataclass
class Tally:
    """Counters shared by the agents of one run (one event loop, so no locking)."""

    claims: int = 0  # lead.assigned received inside the window
    latencies_s: list[float] = field(default_factory=list)  # dispose sent (in window) → next lead.assigned
    errors: Counter[str] = field(default_factory=Counter)  # error frames by code, whole run
    lead_none: int = 0
    acked_leads: list[int] = field(default_factory=list)  # dispositions acknowledged, whole run
    assigned_leads: list[int] = field(default_factory=list)  # every lead.assigned, whole run
    unacked: int = 0  # dispositions still unanswered when the socket closed
    stopped_agents: int = 0  # agents that gave up after an error they could not retry


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class RunResult:
    agents: int
    window_s: float
    pool_empty_after_s: float | None  # seconds into the window when the pool ran dry
    claims: int
    claims_per_s: float
    samples: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    error_frames: dict[str, int]
    lead_none: int
    unacked: int
    stopped_agents: int
    cpu_percent: dict[str, float]

    @property
    def errors(self) -> int:
        return sum(self.error_frames.values())


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarise(
    agents: int, tally: Tally, window_s: float, pool_empty_after_s: float | None, cpu: dict[str, float]
) -> RunResult:
    ordered = sorted(t * 1000 for t in tally.latencies_s)
    return RunResult(
        agents=agents,
        window_s=round(window_s, 3),
        pool_empty_after_s=None if pool_empty_after_s is None else round(pool_empty_after_s, 3),
        claims=tally.claims,
        claims_per_s=round(tally.claims / window_s, 1) if window_s > 0 else 0.0,
        samples=len(ordered),
        p50_ms=round(percentile(ordered, 0.50), 2),
        p90_ms=round(percentile(ordered, 0.90), 2),
        p99_ms=round(percentile(ordered, 0.99), 2),
        max_ms=round(ordered[-1] if ordered else 0.0, 2),
        error_frames=dict(tally.errors),
        lead_none=tally.lead_none,
        unacked=tally.unacked,
        stopped_agents=tally.stopped_agents,
        cpu_percent={k: round(v, 1) for k, v in cpu.items()},
    )


def meets_budget(run: RunResult) -> bool:
    return run.claims_per_s >= BUDGET_CLAIMS_PER_S and run.p99_ms < BUDGET_P99_MS


def as_json(
    config: dict[str, Any], baseline: RunResult, loaded: RunResult, checks: list[Check]
) -> dict[str, Any]:
    return {
        "config": config,
        "baseline": asdict(baseline),
        "loaded": asdict(loaded),
        "ratio": _ratios(baseline, loaded),
        "budget": {
            "claims_per_s": BUDGET_CLAIMS_PER_S,
            "p99_ms": BUDGET_P99_MS,
            "met": meets_budget(loaded),
        },
        "invariants": [asdict(c) for c in checks],
    }


def _ratios(baseline: RunResult, loaded: RunResult) -> dict[str, float | None]:
    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 2) if b else None

    return {
        "claims_per_s": ratio(loaded.claims_per_s, baseline.claims_per_s),
        "p50_ms": ratio(loaded.p50_ms, baseline.p50_ms),
        "p99_ms": ratio(loaded.p99_ms, baseline.p99_ms),
    }


def _row(label: str, base: str, load: str, ratio: str = "") -> str:
    return f"  {label:<28}{base:>14}{load:>14}{ratio:>10}"


def _pool(run: RunResult) -> str:
    if run.pool_empty_after_s is None:
        return "no"
    return "before window" if run.pool_empty_after_s < 0 else f"at {run.pool_empty_after_s:.1f} s"


def _times(value: float | None) -> str:
    return "" if value is None else f"×{value:g}"


def render_table(config: dict[str, Any], baseline: RunResult, loaded: RunResult, checks: list[Check]) -> str:
    """The human-readable report: N agents against 1 agent, same hub, same run."""
    ratios = _ratios(baseline, loaded)
    n = f"{loaded.agents} agents"
    lines = [
        f"Lineup lead loop: lead.dispose → next lead.assigned, {n} vs 1 agent (same hub, same run)",
        f"  postgres {config['postgres']}, redis {config['redis']}, 1 hub process, "
        f"{config['leads']:,} shared-pool leads, warm-up {config['warmup_s']:g} s",
        f"  machine: {os.cpu_count()} CPUs, load average {config['load_average_1m']:g} before the run",
        f"  tokens: {config['agents'] + 1} in {config['token_s']:.1f} s "
        f"({(config['agents'] + 1) / config['token_s']:.0f}/s)",
        "",
        _row("", "1 agent", n, "N/1"),
        _row("window (s)", f"{baseline.window_s:.1f}", f"{loaded.window_s:.1f}"),
        _row("claims in window", f"{baseline.claims:,}", f"{loaded.claims:,}"),
        _row(
            "claims/s",
            f"{baseline.claims_per_s:,.1f}",
            f"{loaded.claims_per_s:,.1f}",
            _times(ratios["claims_per_s"]),
        ),
        _row("latency samples", f"{baseline.samples:,}", f"{loaded.samples:,}"),
    ]
    for label, attr in (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("max", "max_ms")):
        base, load = getattr(baseline, attr), getattr(loaded, attr)
        ratio = _times(ratios.get(attr)) if attr in ratios else ""
        lines.append(_row(f"dispose→next {label} (ms)", f"{base:.2f}", f"{load:.2f}", ratio))
    lines += [
        _row("error frames", str(baseline.errors), str(loaded.errors)),
        _row("lead.none frames", str(baseline.lead_none), str(loaded.lead_none)),
        _row("pool ran dry", _pool(baseline), _pool(loaded)),
        _row("unacked at close", str(baseline.unacked), str(loaded.unacked)),
        _row("agents stopped by errors", str(baseline.stopped_agents), str(loaded.stopped_agents)),
    ]
    for group in loaded.cpu_percent:
        lines.append(
            _row(
                f"CPU {group} (% of a core)",
                f"{baseline.cpu_percent.get(group, 0):.0f}",
                f"{loaded.cpu_percent[group]:.0f}",
            )
        )
    for run in (baseline, loaded):
        if run.error_frames:
            lines.append(f"  error codes ({run.agents} agents): {run.error_frames}")
    verdict = "met" if meets_budget(loaded) else "MISSED"
    lines += [
        "",
        f"  budget (DESIGN.md §8): ≥ {BUDGET_CLAIMS_PER_S:,.0f} claims/s with p99 < {BUDGET_P99_MS:g} ms"
        f" → {verdict} at {loaded.agents} agents",
        "  invariants (from the database):",
        *(f"    {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in checks),
    ]
    return "\n".join(lines)
