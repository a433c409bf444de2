"""Simulated customers: they answer or not, talk for a random time and hang up.

The embedded default gateway and the load generator. Timing comes from ``SimulatorProfile``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from telephony.gateway import CallEvent, CallEventKind, GatewayError, OriginateRequest


@dataclass(frozen=True, slots=True)
class SimulatorProfile:
    answer_rate: float = 0.75
    ring_s: tuple[float, float] = (1.0, 4.0)
    talk_s: tuple[float, float] = (3.0, 8.0)
    no_answer_after_s: float = 20.0


class SimulatorGateway:
    """A ``Gateway`` whose customers are coroutines."""

    def __init__(self, profile: SimulatorProfile, rng: random.Random | None = None) -> None:
        self._profile = profile
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._answered_at: dict[str, float] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for task in list(self._calls.values()):
            task.cancel()
        self._calls.clear()

    async def originate(self, request: OriginateRequest) -> None:
        if request.call_id in self._calls:
            raise GatewayError(f"call {request.call_id} already exists")
        task = asyncio.create_task(self._customer(request.call_id), name=f"sim-call-{request.call_id}")
        self._calls[request.call_id] = task
        task.add_done_callback(lambda _t, cid=request.call_id: self._calls.pop(cid, None))

    async def hangup(self, call_id: str) -> None:
        task = self._calls.pop(call_id, None)
        if task is None:
            return
        task.cancel()
        answered = self._answered_at.pop(call_id, None)
        now = time.time()
        duration = round(now - answered, 3) if answered is not None else 0.0
        self._emit(call_id, CallEventKind.ENDED, duration_s=duration, cause="agent_hangup")

    def events(self) -> AsyncIterator[CallEvent]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[CallEvent]:
        while True:
            yield await self._queue.get()

    def _emit(self, call_id: str, kind: CallEventKind, **extra: object) -> None:
        self._queue.put_nowait(CallEvent(call_id=call_id, kind=kind, at=time.time(), **extra))  # type: ignore[arg-type]

    async def _customer(self, call_id: str) -> None:
        p = self._profile
        await asyncio.sleep(min(0.3, p.ring_s[0]))
        self._emit(call_id, CallEventKind.RINGING)
        if self._rng.random() >= p.answer_rate:
            await asyncio.sleep(p.no_answer_after_s)
            self._calls.pop(call_id, None)
            self._emit(call_id, CallEventKind.ENDED, duration_s=0.0, cause="no_answer")
            return
        await asyncio.sleep(self._rng.uniform(*p.ring_s))
        answered = time.time()
        self._answered_at[call_id] = answered
        self._emit(call_id, CallEventKind.ANSWERED)
        await asyncio.sleep(self._rng.uniform(*p.talk_s))
        self._calls.pop(call_id, None)
        self._answered_at.pop(call_id, None)
        self._emit(
            call_id, CallEventKind.ENDED, duration_s=round(time.time() - answered, 3), cause="normal_clearing"
        )
