"""Where the CPU went during a window: the hub, Postgres, Redis and the bench client itself.

On a 2-core machine the load generator competes with the hub for the same cores, so a figure of
claims/s means little without these. Postgres and Redis are counted machine-wide (by process name).
Uses ``psutil`` (installed with ``pgserver``); without it the figures are left out.
"""

from __future__ import annotations

import asyncio
import os
import time

try:
    import psutil
except ImportError:  # pragma: no cover - psutil comes with pgserver
    psutil = None

GROUPS_BY_NAME = {"postgres": "postgres", "redis-server": "redis"}

MIN_WINDOW_S = 0.5  # shorter (the pool ran dry in the warm-up) says nothing

Sample = dict[str, dict[int, float]]  # group → pid → CPU seconds


class CpuMeter:
    """CPU use per group over a window, in % of one core."""

    def __init__(self, hub_pid: int | None) -> None:
        self.hub_pid = hub_pid
        self.client_pid = os.getpid()

    def _group(self, pid: int, name: str) -> str | None:
        if pid == self.hub_pid:
            return "hub"
        if pid == self.client_pid:
            return "bench client"
        return GROUPS_BY_NAME.get(name)

    def sample(self) -> Sample:
        taken: Sample = {"hub": {}, "postgres": {}, "redis": {}, "bench client": {}}
        if psutil is None:
            return taken
        for proc in psutil.process_iter(["name", "cpu_times"]):
            group = self._group(proc.pid, proc.info["name"] or "")
            times = proc.info["cpu_times"]
            if group and times is not None:
                taken[group][proc.pid] = times.user + times.system
        return taken

    async def measure(self, delay_s: float, done: asyncio.Event) -> dict[str, float]:
        """Sample after ``delay_s`` (the warm-up) and again when ``done`` is set."""
        await asyncio.sleep(delay_s)
        before, started = self.sample(), time.perf_counter()
        await done.wait()
        after, elapsed = self.sample(), time.perf_counter() - started
        if psutil is None or elapsed < MIN_WINDOW_S:
            return {}
        return {
            group: 100 * sum(t - before[group].get(pid, 0.0) for pid, t in pids.items()) / elapsed
            for group, pids in after.items()
        }
