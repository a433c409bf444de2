"""Reasons in words: what a supervisor (the "Why not?" page and API) or an agent (lead.none) reads."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hub.policy.clock import local
from hub.policy.decision import Decision, Reason

_TEXT = {
    "do_not_call": "the number is on a do-not-call list",
    "closed": "the lead is closed (final outcome {outcome})",
    "callback_scheduled": "a callback is booked",
    "no_retry_after_outcome": "no further calls after the outcome {outcome}",
    "retry_pause": "pause after the outcome {outcome}",
    "lead_cap_day": "this lead was called {count} times today (cap {cap})",
    "lead_cap_24h": "this lead was called {count} times in 24 hours (cap {cap})",
    "lead_cap_lifetime": "this lead was called {count} times in all (cap {cap})",
    "phone_cap_day": "this number was called {count} times today (cap {cap})",
    "phone_cap_24h": "this number was called {count} times in 24 hours (cap {cap})",
    "phone_cap_lifetime": "this number was called {count} times in all (cap {cap})",
    "outside_window": "outside calling hours",
    "blackout_date": "a day without calls",
    "windows_never_meet": "the campaign's calling hours and the system-wide ones never overlap",
}


def reason_text(reason: Reason, zone: ZoneInfo) -> str:
    """One reason in words, with the local time it stops blocking in the customer's zone."""
    text = _TEXT.get(reason.code, reason.code).format_map(_Missing(reason.detail))
    if reason.until is None:
        return f"{text}: never"
    return f"{text}, until {_when(reason.until, zone)}"


def main_reason(decision: Decision, zone: ZoneInfo) -> str:
    """The reason that blocks longest, in words (empty when dialable)."""
    if decision.dialable:
        return ""
    longest = max(decision.reasons, key=lambda r: (r.until is None, r.until or decision.at))
    return reason_text(longest, zone)


def _when(instant: datetime, zone: ZoneInfo) -> str:
    return f"{local(instant, zone):%Y-%m-%d %H:%M} ({zone.key})"


class _Missing(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"
