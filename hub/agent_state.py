"""The agent's availability, as an explicit state machine (no I/O)."""

from __future__ import annotations

import enum


class AgentState(enum.StrEnum):
    OFFLINE = "offline"
    READY = "ready"
    PAUSED = "paused"
    # Set by the hub around an inbound call: its phone rings, the agent talks, then wraps up
    # (notes, outcome) until they dispose of the caller's lead or say they are ready again.
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


# Which states an agent may ask for from each state. OFFLINE is reached by disconnecting; while
# an inbound call rings or is live the agent cannot change state (the call decides).
_ALLOWED: dict[AgentState, frozenset[AgentState]] = {
    AgentState.OFFLINE: frozenset({AgentState.READY, AgentState.PAUSED}),
    AgentState.READY: frozenset({AgentState.READY, AgentState.PAUSED}),
    AgentState.PAUSED: frozenset({AgentState.READY, AgentState.PAUSED}),
    AgentState.RINGING: frozenset(),
    AgentState.ON_CALL: frozenset(),
    AgentState.WRAP_UP: frozenset({AgentState.READY, AgentState.PAUSED}),
}
ON_INBOUND_CALL = frozenset({AgentState.RINGING, AgentState.ON_CALL})

PAUSE_REASONS = ("break", "lunch", "training", "meeting", "after_call_work", "other")
# Reasons set by the system or a supervisor, never typed by the agent.
SYSTEM_PAUSE_REASONS = ("login", "supervisor", "rona")


class StateChangeError(ValueError):
    pass


def next_state(current: AgentState, wanted: str, reason: str | None) -> tuple[AgentState, str]:
    """Validate an agent's request to change state; returns (state, reason)."""
    try:
        target = AgentState(wanted)
    except ValueError:
        raise StateChangeError(f"unknown state {wanted!r}: use 'ready' or 'paused'") from None
    if target not in (AgentState.READY, AgentState.PAUSED):
        raise StateChangeError(f"unknown state {wanted!r}: use 'ready' or 'paused'")
    if current in ON_INBOUND_CALL:
        raise StateChangeError("an inbound call is ringing or live: finish it first")
    if target not in _ALLOWED[current]:
        raise StateChangeError(f"cannot go from {current} to {target}")
    if target is AgentState.PAUSED:
        reason = (reason or "other").strip()
        if reason not in PAUSE_REASONS:
            raise StateChangeError(f"unknown pause reason {reason!r}: one of {', '.join(PAUSE_REASONS)}")
        return target, reason
    return target, ""
