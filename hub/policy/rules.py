"""A contact policy: how often, after what and when a customer may be called (pure, no I/O).

One policy per campaign (stored in ``campaigns.settings["contact"]``) and one system-wide policy
on top of all of them; a lead may be dialled only when both allow it. :func:`parse_policy` turns
the stored or submitted JSON into a :class:`ContactPolicy` and refuses contradictions (a cap of 0,
a window that never opens, an unknown zone) with every problem named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.policy.clock import zone_named

OUTCOMES = (
    "no_answer",
    "busy",
    "invalid_number",
    "not_interested",
    "interested",
    "callback",
    "converted",
    "dnc",
)
MINUTES_A_DAY = 24 * 60
MAX_CAP = 1000
MAX_RETRY = timedelta(days=365)
MAX_BLACKOUT_DATES = 366


@dataclass(frozen=True, slots=True)
class Caps:
    """How many attempts are allowed; None = no limit."""

    per_day: int | None = None  # calendar day in the customer's local time
    per_24h: int | None = None  # any rolling 24 hours
    lifetime: int | None = None


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local wall-clock minutes [start, end) on some weekdays (0 = Monday)."""

    weekdays: frozenset[int]
    start_minute: int
    end_minute: int  # up to 1440 (midnight at the end of the day)

    def contains(self, weekday: int, minute_of_day: float) -> bool:
        return weekday in self.weekdays and self.start_minute <= minute_of_day < self.end_minute


ALWAYS = (CallingWindow(frozenset(range(7)), 0, MINUTES_A_DAY),)


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    """Caps per lead and per phone number, retry delays per outcome, calling windows.

    ``retry_after[outcome]`` is the pause after an attempt with that outcome, None = never again;
    an outcome missing from it adds no pause. ``zone`` is the customer's zone when the number
    does not tell (or always, with ``zone_override``).
    """

    lead_caps: Caps = Caps()
    phone_caps: Caps = Caps()
    retry_after: Mapping[str, timedelta | None] = field(default_factory=dict)
    windows: tuple[CallingWindow, ...] = ALWAYS
    blackout_dates: frozenset[date] = frozenset()
    zone: ZoneInfo = field(default_factory=lambda: zone_named("Asia/Shanghai"))
    zone_override: bool = False


