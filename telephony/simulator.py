"""Simulated customers and agent phones: the embedded default gateway and the load generator.

Outbound, customers answer or not, talk for a random time and hang up. Inbound, customers call a
number (``place_inbound``, or every ``inbound_every_s`` on their own); the hub's router picks an
agent, whose simulated phone answers after a moment, or not in time (the call is routed again);
some callers give up while it rings. Timing comes from ``SimulatorProfile``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from telephony.gateway import CallEvent, CallEventKind, GatewayError, InboundCall, OriginateRequest, Router

log = logging.getLogger("lineup.simulator")


@dataclass(frozen=True, slots=True)
class SimulatorProfile:
    answer_rate: float = 0.75
    ring_s: tuple[float, float] = (1.0, 4.0)
    talk_s: tuple[float, float] = (3.0, 8.0)
    no_answer_after_s: float = 20.0
    agent_answer_s: tuple[float, float] = (1.0, 2.5)  # an agent's phone answers an inbound call
    abandon_rate: float = 0.1  # inbound callers who give up while it rings ...
    abandon_after_s: tuple[float, float] = (3.0, 10.0)  # ... after this long
    inbound_every_s: float = 0.0  # a customer calls in on average this often; 0: never by itself
    inbound_did: str = "800"


class SimulatorGateway:
    """A ``Gateway`` whose customers are coroutines."""

    def __init__(self, profile: SimulatorProfile, rng: random.Random | None = None) -> None:
        self._profile = profile
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._answered_at: dict[str, float] = {}
        self._router: Router | None = None
        self._caller: Callable[[], Awaitable[str]] | None = None
        self._calling_in: asyncio.Task[None] | None = None

    def attach_router(self, router: Router) -> None:
        self._router = router

    def attach_callers(self, caller: Callable[[], Awaitable[str]]) -> None:
        """Where the numbers of customers calling in by themselves come from."""
        self._caller = caller

    async def start(self) -> None:
        if self._profile.inbound_every_s > 0 and self._caller is not None:
            self._calling_in = asyncio.create_task(self._customers_call_in(), name="sim-inbound")

    async def close(self) -> None:
        tasks = [*self._calls.values(), *([self._calling_in] if self._calling_in else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._calls.clear()

    def place_inbound(self, caller: str, did: str) -> str:
        """A customer calls ``did`` from ``caller`` now; returns the call's id."""
        if self._router is None:
            raise GatewayError("no router attached: nobody can take inbound calls")
        call_id = str(uuid.uuid4())
        task = asyncio.create_task(self._inbound(call_id, caller, did), name=f"sim-in-{call_id}")
        self._calls[call_id] = task
        task.add_done_callback(lambda _t, cid=call_id: self._calls.pop(cid, None))
        return call_id

    async def _customers_call_in(self) -> None:
        assert self._caller is not None
        while True:
            await asyncio.sleep(self._rng.expovariate(1 / self._profile.inbound_every_s))
            try:
                self.place_inbound(await self._caller(), self._profile.inbound_did)
            except Exception:
                log.exception("event=sim_inbound_failed")

    async def _inbound(self, call_id: str, caller: str, did: str) -> None:
        assert self._router is not None
        p, rng = self._profile, self._rng
        gives_up_at = time.time() + rng.uniform(*p.abandon_after_s) if rng.random() < p.abandon_rate else None
        attempt, failed, code = 1, None, None
        while True:
            decision = await self._router(InboundCall(call_id, caller, did, attempt, failed, code))
            if decision.extension is None:
                return  # rejected: the caller hears the reason; the hub has recorded the call
            extension = decision.extension
            self._emit(call_id, CallEventKind.RINGING, agent_extension=extension)
            answers_in = rng.uniform(*p.agent_answer_s)
            rings_for = min(answers_in, float(decision.ring_timeout_s))
            if gives_up_at is not None and gives_up_at - time.time() < rings_for:
                await asyncio.sleep(max(0.0, gives_up_at - time.time()))
                self._emit(call_id, CallEventKind.ABANDONED, agent_extension=extension)
                return
            await asyncio.sleep(rings_for)
            if answers_in <= decision.ring_timeout_s:
                break
            attempt, failed, code = attempt + 1, extension, 408
            self._emit(call_id, CallEventKind.AGENT_FAILED, agent_extension=extension, code=code)
        await self._talk(call_id, extension)

    async def _talk(self, call_id: str, extension: str | None = None) -> None:
        answered = time.time()
        self._answered_at[call_id] = answered
        self._emit(call_id, CallEventKind.ANSWERED, agent_extension=extension)
        await asyncio.sleep(self._rng.uniform(*self._profile.talk_s))
        self._calls.pop(call_id, None)
        self._answered_at.pop(call_id, None)
        self._emit(
            call_id, CallEventKind.ENDED, duration_s=round(time.time() - answered, 3), cause="normal_clearing"
        )

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

    async def live_calls(self) -> set[str]:
        return set(self._calls)

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
        await self._talk(call_id)
