"""Inbound calls (ACD): which agent's phone rings, the screen pop, and the call's life on the agent.

The gateway asks :meth:`InboundDesk.route` which agent gets a call (Kamailio over HTTP, the
simulator directly) and must be answered within milliseconds: the number's group comes from a
short cache, the agents' presence from one Redis round trip, the caller's card from one query.
The chosen agent is reserved in Redis (``SET NX``), so two calls routed at once by two hub
processes never ring the same agent. Then the gateway's events move the call on:

    ringing → answered → ended                 agent: ringing → on_call → wrap_up
    ringing → agent_failed → (routed again)    agent: ringing → paused (rona)
    ringing → abandoned                        agent: ringing → ready

Every handler is idempotent: a duplicated or late event finds the call already past it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.agent_state import AgentState
from hub.intake import mask_phone, normalise_phone
from hub.routing import Candidate, routing_order
from storage import calls as call_store
from storage import inbound as inbound_store
from telephony import CallEvent, CallEventKind, InboundCall, RouteDecision

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("lineup.inbound")

GROUP_TTL_S = 5.0
NOT_SERVED = RouteDecision.reject(404, "Number Not Served")
NO_AGENT = RouteDecision.reject(480, "No Agent Available")
ROUTING_FAILED = RouteDecision.reject(503, "Routing Failed")


class InboundDesk:
    """Inbound routing and the inbound calls' effects on agents (one per hub process)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._groups: dict[str, tuple[float, inbound_store.InboundGroup | None]] = {}
        self._ringing: dict[str, asyncio.Task[None]] = {}  # calls being put on their agent

    # -- routing -------------------------------------------------------------------------------

    async def route(self, call: InboundCall) -> RouteDecision:
        """The gateway's question: ring which agent's phone for this call (or reject it)."""
        started = time.perf_counter()
        try:
            decision = await self._route(call)
        except Exception:
            # The caller must hear something now; the gateway's own timeout would be slower.
            log.exception("event=inbound_route_failed call=%s", call.call_id)
            decision = ROUTING_FAILED
        log.info(
            "event=inbound_routed call=%s did=%s attempt=%s target=%s ms=%.2f",
            call.call_id,
            call.did,
            call.attempt,
            decision.extension or f"reject:{decision.reject_code}",
            (time.perf_counter() - started) * 1000,
        )
        return decision

    async def _route(self, call: InboundCall) -> RouteDecision:
        group = await self._group(call.did)
        if group is None or not group.agents:
            return NOT_SERVED
        if call.failed_extension:
            await self.agent_failed(call.call_id, call.failed_extension, call.failed_code)
        phone = normalise_phone(call.caller, self.hub.settings.default_region) or call.caller[:20]
        # The caller's card (Postgres) and the group's presence (Redis) at once: the gateway waits.
        card, presences = await asyncio.gather(
            inbound_store.customer_card(self.hub.dispatch.pool, phone),
            self.hub.presence.get_many([a.agent_id for a in group.agents]),
        )
        candidates = [
            Candidate(a.agent_id, a.extension, p.free_since)
            for a, p in zip(group.agents, presences, strict=True)
            if p is not None and p.process and p.state is AgentState.READY and not p.call_id
        ]
        tried = await self.hub.presence.failed_agents(call.call_id) if call.attempt > 1 else set()
        owner = card.owner_id if card else None
        for choice in routing_order(candidates, strategy=group.strategy, owner_id=owner, excluded=tried):
            if await self.hub.presence.reserve_agent(choice.agent_id, call.call_id, group.ring_timeout_s + 5):
                self._start_ringing(call, phone, card, choice, group)
                return RouteDecision.ring(choice.extension, group.ring_timeout_s)
        await self._no_agent(call, phone, card)
        return NO_AGENT

    async def _group(self, did: str) -> inbound_store.InboundGroup | None:
        cached = self._groups.get(did)
        if cached is not None and time.monotonic() - cached[0] < GROUP_TTL_S:
            return cached[1]
        async with self.hub.db() as s:
            group = await inbound_store.inbound_group(s, did)
        self._groups[did] = (time.monotonic(), group)
        return group

    def forget_groups(self) -> None:
        """Re-read the numbers' groups on the next call (one was just saved)."""
        self._groups.clear()

    def _start_ringing(
        self,
        call: InboundCall,
        phone: str,
        card: inbound_store.CustomerCard | None,
        choice: Candidate,
        group: inbound_store.InboundGroup,
    ) -> None:
        # The agent is reserved: the gateway may ring their phone now, while the call's record, its
        # dial state and the screen pop are written. Its events wait for that here (``settled``).
        task = asyncio.create_task(self._ring(call, phone, card, choice, group), name=f"ring-{call.call_id}")
        self._ringing[call.call_id] = task
        task.add_done_callback(lambda done: self._ring_done(call.call_id, done))

    def _ring_done(self, call_id: str, task: asyncio.Task[None]) -> None:
        if self._ringing.get(call_id) is task:
            del self._ringing[call_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("event=inbound_ring_failed call=%s error=%r", call_id, task.exception())

    async def settled(self, call_id: str) -> None:
        """Wait until this process has finished putting the call on its agent (events come after)."""
        task = self._ringing.get(call_id)
        if task is not None:
            await asyncio.wait([task])

    async def _ring(
        self,
        call: InboundCall,
        phone: str,
        card: inbound_store.CustomerCard | None,
        choice: Candidate,
        group: inbound_store.InboundGroup,
    ) -> None:
        known = await self.hub.presence.get_call(call.call_id) if call.attempt > 1 else {}
        started_at = known.get("started_at") or datetime.now(UTC).isoformat()
        fields: dict[str, str | int | float] = {
            "agent_id": choice.agent_id,
            "lead_id": card.lead_id if card else "",
            "direction": "in",
            "state": "ringing",
            "since": time.time(),
            "started_at": started_at,
            "phone": phone,
            "did": call.did,
            "extension": choice.extension,
        }
        # The call row, its dial state, the agent's state and the screen pop, all at once.
        await asyncio.gather(
            inbound_store.start_inbound_call(
                self.hub.dispatch.pool,
                call_id=uuid.UUID(call.call_id),
                started_at=datetime.fromisoformat(started_at),
                agent_id=choice.agent_id,
                lead_id=card.lead_id if card else None,
                phone_e164=phone,
                did=call.did,
                gateway_call_id=call.call_id,
            ),
            self.hub.presence.set_call(choice.agent_id, call.call_id, fields),
            self._agent_state(choice.agent_id, AgentState.RINGING, ""),
            self.hub.calls.publish(choice.agent_id, screen_pop(call.call_id, phone, call.did, card)),
        )

    async def _no_agent(self, call: InboundCall, phone: str, card: inbound_store.CustomerCard | None) -> None:
        known = await self.hub.presence.get_call(call.call_id)
        if known:  # routed before, then every agent failed: the call ends here
            await self.hub.calls.finish(call.call_id, known, 0.0, "no_agent")
            return
        await inbound_store.start_inbound_call(
            self.hub.dispatch.pool,
            call_id=uuid.UUID(call.call_id),
            started_at=datetime.now(UTC),
            agent_id=None,
            lead_id=card.lead_id if card else None,
            phone_e164=phone,
            did=call.did,
            gateway_call_id=call.call_id,
            state="ended",
            cause="no_agent",
        )

    # -- the call's events ---------------------------------------------------------------------

    async def on_event(self, event: CallEvent, call: dict[str, str]) -> None:
        """Apply one gateway event to a live inbound call (``call``: its dial state in Redis)."""
        if event.kind is CallEventKind.ANSWERED:
            await self._answered(event, call)
        elif event.kind is CallEventKind.AGENT_FAILED:
            await self.agent_failed(event.call_id, event.agent_extension, event.code)
        elif event.kind is CallEventKind.ABANDONED:
            await self._ended(event, call, "abandoned")
        elif event.kind is CallEventKind.ENDED:
            await self._ended(event, call, event.cause or "normal_clearing")

    async def _answered(self, event: CallEvent, call: dict[str, str]) -> None:
        if call.get("state") != "ringing" or not call.get("agent_id"):
            return
        agent_id = int(call["agent_id"])
        await self.hub.calls.advance(event, call)
        await self.hub.presence.release_agent(agent_id, event.call_id)
        await self._agent_state(agent_id, AgentState.ON_CALL, "")
        if call.get("lead_id"):
            async with self.hub.db() as s:
                held = await inbound_store.hold_caller_lead(
                    s, agent_id, int(call["lead_id"]), self.hub.settings.lead_lease_s
                )
            if held:
                await self.hub.control_agent(agent_id, {"op": "show_held_lead"})

    async def agent_failed(self, call_id: str, extension: str | None, code: int | None) -> None:
        """The ringing agent did not answer (or was busy): pause them (rona), free the call to move on."""
        await self.settled(call_id)
        call = await self.hub.presence.get_call(call_id)
        if not call or call.get("state") != "ringing" or not call.get("agent_id"):
            return
        agent_id = int(call["agent_id"])
        if extension and call.get("extension", extension) != extension:
            return
        await self.hub.presence.unring_agent(agent_id, call_id)
        await self.hub.calls.publish(agent_id, {**_missed(call_id, call), "cause": "rona"})
        await self._agent_state(agent_id, AgentState.PAUSED, "rona")
        log.info("event=inbound_agent_failed call=%s agent=%s code=%s", call_id, agent_id, code or "")

    async def _ended(self, event: CallEvent, call: dict[str, str], cause: str) -> None:
        answered = call.get("state") == "answered"
        agent_id = int(call["agent_id"]) if call.get("agent_id") else None
        duration = (event.duration_s or 0.0) if answered else 0.0
        await self.hub.calls.finish(
            event.call_id, call, duration, cause, at=event.at, recording_ref=event.recording_ref
        )
        if agent_id is None:
            return
        await self.hub.presence.release_agent(agent_id, event.call_id)
        # After talking the agent wraps up; a call that never reached them leaves them ready.
        await self._agent_state(agent_id, AgentState.WRAP_UP if answered else AgentState.READY, "")

    async def _agent_state(self, agent_id: int, state: AgentState, reason: str) -> None:
        await self.hub.presence.set_state(agent_id, state, reason)
        await self.hub.control_agent(agent_id, {"op": "state_changed"})

    async def sample_caller(self) -> str:
        """A number for a simulated customer calling in: mostly a known lead's, sometimes a new one."""
        async with self.hub.db() as s:
            known = await inbound_store.some_lead_phone(s) if random.random() < 0.75 else None
        return known or f"+86139{random.randrange(10**8):08d}"

    async def screen_pop_of(self, call_id: str) -> dict[str, Any] | None:
        """The screen pop of a live inbound call still ringing or talking (None otherwise)."""
        call = await self.hub.presence.get_call(call_id)
        if call.get("direction") != "in" or call.get("state") not in ("ringing", "answered"):
            return None
        card = await inbound_store.customer_card(self.hub.dispatch.pool, call["phone"])
        return screen_pop(call_id, call["phone"], call.get("did", ""), card)

    # -- a new customer --------------------------------------------------------------------------

    async def add_customer(self, agent_id: int, call_id: str, name: str, notes: str) -> int | None:
        """The agent on an inbound call from an unknown number saves them as a new lead of theirs.

        Returns the new lead's id, or None when the call is not this agent's live inbound call
        or its caller is already a lead.
        """
        call = await self.hub.presence.get_call(call_id)
        if not call or call.get("direction") != "in" or call.get("agent_id") != str(agent_id):
            return None
        if call.get("lead_id") or call.get("state") not in ("answered", "ringing"):
            return None
        async with self.hub.db() as s:
            lead_id = await inbound_store.add_caller_lead(
                s,
                agent_id=agent_id,
                phone_e164=call["phone"],
                name=name,
                notes=notes,
                lease_s=self.hub.settings.lead_lease_s,
            )
            await call_store.link_lead(
                s, uuid.UUID(call_id), datetime.fromisoformat(call["started_at"]), lead_id
            )
        await self.hub.presence.link_lead_to_call(agent_id, call_id, lead_id)
        await self.hub.control_agent(agent_id, {"op": "show_held_lead"})
        return lead_id


def screen_pop(call_id: str, phone: str, did: str, card: inbound_store.CustomerCard | None) -> dict[str, Any]:
    """The ``call.inbound`` event: the caller's customer card, or None for a new number."""
    customer = None
    if card is not None:
        customer = {
            "lead_id": card.lead_id,
            "name": card.name,
            "area": card.area,
            "status": card.status,
            "owner": {"id": card.owner_id, "name": card.owner_name} if card.owner_id else None,
            "notes": card.notes,
            "attributes": card.attributes,
            "recent": [
                {"at": r.at.isoformat(), "outcome": r.outcome, "note": r.note, "agent": r.agent_name}
                for r in card.recent
            ],
        }
    return {
        "type": "call.inbound",
        "call_id": call_id,
        "phone_masked": mask_phone(phone),
        "did": did,
        "customer": customer,
    }


def _missed(call_id: str, call: dict[str, str]) -> dict[str, Any]:
    lead_id = call.get("lead_id")
    return {
        "type": "call.state",
        "call_id": call_id,
        "lead_id": int(lead_id) if lead_id else None,
        "direction": "in",
        "state": "ended",
        "duration_s": 0.0,
    }
