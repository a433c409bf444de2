"""The gateway interface the hub depends on, and the normalised call events it yields.

Outbound: the hub asks the gateway to ``originate`` a call and follows it by its events.
Inbound: the gateway asks the hub's router which agent's phone to ring (``attach_router``), then
reports the call's progress as events under the same call id.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


class CallEventKind(enum.StrEnum):
    RINGING = "ringing"  # the far end rings: the customer (outbound) or the agent's phone (inbound)
    ANSWERED = "answered"
    ENDED = "ended"  # after an answer, or a call that never connected (cause says why)
    AGENT_FAILED = "agent_failed"  # inbound: the chosen agent's phone was busy or did not answer
    ABANDONED = "abandoned"  # inbound: the caller hung up before an agent answered


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One normalised event of a call, whatever the gateway."""

    call_id: str
    kind: CallEventKind
    at: float  # epoch seconds, gateway clock
    duration_s: float | None = None  # talk time, on ENDED
    cause: str | None = None  # hang-up cause, on ENDED: normal_clearing, no_answer, agent_hangup, ...
    agent_extension: str | None = None  # the agent's phone the event is about, when the gateway says
    code: int | None = None  # SIP reply code, on AGENT_FAILED (486 busy, 408/480 no answer, ...)
    recording_ref: str | None = None  # where the gateway keeps the recording, on ENDED when it has one


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """Click-to-call: ring the agent's phone, then the customer's number."""

    call_id: str
    agent_extension: str
    phone_e164: str


@dataclass(frozen=True, slots=True)
class InboundCall:
    """A caller reached one of our numbers; ``attempt`` > 1 after an agent's phone failed."""

    call_id: str
    caller: str  # the caller's number as the carrier sent it
    did: str  # the number dialled
    attempt: int = 1
    failed_extension: str | None = None
    failed_code: int | None = None


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Ring this agent's phone, or reject the call with a SIP code and reason."""

    extension: str | None
    ring_timeout_s: int = 15
    reject_code: int = 480
    reject_reason: str = "No Agent Available"

    @classmethod
    def ring(cls, extension: str, ring_timeout_s: int) -> RouteDecision:
        return cls(extension, ring_timeout_s)

    @classmethod
    def reject(cls, code: int, reason: str) -> RouteDecision:
        return cls(None, reject_code=code, reject_reason=reason)


Router = Callable[[InboundCall], Awaitable[RouteDecision]]


class GatewayError(Exception):
    """The gateway refused or could not take a command."""


class Gateway(Protocol):
    """What the hub needs from any phone system."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def attach_router(self, router: Router) -> None:
        """Who answers the gateway's question "which agent gets this inbound call" (the hub's ACD)."""

    async def originate(self, request: OriginateRequest) -> None:
        """Start an outbound call; progress arrives as events. Raises GatewayError."""

    async def hangup(self, call_id: str) -> None:
        """End a call; an ENDED event follows. Unknown calls are ignored."""

    async def live_calls(self) -> set[str]:
        """The ids of the calls the gateway has live now (to end calls the hub lost track of)."""
        ...

    def events(self) -> AsyncIterator[CallEvent]:
        """The stream of normalised call events (one consumer)."""
        ...
