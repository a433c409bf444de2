"""``KamailioGateway``: Kamailio behind the hub's ``Gateway`` interface.

Kamailio talks to the hub over HTTP (the hub mounts :meth:`handle_route` and :meth:`handle_event`
at ``/gateway/kamailio/route`` and ``/gateway/kamailio/event``); the hub talks to Kamailio over
JSON-RPC (click-to-call with ``dlg.bridge_dlg``, hang-up with ``dlg.end_dlg``, ``dlg.list``).

Call ids: an inbound call's id is derived from its SIP Call-ID (``uuid5``), so every hub process
names it alike without sharing state. A click-to-call is two dialogs: Kamailio's leg to the agent
phone, and the phone's own call to the customer after the REFER. The second one is the call the
hub follows; it is recognised by its agent extension while this process waits for it.

Events are deduplicated on (Call-ID, event[, attempt]) over a bounded window; the hub's handlers are
idempotent as well, so duplicates from retries, two transports or two processes do no harm.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from telephony.gateway import CallEvent, CallEventKind, GatewayError, InboundCall, OriginateRequest, Router
from telephony.kamailio.protocol import (
    KamailioEvent,
    event_key,
    parse_event,
    parse_route_query,
    reject_answer,
    route_answer,
)
from telephony.kamailio.rpc import KamailioRpc

log = logging.getLogger("lineup.kamailio")

_NAMESPACE = uuid.UUID("6f1c2a52-5d0e-4c55-9a7e-2b1f3c4d5e6f")
SEEN_EVENTS = 10_000  # deduplication window, and how many calls' ids are remembered
PENDING_ORIGINATE_S = 60.0  # how long a click-to-call waits for the agent phone's call to appear
# Who hung up, in the hub's words (the ended event names the side that sent the BYE).
_ENDED_BY = {"caller": "normal_clearing", "callee": "agent_hangup", "kamailio": "timeout"}
_ENDED_BY_OUTBOUND = {"caller": "agent_hangup", "callee": "normal_clearing", "kamailio": "timeout"}
_FAILED = {486: "busy", 600: "busy", 408: "no_answer", 480: "no_answer", 487: "cancelled"}


def call_id_for(sip_call_id: str) -> str:
    """The hub's id of the call with this SIP Call-ID (the same in every hub process)."""
    return str(uuid.uuid5(_NAMESPACE, sip_call_id))


