"""Inbound routing rules (ACD), pure: in which order a number's ready agents are offered a call.

"sticky": the caller's own agent first when they are free, then the longest idle.
"longest_idle": the agent free for the longest time first.
Agents whose phone already failed this call are not tried again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    """A free agent of the number's group: connected, ready, on no call, with a phone."""

    agent_id: int
    extension: str
    free_since: float  # epoch seconds: when they last became ready or ended a call


def routing_order(
    candidates: Sequence[Candidate], *, strategy: str, owner_id: int | None, excluded: Collection[int] = ()
) -> list[Candidate]:
    """The candidates to offer the call to, first choice first (ties: the lower agent id)."""
    eligible = sorted(
        (c for c in candidates if c.agent_id not in excluded), key=lambda c: (c.free_since, c.agent_id)
    )
    if strategy == "sticky" and owner_id is not None:
        own = [c for c in eligible if c.agent_id == owner_id]
        return own + [c for c in eligible if c.agent_id != owner_id]
    return eligible
