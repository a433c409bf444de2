"""The gateway interface the hub depends on, and the normalised call events it yields."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class CallEventKind(enum.StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One normalised event of a call, whatever the gateway."""

    call_id: str
    kind: CallEventKind
    at: float  # epoch seconds, gateway clock
    duration_s: float | None = None  # talk time, on ENDED
    cause: str | None = None  # hang-up cause, on ENDED: normal_clearing, no_answer, agent_hangup, ...


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """Click-to-call: ring the agent's phone, then the customer's number."""

    call_id: str
    agent_extension: str
    phone_e164: str


class GatewayError(Exception):
    """The gateway refused or could not take a command."""


class Gateway(Protocol):
    """What the hub needs from any phone system."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def originate(self, request: OriginateRequest) -> None:
        """Start an outbound call; progress arrives as events. Raises GatewayError."""

    async def hangup(self, call_id: str) -> None:
        """End a call; an ENDED event follows. Unknown calls are ignored."""

    def events(self) -> AsyncIterator[CallEvent]:
        """The stream of normalised call events (one consumer)."""
        ...