class KamailioGateway:
    """A ``Gateway`` over a Kamailio proxy."""

    def __init__(self, rpc_url: str, sip_address: str) -> None:
        self._rpc = KamailioRpc(rpc_url)
        self._sip_address = sip_address  # host:port agents' phones are registered at
        self._router: Router | None = None
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._pending: dict[str, tuple[str, float]] = {}  # agent extension → (hub call id, since)
        # Bounded like the deduplication window: a call's entries outlive it by thousands of calls.
        self._outbound: OrderedDict[str, str] = OrderedDict()  # SIP Call-ID → hub call id, click-to-calls
        self._sip_ids: OrderedDict[str, str] = OrderedDict()  # hub call id → SIP Call-ID, to hang up

    def attach_router(self, router: Router) -> None:
        self._router = router

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._rpc.close()

    def events(self) -> AsyncIterator[CallEvent]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[CallEvent]:
        while True:
            yield await self._queue.get()

    # -- Kamailio → hub --------------------------------------------------------------------------

    async def handle_route(self, body: bytes) -> dict[str, Any]:
        """Answer Kamailio's routing query; raises ``KamailioProtocolError`` on a malformed one."""
        query = parse_route_query(body)
        if self._router is None:
            return reject_answer(503, "Hub Not Ready")
        call_id = call_id_for(query.call_id)
        _remember(self._sip_ids, call_id, query.call_id)
        decision = await self._router(
            InboundCall(
                call_id, query.caller, query.did, query.attempt, query.failed_agent, query.failed_code
            )
        )
        if decision.extension is None:
            return reject_answer(decision.reject_code, decision.reject_reason)
        target = f"sip:{decision.extension}@{self._sip_address}"
        return route_answer(decision.extension, target, decision.ring_timeout_s)

    def handle_event(self, body: bytes) -> None:
        """Take one event from Kamailio; raises ``KamailioProtocolError`` on a malformed one."""
        event = parse_event(body)
        if event.event == "register" or event.call_id is None:
            return
        key = event_key(event)
        if key in self._seen:
            return
        _remember(self._seen, key, None)
        normalised = self._normalise(event)
        if normalised is not None:
            self._queue.put_nowait(normalised)

    def _normalise(self, ev: KamailioEvent) -> CallEvent | None:
        assert ev.call_id is not None
        at = ev.kam_ts or time.time()
        if ev.is_bridge_leg:
            return self._bridge_leg(ev, at)
        if ev.did is not None:  # routed by the hub: an inbound call
            call_id = call_id_for(ev.call_id)
            _remember(self._sip_ids, call_id, ev.call_id)
            return _inbound_event(call_id, ev, at)
        call_id = self._outbound_call(ev)
        if call_id is None:
            log.info("event=kamailio_event_unmatched sip_call=%s event=%s", ev.call_id, ev.event)
            return None
        ext = ev.agent_extension
        if ev.event == "ringing":
            return CallEvent(call_id, CallEventKind.RINGING, at, agent_extension=ext)
        if ev.event == "answered":
            return CallEvent(call_id, CallEventKind.ANSWERED, at, agent_extension=ext)
        if ev.event == "ended":
            cause = _ENDED_BY_OUTBOUND.get(ev.ended_side or "", "normal_clearing")
            return CallEvent(call_id, CallEventKind.ENDED, at, _talk(ev), cause, ext)
        if ev.event == "failed":
            cause = _FAILED.get(ev.code or 0, "no_answer")
            return CallEvent(call_id, CallEventKind.ENDED, at, 0.0, cause, ext, ev.code)
        return None

    def _outbound_call(self, ev: KamailioEvent) -> str | None:
        """The hub's id of an agent phone's call: known, or the click-to-call its agent waits for."""
        assert ev.call_id is not None
        known = self._outbound.get(ev.call_id)
        if known is not None or ev.agent_extension is None:
            return known
        pending = self._pending.pop(ev.agent_extension, None)
        if pending is None or time.monotonic() - pending[1] > PENDING_ORIGINATE_S:
            return None
        _remember(self._outbound, ev.call_id, pending[0])
        _remember(self._sip_ids, pending[0], ev.call_id)
        return pending[0]

    def _bridge_leg(self, ev: KamailioEvent, at: float) -> CallEvent | None:
        """Kamailio's own leg to the agent phone: only its failure matters (the phone never took it)."""
        if ev.event not in ("failed", "ended") or ev.agent_extension is None:
            return None
        pending = self._pending.get(ev.agent_extension)
        if pending is None or ev.event == "ended":
            return None
        del self._pending[ev.agent_extension]
        return CallEvent(
            pending[0], CallEventKind.ENDED, at, 0.0, "agent_unreachable", ev.agent_extension, ev.code
        )

    # -- hub → Kamailio --------------------------------------------------------------------------

    async def originate(self, request: OriginateRequest) -> None:
        """Click-to-call: Kamailio rings the agent's phone, then REFERs it to the customer."""
        ext = request.agent_extension
        self._pending[ext] = (request.call_id, time.monotonic())
        host = self._sip_address
        try:
            await self._rpc.bridge(f"sip:{ext}@{host}", f"sip:{request.phone_e164}@{host}", f"sip:{host}")
        except GatewayError:
            self._pending.pop(ext, None)
            raise

    async def hangup(self, call_id: str) -> None:
        """End the call's dialog (Kamailio sends BYE both ways; an ended event follows)."""
        sip_id = self._sip_ids.get(call_id)
        if sip_id is None:
            return
        for dialog in await self._rpc.dialogs():
            if dialog.call_id == sip_id:
                await self._rpc.end_dialog(dialog)
                return

    async def live_calls(self) -> set[str]:
        """The hub ids of the calls Kamailio has live now (start-up reconciliation)."""
        live = set()
        for dialog in await self._rpc.dialogs():
            live.add(self._outbound.get(dialog.call_id) or call_id_for(dialog.call_id))
        return live


def _remember(mapping: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``key`` (as the newest), forgetting the oldest beyond :data:`SEEN_EVENTS` entries."""
    mapping[key] = value
    mapping.move_to_end(key)
    if len(mapping) > SEEN_EVENTS:
        mapping.popitem(last=False)


def _talk(ev: KamailioEvent) -> float:
    talk = ev.talk_s
    return round(talk if talk is not None else (ev.duration_s or 0.0), 3)


def _inbound_event(call_id: str, ev: KamailioEvent, at: float) -> CallEvent | None:
    ext = ev.agent_extension
    if ev.event == "ringing":
        return CallEvent(call_id, CallEventKind.RINGING, at, agent_extension=ext, code=ev.code)
    if ev.event == "answered":
        return CallEvent(call_id, CallEventKind.ANSWERED, at, agent_extension=ext)
    if ev.event == "agent_failed":
        return CallEvent(call_id, CallEventKind.AGENT_FAILED, at, agent_extension=ext, code=ev.code)
    if ev.event == "abandoned":
        return CallEvent(call_id, CallEventKind.ABANDONED, at, agent_extension=ext)
    if ev.event == "ended":
        cause = _ENDED_BY.get(ev.ended_side or "", "normal_clearing")
        return CallEvent(call_id, CallEventKind.ENDED, at, _talk(ev), cause, ext)
    if ev.event == "failed":
        return CallEvent(call_id, CallEventKind.ENDED, at, 0.0, "failed", ext, ev.code)
    return None