class PolicyError(ValueError):
    """A policy that cannot be saved; ``problems`` are (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))
        self.problems = problems


# Sensible real-world defaults for a new campaign (telesales in China): weekdays 09:00-12:00 and
# 13:30-20:00, Saturday 10:00-18:00, at most 2 calls a day and 8 ever per number.
DEFAULT_POLICY_JSON: dict[str, Any] = {
    "lead_caps": {"per_day": 2, "per_24h": 3, "lifetime": 8},
    "phone_caps": {"per_day": 2, "per_24h": 3, "lifetime": 12},
    "retry_after_minutes": {
        "no_answer": 120,
        "busy": 15,
        "not_interested": 30 * 24 * 60,
        "interested": 24 * 60,
        "invalid_number": None,
        "dnc": None,
        "converted": None,
    },
    "windows": [
        {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "12:00"},
        {"weekdays": [0, 1, 2, 3, 4], "start": "13:30", "end": "20:00"},
        {"weekdays": [5], "start": "10:00", "end": "18:00"},
    ],
    "blackout_dates": [],
    "zone": "Asia/Shanghai",
    "zone_override": False,
}
# Demo mode works at any hour with short pauses, so a visitor sees the whole loop.
DEMO_POLICY_JSON: dict[str, Any] = {
    "lead_caps": {"per_day": 20, "per_24h": 20, "lifetime": 50},
    "phone_caps": {"per_day": 20, "per_24h": 20, "lifetime": 50},
    "retry_after_minutes": {
        "no_answer": 2,
        "busy": 1,
        "not_interested": 60,
        "interested": 5,
        "invalid_number": None,
        "dnc": None,
        "converted": None,
    },
    "windows": [{"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00"}],
    "blackout_dates": [],
    "zone": "Asia/Shanghai",
    "zone_override": False,
}


def parse_policy(raw: Mapping[str, Any]) -> ContactPolicy:
    """Validate stored or submitted JSON (see :data:`DEFAULT_POLICY_JSON`) into a policy."""
    problems: list[tuple[str, str]] = []
    lead_caps = _caps(raw.get("lead_caps", {}), "lead_caps", problems)
    phone_caps = _caps(raw.get("phone_caps", {}), "phone_caps", problems)
    retry_after = _retry_after(raw.get("retry_after_minutes", {}), problems)
    windows = _windows(raw.get("windows"), problems)
    blackout = _blackout_dates(raw.get("blackout_dates", []), problems)
    zone = zone_named("Asia/Shanghai")
    try:
        zone = zone_named(str(raw.get("zone", "Asia/Shanghai")))
    except ValueError as exc:
        problems.append(("zone", str(exc)))
    if problems:
        raise PolicyError(problems)
    return ContactPolicy(
        lead_caps=lead_caps,
        phone_caps=phone_caps,
        retry_after=retry_after,
        windows=windows,
        blackout_dates=blackout,
        zone=zone,
        zone_override=bool(raw.get("zone_override", False)),
    )


def policy_json(policy: ContactPolicy) -> dict[str, Any]:
    """The JSON form of a policy, as :func:`parse_policy` reads it."""

    def caps(c: Caps) -> dict[str, int | None]:
        return {"per_day": c.per_day, "per_24h": c.per_24h, "lifetime": c.lifetime}

    return {
        "lead_caps": caps(policy.lead_caps),
        "phone_caps": caps(policy.phone_caps),
        "retry_after_minutes": {
            outcome: None if delay is None else int(delay.total_seconds() // 60)
            for outcome, delay in policy.retry_after.items()
        },
        "windows": [
            {"weekdays": sorted(w.weekdays), "start": _hhmm(w.start_minute), "end": _hhmm(w.end_minute)}
            for w in policy.windows
        ],
        "blackout_dates": sorted(d.isoformat() for d in policy.blackout_dates),
        "zone": policy.zone.key,
        "zone_override": policy.zone_override,
    }


def _caps(raw: Any, where: str, problems: list[tuple[str, str]]) -> Caps:
    if not isinstance(raw, Mapping):
        problems.append((where, "must be an object with per_day, per_24h and lifetime"))
        return Caps()
    values: dict[str, int | None] = {}
    for name in ("per_day", "per_24h", "lifetime"):
        value = raw.get(name)
        if value is None or value == "":
            values[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
            problems.append((f"{where}.{name}", "must be a whole number, or empty for no limit"))
            continue
        number = int(value)
        if number < 1:
            problems.append(
                (f"{where}.{name}", "a cap of 0 would forbid every call; leave it empty for no limit")
            )
        elif number > MAX_CAP:
            problems.append((f"{where}.{name}", f"at most {MAX_CAP}"))
        values[name] = number
    per_day, per_24h, lifetime = (values.get(n) for n in ("per_day", "per_24h", "lifetime"))
    if per_day and lifetime and per_day > lifetime:
        problems.append((f"{where}.per_day", "is more than the lifetime cap"))
    if per_24h and lifetime and per_24h > lifetime:
        problems.append((f"{where}.per_24h", "is more than the lifetime cap"))
    return Caps(per_day, per_24h, lifetime)


def _retry_after(raw: Any, problems: list[tuple[str, str]]) -> dict[str, timedelta | None]:
    if not isinstance(raw, Mapping):
        problems.append(("retry_after_minutes", "must be an object of outcome: minutes"))
        return {}
    delays: dict[str, timedelta | None] = {}
    for outcome, minutes in raw.items():
        where = f"retry_after_minutes.{outcome}"
        if outcome not in OUTCOMES:
            problems.append((where, f"unknown outcome; one of {', '.join(OUTCOMES)}"))
        elif outcome == "callback":
            problems.append((where, "a callback's time is chosen by the agent"))
        elif minutes is None:
            delays[outcome] = None
        elif isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
            problems.append((where, "must be a number of minutes (0 or more), or null for never again"))
        elif timedelta(minutes=minutes) > MAX_RETRY:
            problems.append((where, "at most a year; use null for never again"))
        else:
            delays[outcome] = timedelta(minutes=minutes)
    return delays


def _windows(raw: Any, problems: list[tuple[str, str]]) -> tuple[CallingWindow, ...]:
    if raw is None:
        return ALWAYS
    if not isinstance(raw, list) or not raw:
        problems.append(("windows", "at least one calling window is needed, or no call could ever be made"))
        return ALWAYS
    windows = []
    for i, item in enumerate(raw):
        where = f"windows[{i}]"
        if not isinstance(item, Mapping):
            problems.append((where, "must be an object with weekdays, start and end"))
            continue
        days = item.get("weekdays")
        if not isinstance(days, list) or not days or not all(type(d) is int and 0 <= d <= 6 for d in days):
            problems.append((f"{where}.weekdays", "a list of days, 0 = Monday … 6 = Sunday, at least one"))
            continue
        start, end = _minute(item.get("start")), _minute(item.get("end"))
        if start is None or end is None:
            problems.append((where, "start and end are times like 09:00 (end may be 24:00)"))
        elif end <= start:
            problems.append(
                (where, f"ends ({item.get('end')}) before it starts ({item.get('start')}): it never opens")
            )
        else:
            windows.append(CallingWindow(frozenset(days), start, end))
    return tuple(windows)


def _blackout_dates(raw: Any, problems: list[tuple[str, str]]) -> frozenset[date]:
    if not isinstance(raw, list) or len(raw) > MAX_BLACKOUT_DATES:
        problems.append(("blackout_dates", f"a list of at most {MAX_BLACKOUT_DATES} dates (YYYY-MM-DD)"))
        return frozenset()
    dates = set()
    for value in raw:
        try:
            dates.add(date.fromisoformat(str(value)))
        except ValueError:
            problems.append(("blackout_dates", f"{value!r} is not a date (YYYY-MM-DD)"))
    return frozenset(dates)


def _minute(value: Any) -> int | None:
    text = str(value or "")
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        return None
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > MINUTES_A_DAY:
        return None
    return total


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def windows_meet(a: ContactPolicy, b: ContactPolicy) -> bool:
    """Whether two policies' calling hours overlap in some week (read on one wall clock)."""
    return any(
        day in wa.weekdays
        and day in wb.weekdays
        and wa.start_minute < wb.end_minute
        and wb.start_minute < wa.end_minute
        for wa in a.windows
        for wb in b.windows
        for day in range(7)
    )


def window_start(window: CallingWindow) -> time:
    return time(window.start_minute // 60, window.start_minute % 60)
