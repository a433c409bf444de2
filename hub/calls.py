"""Click-to-call and call progress: commands to the gateway, its events to the agent.

Dial state lives in Redis while a call is live; the call row in Postgres keeps times and duration.
Events go to the agent through the bus, so they reach whichever process holds the socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.identity import Principal
from hub.intake import normalise_phone
from hub.protocol import ProtocolError
from storage import calls as call_store
from storage import dnc
from storage import leads as lead_store
from telephony import CallEvent, CallEventKind, GatewayError, OriginateRequest

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("lineup.calls")

# Events only move a call forward; a late "ringing" after "answered" is ignored. Inbound calls
# (hub.inbound) have their own steps and agents' states.
_ORDER = {"dialing": 0, "ringing": 1, "answered": 2, "ended": 3}
STUCK_AFTER_S = 60.0  # a call without progress for this long is ended by the reconciliation


class CallDesk:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._consume(), name="gateway-events")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def reconcile(self, min_age_s: float = STUCK_AFTER_S) -> None:
        """End calls the hub still shows live but that are gone (a restart, a lost event).

        Only calls older than ``min_age_s``: an inbound call the gateway no longer has, and an
        outbound call still ``dialing`` (the gateway never reported any progress).
        """
        try:
            live = await self.hub.gateway.live_calls()
        except GatewayError as exc:
            log.warning("event=reconcile_skipped error=%s", exc)
            live = None
        now = time.time()
        for call_id in await self.hub.presence.live_call_ids():
            call = await self.hub.presence.get_call(call_id)
            if not call or not call.get("started_at"):
                continue
            if now - datetime.fromisoformat(call["started_at"]).timestamp() < min_age_s:
                continue
            if call.get("direction") == "in" and live is not None and call_id not in live:
                cause = "lost"
            elif call.get("direction") == "out" and call.get("state") == "dialing":
                cause = "no_progress"
            else:
                continue
            log.warning("event=call_reconciled call=%s state=%s cause=%s", call_id, call.get("state"), cause)
            await self.on_event(CallEvent(call_id, CallEventKind.ENDED, now, 0.0, cause))

    async def call_payload(self, call_id: str) -> dict[str, Any] | None:
        """The ``call.state`` view of a live call, or None when it is not live."""
        call = await self.hub.presence.get_call(call_id)
        if not call:
            return None
        return _state_event(call_id, call, call["state"], None)

    async def dial(self, agent: Principal, lead_id: int, command_id: Any) -> str:
        """Originate a call to the agent's held lead; the agent never sees the number."""
        await self._ensure_free(agent, command_id)
        async with self.hub.db() as s:
            lead = await lead_store.held_lead(s, agent.id)
            if lead is None or lead.id != lead_id:
                raise ProtocolError("not_your_lead", f"lead {lead_id} is not held by you", command_id)
            # Re-checked at dial time: the number may have been put on a list since the claim.
            if await dnc.is_blocked(s, lead.phone_e164, lead.campaign_id):
                raise ProtocolError(
                    "dnc", "this number is on a do-not-call list; dispose of the lead", command_id
                )
        # And the whole contact policy: hours may have closed, or a limit changed, since the claim.
        verdict = await self.hub.contact.verdict_for(lead_id, datetime.now(UTC))
        if verdict is not None and not verdict.decision.dialable:
            why = verdict.main_reason()
            raise ProtocolError("not_dialable", f"this lead may not be called now: {why}", command_id)
        call_id = uuid.uuid4()
        started = datetime.now(UTC)
        async with self.hub.db() as s:
            await call_store.start_call(
                s,
                call_id=call_id,
                started_at=started,
                direction="out",
                agent_id=agent.id,
                lead_id=lead_id,
                phone_e164=lead.phone_e164,
            )
        return await self._originate(agent, call_id, started, lead_id, lead.phone_e164, command_id)

    async def dial_number(self, agent: Principal, typed: str, command_id: Any) -> str:
        """Originate a call to a number the agent typed, if the contact policy allows it now.

        The call is recorded as an attempt on the number (no lead), so it counts towards the
        number's caps as a lead's call does.
        """
        await self._ensure_free(agent, command_id)
        phone = normalise_phone(typed, self.hub.settings.default_region)
        if phone is None:
            raise ProtocolError("invalid", f"{typed!r} is not a valid phone number", command_id)
        call_id = uuid.uuid4()
        started = datetime.now(UTC)
        verdict = await self.hub.contact.clear_manual_call(agent.id, phone, call_id, started)
        if not verdict.decision.dialable:
            code = "dnc" if any(r.code == "do_not_call" for r in verdict.decision.reasons) else "not_dialable"
            why = verdict.main_reason()
            raise ProtocolError(code, f"this number may not be called now: {why}", command_id)
        return await self._originate(agent, call_id, started, None, phone, command_id)

    async def _ensure_free(self, agent: Principal, command_id: Any) -> None:
        presence = await self.hub.presence.get(agent.id)
        if presence and presence.call_id and await self.hub.presence.get_call(presence.call_id):
            raise ProtocolError("call_active", "you are already on a call", command_id)

    async def _originate(
        self,
        agent: Principal,
        call_id: uuid.UUID,
        started: datetime,
        lead_id: int | None,
        phone_e164: str,
        command_id: Any,
    ) -> str:
        """Put a recorded call live in Redis, tell the agent, and ask the gateway to place it."""
        cid = str(call_id)
        fields = {
            "agent_id": agent.id,
            "lead_id": "" if lead_id is None else lead_id,
            "direction": "out",
            "state": "dialing",
            "since": time.time(),
            "started_at": started.isoformat(),
        }
        await self.hub.presence.set_call(agent.id, cid, fields)
        await self.publish(agent.id, _state_event(cid, fields, "dialing", None))
        try:
            await self.hub.gateway.originate(
                OriginateRequest(cid, agent.sip_extension or str(agent.id), phone_e164)
            )
        except GatewayError as exc:
            log.warning("event=originate_failed call=%s error=%s", cid, exc)
            await self.finish(cid, {k: str(v) for k, v in fields.items()}, 0.0, "gateway_error")
            raise ProtocolError(
                "gateway_error", f"the phone system refused the call: {exc}", command_id
            ) from None
        log.info("event=call_dialed agent=%s lead=%s call=%s", agent.id, lead_id or "", cid)
        return cid

    async def hangup(self, agent: Principal, call_id: str, command_id: Any) -> None:
        call = await self.hub.presence.get_call(call_id)
        if not call or int(call["agent_id"]) != agent.id:
            raise ProtocolError("not_your_call", f"call {call_id} is not a live call of yours", command_id)
        try:
            await self.hub.gateway.hangup(call_id)
        except GatewayError as exc:
            raise ProtocolError(
                "gateway_error", f"the phone system could not hang up: {exc}", command_id
            ) from None

    async def _consume(self) -> None:
        async for event in self.hub.gateway.events():
            try:
                await self.on_event(event)
            except Exception:
                log.exception("event=call_event_failed call=%s kind=%s", event.call_id, event.kind)

    async def on_event(self, event: CallEvent) -> None:
        """Apply one gateway event: Redis dial state, the call row, and the agent's screen."""
        await self.hub.inbound.settled(event.call_id)
        call = await self.hub.presence.get_call(event.call_id)
        if not call:
            log.info("event=call_event_unknown call=%s kind=%s", event.call_id, event.kind)
            return
        if call.get("direction") == "in":
            await self.hub.inbound.on_event(event, call)
            return
        if event.kind is CallEventKind.ENDED:
            await self.finish(
                event.call_id,
                call,
                event.duration_s or 0.0,
                event.cause or "normal_clearing",
                at=event.at,
                recording_ref=event.recording_ref,
            )
        elif event.kind in (CallEventKind.RINGING, CallEventKind.ANSWERED):
            await self.advance(event, call)

    async def advance(self, event: CallEvent, call: dict[str, str]) -> None:
        """Move a live call to ringing or answered (never back), and tell its agent."""
        if _ORDER[event.kind.value] <= _ORDER.get(call["state"], 0):
            return
        at = datetime.fromtimestamp(event.at, UTC)
        column = "ringing_at" if event.kind is CallEventKind.RINGING else "answered_at"
        async with self.hub.db() as s:
            await call_store.update_call(
                s,
                uuid.UUID(event.call_id),
                datetime.fromisoformat(call["started_at"]),
                state=event.kind.value,
                **{column: at},
            )
        call["state"] = event.kind.value
        agent_id = int(call["agent_id"])
        await self.hub.presence.set_call(
            agent_id, event.call_id, {"state": event.kind.value, "since": event.at}
        )
        await self.publish(agent_id, _state_event(event.call_id, call, event.kind.value, None))

    async def finish(
        self,
        call_id: str,
        call: dict[str, str],
        duration: float,
        cause: str,
        at: float | None = None,
        recording_ref: str | None = None,
    ) -> None:
        """End a live call: its row, its dial state, and its agent's screen (when it had one)."""
        ended = datetime.fromtimestamp(at or time.time(), UTC)
        async with self.hub.db() as s:
            await call_store.update_call(
                s,
                uuid.UUID(call_id),
                datetime.fromisoformat(call["started_at"]),
                state="ended",
                ended_at=ended,
                duration_s=duration,
                hangup_cause=cause,
                recording_ref=recording_ref,
            )
        agent_id = int(call["agent_id"]) if call.get("agent_id") else None
        await self.hub.presence.end_call(agent_id, call_id)
        if agent_id is not None:
            event = _state_event(call_id, call, "ended", duration)
            event["cause"] = cause
            await self.publish(agent_id, event)
        log.info(
            "event=call_ended call=%s agent=%s duration_s=%.3f cause=%s", call_id, agent_id, duration, cause
        )

    async def publish(self, agent_id: int, event: dict[str, Any]) -> None:
        """Send an event to the agent, through whichever process holds their socket."""
        await self.hub.bus.publish_to_agent(agent_id, {"event": event})


def _state_event(call_id: str, call: dict[str, Any], state: str, duration: float | None) -> dict[str, Any]:
    lead_id = call.get("lead_id")
    return {
        "type": "call.state",
        "call_id": call_id,
        "lead_id": int(lead_id) if lead_id not in (None, "") else None,
        "direction": call.get("direction", "out"),
        "state": state,
        "duration_s": duration,
    }
