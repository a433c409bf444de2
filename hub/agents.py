"""The agent's lead loop in this process: connections, state, dispatch of the next lead.

Handler → preconditions → side effects, in that order, for every command.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.agent_state import AgentState, StateChangeError, next_state
from hub.agent_views import lead_payload, none_reason, stock_warning
from hub.connection import CLOSE_KICKED, AgentConnection
from hub.dispositions import (
    NOTE_MAX_CHARS,
    DispositionError,
    callback_agent,
    disposition_effect,
    handoff_effect,
    parse_outcome,
)
from hub.identity import Principal
from hub.intake.phones import mask_phone
from hub.permissions import Permission, allows
from hub.protocol import Command, ProtocolError, ack, error
from storage import campaigns as campaign_store
from storage import leads as lead_store
from storage.leads import NotYourLead
from storage.models import Outcome, Role

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("lineup.agents")

DEFAULT_SALES_CAMPAIGN = "Sales"  # receives TMK hand-offs when the TMK campaign names no other

# Every websocket command and the permission it needs.
PHONE_MAX_CHARS = 40  # a typed number, with spaces, dashes and a country code
CUSTOMER_NAME_MAX_CHARS = 200

COMMAND_PERMISSIONS: dict[str, Permission] = {
    "state.set": Permission.WORK_LEADS,
    "call.dial": Permission.WORK_LEADS,
    "call.dial_number": Permission.WORK_LEADS,
    "customer.create": Permission.WORK_LEADS,
    "call.hangup": Permission.WORK_LEADS,
    "lead.dispose": Permission.WORK_LEADS,
    "ping": Permission.WORK_LEADS,
}


@dataclass
class LiveAgent:
    """What this process knows of one connected agent."""

    principal: Principal
    connections: set[AgentConnection] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: AgentState = AgentState.PAUSED
    reason: str = "login"
    since: float = 0.0
    lead_id: int | None = None  # the lead announced to the agent
    none_reason: str | None = None  # the last lead.none reason sent, to avoid repeating it
    callbacks_told: set[int] = field(default_factory=set)  # leads whose callback.due was pushed


def works_general_pool(agent: Principal) -> bool:
    """Shared leads of no campaign are sales work; TMK agents work only their campaigns."""
    return agent.role == Role.SALES


class AgentDesk:
    """Agents connected to this hub process and their lead loop."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.live: dict[int, LiveAgent] = {}
        self._callbacks_since: datetime | None = None  # the database's time of the last look

    # -- connections -------------------------------------------------------------------------

    async def connect(self, conn: AgentConnection) -> None:
        agent = conn.agent
        live = self.live.get(agent.id)
        if live is None:
            live = self.live[agent.id] = LiveAgent(agent)
            await self.hub.bus.follow_agent(agent.id)
        live.connections.add(conn)
        presence = await self.hub.presence.get(agent.id)
        if presence is None or presence.state is AgentState.OFFLINE:
            presence = await self.hub.presence.set_state(agent.id, AgentState.PAUSED, "login")
        live.state, live.reason, live.since = presence.state, presence.reason, presence.since
        await self.hub.presence.connected(agent.id, self.hub.process_id)
        conn.push(await self._snapshot(live))
        if live.state is AgentState.READY:
            await self.offer_next_lead(agent.id)

    async def disconnect(self, conn: AgentConnection) -> None:
        live = self.live.get(conn.agent.id)
        if live is None:
            return
        live.connections.discard(conn)
        if not live.connections:
            del self.live[conn.agent.id]
            await self.hub.bus.unfollow_agent(conn.agent.id)
            await self.hub.presence.disconnected(conn.agent.id)

    def deliver(self, agent_id: int, event: dict[str, Any]) -> None:
        live = self.live.get(agent_id)
        if live:
            for conn in list(live.connections):
                conn.push(event)

    async def _snapshot(self, live: LiveAgent) -> dict[str, Any]:
        agent = live.principal
        async with self.hub.db() as s:
            lead = await lead_store.held_lead(s, agent.id)
            history = await lead_store.lead_history(s, lead.id) if lead else []
            stock = await lead_store.remaining_stock(
                s, agent.id, self.hub.settings.stock_low_threshold, general_pool=works_general_pool(agent)
            )
        live.lead_id = lead.id if lead else None
        await self.hub.presence.set_lead(agent.id, live.lead_id)
        presence = await self.hub.presence.get(agent.id)
        call = await self.hub.calls.call_payload(presence.call_id) if presence and presence.call_id else None
        return {
            "type": "snapshot",
            "agent": {
                "id": agent.id,
                "name": agent.display_name,
                "state": live.state.value,
                "reason": live.reason,
                "since": int(live.since * 1000),
            },
            "lead": lead_payload(lead, history) if lead else None,
            "call": call,
            # A reconnect in the middle of an inbound call brings its screen pop back.
            "inbound": await self.hub.inbound.screen_pop_of(presence.call_id) if call else None,
            "warnings": [w for w in [stock_warning(stock, self.hub.settings.stock_low_threshold)] if w],
        }

    # -- commands ----------------------------------------------------------------------------

    async def handle(self, conn: AgentConnection, command: Command) -> None:
        """Run one client command; every outcome is an ack or an error frame."""
        try:
            permission = COMMAND_PERMISSIONS[command.type]
            if not allows(conn.agent.role, permission):
                raise ProtocolError("forbidden", f"your role may not send {command.type}", command.id)
            handler = getattr(self, "_cmd_" + command.type.replace(".", "_"))
            await handler(conn, command)
        except ProtocolError as exc:
            conn.push(error(exc.code, exc.message, command.id))
        except Exception:
            # A failure of ours (database, Redis) must not end the agent's session.
            log.exception("event=command_failed agent=%s type=%s", conn.agent.id, command.type)
            conn.push(error("internal", "the hub could not complete this command; try again", command.id))

    async def _cmd_ping(self, conn: AgentConnection, command: Command) -> None:
        conn.push({"type": "pong", "id": command.id})

    async def _cmd_state_set(self, conn: AgentConnection, command: Command) -> None:
        live = self.live[conn.agent.id]
        try:
            state, reason = next_state(
                live.state, command.str_field("state"), command.fields.get("reason") or None
            )
        except StateChangeError as exc:
            raise ProtocolError("invalid_state", str(exc), command.id) from None
        await self.set_state(conn.agent.id, state, reason)
        conn.push(ack(command.id))
        if state is AgentState.READY:
            await self.offer_next_lead(conn.agent.id)

    async def _cmd_lead_dispose(self, conn: AgentConnection, command: Command) -> None:
        agent = conn.agent
        lead_id = command.int_field("lead_id")
        note = command.str_field("note", required=False, max_len=NOTE_MAX_CHARS)
        trial_at = command.time_field("trial_at")
        try:
            outcome = parse_outcome(command.fields.get("outcome"))
            now = datetime.now(UTC)
            if trial_at is None:
                effect = disposition_effect(
                    outcome,
                    now,
                    command.time_field("callback_at"),
                    callback_agent_id=callback_agent(command.fields.get("callback_for"), agent.id),
                )
            elif outcome is Outcome.INTERESTED and agent.role == Role.TMK:
                sales_campaign = await self._handoff_campaign(agent.id)
                effect = handoff_effect(now, trial_at, note, agent.display_name, sales_campaign)
            else:
                raise DispositionError(
                    "a trial lesson is booked by a TMK agent with the outcome 'interested'"
                )
        except DispositionError as exc:
            raise ProtocolError("invalid", str(exc), command.id) from None
        presence = await self.hub.presence.get(agent.id)
        if presence and presence.call_id:
            active = await self.hub.calls.call_payload(presence.call_id)
            if active and active["lead_id"] == lead_id:
                raise ProtocolError("call_active", "hang up before disposing of the lead", command.id)
        call_id = presence.call_for_lead(lead_id) if presence else None
        async with self.hub.db() as s:
            try:
                await lead_store.record_disposition(
                    s,
                    lead_id=lead_id,
                    agent_id=agent.id,
                    outcome=outcome.value,
                    note=note,
                    effect=effect,
                    call_id=uuid.UUID(call_id) if call_id else None,
                    find_call=presence is None,
                    mark_dnc=outcome is Outcome.DNC,
                )
            except NotYourLead:
                raise ProtocolError(
                    "not_your_lead", f"lead {lead_id} is not held by you", command.id
                ) from None
            stock = await lead_store.remaining_stock(
                s, agent.id, self.hub.settings.stock_low_threshold, general_pool=works_general_pool(agent)
            )
        await self.hub.contact.after_contact(lead_id, now)
        log.info("event=lead_disposed agent=%s lead=%s outcome=%s", agent.id, lead_id, outcome.value)
        live = self.live[agent.id]
        live.lead_id = None
        live.callbacks_told.discard(lead_id)
        await self.hub.presence.set_lead(agent.id, None)
        conn.push(ack(command.id))
        self.deliver(agent.id, {"type": "lead.disposed", "lead_id": lead_id, "outcome": outcome.value})
        warning = stock_warning(stock, self.hub.settings.stock_low_threshold)
        if warning:
            self.deliver(agent.id, warning)
            # The agent is reminded after every call; their supervisors hear of it once a day.
            if await self.hub.quota_desk.first_today(agent.id, "stock_low"):
                await self.hub.supervisors.alert(agent, warning)
        await self.push_quota_warnings(agent.id)
        if live.state is AgentState.WRAP_UP:  # the inbound caller's lead is done: back to work
            await self.set_state(agent.id, AgentState.READY, "")
        await self.offer_next_lead(agent.id)

    async def _handoff_campaign(self, agent_id: int) -> int:
        """The sales campaign that receives the TMK agent's lead: the TMK campaign's setting, else "Sales"."""
        async with self.hub.db() as s:
            lead = await lead_store.held_lead(s, agent_id)
            campaign = (
                await campaign_store.get_campaign(s, lead.campaign_id) if lead and lead.campaign_id else None
            )
            target = (campaign.settings or {}).get("handoff_campaign_id") if campaign else None
            if target is None:
                target = (await campaign_store.campaign_named(s, DEFAULT_SALES_CAMPAIGN, "sales")).id
            await s.commit()
        return int(target)

    async def _cmd_call_dial(self, conn: AgentConnection, command: Command) -> None:
        call_id = await self.hub.calls.dial(conn.agent, command.int_field("lead_id"), command.id)
        conn.push({**ack(command.id), "call_id": call_id})

    async def _cmd_call_dial_number(self, conn: AgentConnection, command: Command) -> None:
        phone = command.str_field("phone", max_len=PHONE_MAX_CHARS)
        call_id = await self.hub.calls.dial_number(conn.agent, phone, command.id)
        conn.push({**ack(command.id), "call_id": call_id})

    async def _cmd_customer_create(self, conn: AgentConnection, command: Command) -> None:
        name = command.str_field("name", max_len=CUSTOMER_NAME_MAX_CHARS).strip()
        note = command.str_field("note", required=False, max_len=NOTE_MAX_CHARS)
        call_id = command.str_field("call_id", max_len=64)
        lead_id = await self.hub.inbound.add_customer(conn.agent.id, call_id, name, note)
        if lead_id is None:
            raise ProtocolError(
                "not_your_call",
                f"call {call_id} is not a live inbound call of yours from a new number",
                command.id,
            )
        conn.push({**ack(command.id), "lead_id": lead_id})

    async def _cmd_call_hangup(self, conn: AgentConnection, command: Command) -> None:
        await self.hub.calls.hangup(conn.agent, command.str_field("call_id", max_len=64), command.id)
        conn.push(ack(command.id))

    # -- state and dispatch ------------------------------------------------------------------

    async def set_state(self, agent_id: int, state: AgentState, reason: str) -> None:
        presence = await self.hub.presence.set_state(agent_id, state, reason)
        live = self.live.get(agent_id)
        if live:
            live.state, live.reason, live.since = state, reason, presence.since
            if state is not AgentState.READY:
                live.none_reason = None
        self.deliver(agent_id, presence.as_event())

    async def offer_next_lead(self, agent_id: int) -> None:
        """If the agent is ready and has no lead on screen, claim one and push it (or say why not)."""
        live = self.live.get(agent_id)
        if live is None or live.state is not AgentState.READY or live.lead_id is not None:
            return
        async with live.lock:
            if live.state is not AgentState.READY or live.lead_id is not None:
                return
            general = works_general_pool(live.principal)
            quota, day, day_start = await self.hub.quota_desk.quota_of(agent_id)
            offer = await self.hub.dispatch.next_lead(
                agent_id, general_pool=general, new_lead_cap=quota.daily_new_leads, day=day
            )
            lead = offer.lead
            if lead is not None:
                async with self.hub.db() as s:
                    history = await lead_store.lead_history(s, lead.id) if lead.attempts else []
                live.lead_id, live.none_reason = lead.id, None
                if lead.status == "callback" and lead.callback_at is not None:
                    self._tell_callback_due(agent_id, lead.id, lead.name, lead.phone_e164, lead.callback_at)
                await self.hub.presence.set_lead(agent_id, lead.id)
                self.deliver(agent_id, {"type": "lead.assigned", "lead": lead_payload(lead, history)})
                if offer.fresh:
                    await self.push_quota_warnings(agent_id)
                return
            async with self.hub.db() as s:
                due = await lead_store.next_due(s, agent_id, general_pool=general)
            capped = await self.hub.quota_desk.cap_reached(agent_id, quota, day, day_start)
            reason = none_reason(due, offer.refused, capped)
            if reason != live.none_reason:
                live.none_reason = reason
                self.deliver(
                    agent_id,
                    {"type": "lead.none", "reason": reason, "next_due_at": due.isoformat() if due else None},
                )

    async def push_due_callbacks(self) -> None:
        """Tell this process's agents that a callback they promised is due, and offer it to them."""
        async with self.hub.db() as s:
            self._callbacks_since, due = await lead_store.due_callbacks(
                s, list(self.live), self._callbacks_since
            )
        for callback in due:
            self._tell_callback_due(
                callback.agent_id, callback.lead_id, callback.name, callback.phone_e164, callback.due_at
            )
            await self.offer_next_lead(callback.agent_id)

    def _tell_callback_due(
        self, agent_id: int, lead_id: int, name: str, phone: str, due_at: datetime
    ) -> None:
        """Push ``callback.due`` once per callback, whichever comes first: the due poll or the offer."""
        live = self.live.get(agent_id)
        if live is None or lead_id in live.callbacks_told:
            return
        live.callbacks_told.add(lead_id)
        lead = {
            "id": lead_id,
            "name": name,
            "phone_masked": mask_phone(phone),
            "callback_at": due_at.isoformat(),
        }
        self.deliver(agent_id, {"type": "callback.due", "lead": lead})

    async def pass_stale_callbacks(self) -> None:
        """Personal callbacks left waiting too long go to anyone; idle agents may take them now."""
        async with self.hub.db() as s:
            passed = await lead_store.pass_stale_callbacks(s, self.hub.settings.callback_grace_s)
        if passed:
            log.info("event=callbacks_passed_to_anyone count=%s", passed)
            await self.offer_to_idle_agents()

    async def offer_to_idle_agents(self) -> None:
        """Give a lead to every ready agent of this process who has none (new stock, due retries)."""
        for agent_id, live in list(self.live.items()):
            if live.state is AgentState.READY and live.lead_id is None:
                await self.offer_next_lead(agent_id)

    async def lead_released(self, agent_id: int, lead_id: int) -> None:
        """The agent's lease ran out and the lead went back to the pool."""
        live = self.live.get(agent_id)
        if live and live.lead_id == lead_id:
            live.lead_id = None
            await self.hub.presence.set_lead(agent_id, None)

    async def on_control(self, agent_id: int, control: dict[str, Any]) -> None:
        """A command for this agent from another part of the system (possibly another process)."""
        op = control.get("op")
        if op == "state_changed":
            presence = await self.hub.presence.get(agent_id)
            live = self.live.get(agent_id)
            if presence is None or live is None:
                return
            live.state, live.reason, live.since = presence.state, presence.reason, presence.since
            self.deliver(agent_id, presence.as_event())
            if live.state is AgentState.READY:
                await self.offer_next_lead(agent_id)
        elif op == "show_held_lead":
            await self.show_held_lead(agent_id)
        elif op == "logout":
            live = self.live.get(agent_id)
            for conn in list(live.connections) if live else []:
                conn.close(CLOSE_KICKED)

    async def show_held_lead(self, agent_id: int) -> None:
        """Push the lead the agent holds now (put on them by an inbound call) to their screen."""
        live = self.live.get(agent_id)
        if live is None:
            return
        async with self.hub.db() as s:
            lead = await lead_store.held_lead(s, agent_id)
            history = await lead_store.lead_history(s, lead.id) if lead and lead.attempts else []
        if lead is None:
            return
        live.lead_id, live.none_reason = lead.id, None
        await self.hub.presence.set_lead(agent_id, lead.id)
        presence = await self.hub.presence.get(agent_id)
        call = await self.hub.calls.call_payload(presence.call_id) if presence and presence.call_id else None
        # The call the lead came with is still live: the screen keeps showing it.
        self.deliver(agent_id, {"type": "lead.assigned", "lead": lead_payload(lead, history), "call": call})

    def connected_agent_ids(self) -> list[int]:
        return list(self.live)

    async def push_quota_warnings(self, agent_id: int) -> None:
        """Tell the agent, and the supervisors, of each quota warning newly earned today."""
        for warning in await self.hub.quota_desk.new_warnings(agent_id):
            await self._warn(agent_id, warning.as_event())

    async def _warn(self, agent_id: int, event: dict[str, Any]) -> None:
        self.deliver(agent_id, event)
        live = self.live.get(agent_id)
        if live is not None:
            await self.hub.supervisors.alert(live.principal, event)
