"""May this lead be dialled now, and if not, why not and from when? (pure, no I/O)

:func:`decide` checks a lead's facts against one or more policies (the campaign's and the system's)
and returns a :class:`Decision`: every reason that blocks the call now, each with the instant it
stops blocking (None = never), and the earliest instant at which nothing blocks.

Each rule blocks over a whole interval [now, until): a daily cap until the customer's next
midnight, a rolling cap until the attempt that fills it is 24 h old, a retry pause until it ends,
a closed calling window until the next one opens. So the earliest time is found by jumping to the
latest ``until`` of the rules that block, and checking again, until nothing blocks: at that
instant the lead is dialable, and at any earlier one some rule blocked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.policy.clock import first_instant, local, start_of_day, start_of_next_day, zone_for_phone
from hub.policy.rules import Caps, ContactPolicy, window_start

DAY = timedelta(days=1)
# Blackout dates are at most a year's worth, so a window opens within this many days or never.
_SEARCH_DAYS = 380
# Every rule that blocks for a while releases within a year (retry pauses, callbacks, blackout
# dates); rules still blocking two years on are calling windows of two policies that never meet.
_HORIZON = timedelta(days=2 * 366)


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """What the policy needs to know about a lead; attempts are instants (UTC), oldest first."""

    phone_e164: str
    status: str = "new"
    on_dnc: bool = False
    callback_at: datetime | None = None
    last_outcome: str | None = None
    last_attempt_at: datetime | None = None
    lead_attempts: tuple[datetime, ...] = ()
    phone_attempts: tuple[datetime, ...] = ()  # on any lead with this number, this one's included


@dataclass(frozen=True, slots=True)
class Reason:
    """One rule that blocks the call: a code, when it stops blocking (None = never), details."""

    code: str
    until: datetime | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    at: datetime
    reasons: tuple[Reason, ...]
    earliest: datetime | None  # == at when dialable; None = never

    @property
    def dialable(self) -> bool:
        return not self.reasons


def customer_zone(policy: ContactPolicy, phone_e164: str) -> ZoneInfo:
    """The zone a policy reads the customer's clock in."""
    return policy.zone if policy.zone_override else zone_for_phone(phone_e164, policy.zone)


def decide(policies: Sequence[ContactPolicy], facts: ContactFacts, now: datetime) -> Decision:
    """The decision for ``facts`` at ``now`` under every policy in ``policies``."""
    reasons = blockers(policies, facts, now)
    earliest = earliest_dialable(policies, facts, now, reasons)
    if earliest is None and all(r.until is not None for r in reasons):
        reasons += (Reason("windows_never_meet", None),)
    return Decision(now, reasons, earliest)


def earliest_dialable(
    policies: Sequence[ContactPolicy], facts: ContactFacts, now: datetime, reasons: tuple[Reason, ...]
) -> datetime | None:
    t = now
    while reasons:
        if any(r.until is None for r in reasons):
            return None
        t = max(r.until for r in reasons if r.until is not None)
        if t > now + _HORIZON:
            return None
        reasons = blockers(policies, facts, t)
    return t


def blockers(policies: Sequence[ContactPolicy], facts: ContactFacts, t: datetime) -> tuple[Reason, ...]:
    """Every reason the lead may not be dialled at ``t``."""
    reasons: list[Reason] = []
    if facts.on_dnc:
        reasons.append(Reason("do_not_call", None))
    if facts.status == "closed":
        reasons.append(Reason("closed", None, {"outcome": facts.last_outcome}))
    if facts.status == "callback" and facts.callback_at is not None and facts.callback_at > t:
        reasons.append(Reason("callback_scheduled", facts.callback_at))
    for policy in policies:
        zone = customer_zone(policy, facts.phone_e164)
        reasons += _retry_pause(policy, facts, t)
        reasons += _caps("lead", policy.lead_caps, facts.lead_attempts, t, zone)
        reasons += _caps("phone", policy.phone_caps, facts.phone_attempts, t, zone)
        reasons += _window(policy, t, zone)
    return tuple(reasons)


def _retry_pause(policy: ContactPolicy, facts: ContactFacts, t: datetime) -> list[Reason]:
    if facts.last_outcome is None or facts.last_attempt_at is None:
        return []
    if facts.last_outcome not in policy.retry_after:
        return []
    delay = policy.retry_after[facts.last_outcome]
    if delay is None:
        return [Reason("no_retry_after_outcome", None, {"outcome": facts.last_outcome})]
    until = facts.last_attempt_at + delay
    return [Reason("retry_pause", until, {"outcome": facts.last_outcome})] if until > t else []


def _caps(
    scope: str, caps: Caps, attempts: tuple[datetime, ...], t: datetime, zone: ZoneInfo
) -> list[Reason]:
    reasons = []
    # Every recorded attempt counts, also one stamped a moment after `t` by another clock (the
    # database's, during a concurrent check): the cap must hold, whoever's clock runs ahead.
    made = attempts
    if caps.lifetime is not None and len(made) >= caps.lifetime:
        reasons.append(Reason(f"{scope}_cap_lifetime", None, {"cap": caps.lifetime, "count": len(made)}))
    if caps.per_24h is not None:
        recent = [a for a in made if a > t - DAY]
        if len(recent) >= caps.per_24h:
            # Free again when the attempt that filled the cap is 24 h old.
            until = recent[len(recent) - caps.per_24h] + DAY
            reasons.append(Reason(f"{scope}_cap_24h", until, {"cap": caps.per_24h, "count": len(recent)}))
    if caps.per_day is not None:
        today = [a for a in made if a >= start_of_day(t, zone)]
        if len(today) >= caps.per_day:
            until = start_of_next_day(t, zone)
            reasons.append(Reason(f"{scope}_cap_day", until, {"cap": caps.per_day, "count": len(today)}))
    return reasons


def inside_window(policy: ContactPolicy, t: datetime, zone: ZoneInfo) -> bool:
    wall = local(t, zone)
    if wall.date() in policy.blackout_dates:
        return False
    seconds = wall.hour * 3600 + wall.minute * 60 + wall.second + wall.microsecond / 1e6
    return any(
        w.start_minute * 60 <= seconds < w.end_minute * 60 and wall.weekday() in w.weekdays
        for w in policy.windows
    )


def _window(policy: ContactPolicy, t: datetime, zone: ZoneInfo) -> list[Reason]:
    if inside_window(policy, t, zone):
        return []
    code = "blackout_date" if local(t, zone).date() in policy.blackout_dates else "outside_window"
    return [Reason(code, next_window_opens(policy, t, zone), {"zone": zone.key})]


def next_window_opens(policy: ContactPolicy, t: datetime, zone: ZoneInfo) -> datetime | None:
    """The first instant after ``t`` inside one of the policy's windows (t itself is outside)."""
    day = local(t, zone).date()
    for offset in range(_SEARCH_DAYS):
        current = day + timedelta(days=offset)
        if current in policy.blackout_dates:
            continue
        starts = sorted(
            first_instant(current, window_start(w), zone)
            for w in policy.windows
            if current.weekday() in w.weekdays
        )
        for opens in starts:
            # A start in the past today means that window is over; one in a spring-forward gap
            # may land outside its own (short) window: that window does not happen that day.
            if opens > t and inside_window(policy, opens, zone):
                return opens
    return None
