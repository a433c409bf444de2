"""Agent quotas: the daily new-lead cap and daily call target, and the warnings about them (pure).

A :class:`QuotaBook` holds a default quota and overrides per tier, per team and per agent;
:meth:`QuotaBook.for_agent` resolves the quota of one agent field by field, the most specific
setting winning (agent > team > tier > default). In an override, ``None`` means "not set here":
the field falls through to the wider setting. In the default, ``None`` means no cap / no target.

The stored form (system setting ``quotas``, see :data:`DEFAULT_QUOTAS_JSON`)::

    {"default": {"daily_new_leads": 80, "daily_calls": 120},
     "tiers": {"A": {"daily_new_leads": 100}}, "teams": {"3": {"daily_calls": 150}},
     "agents": {"17": {"daily_new_leads": 40}},
     "zone": "Asia/Shanghai", "working_day": {"start": "09:00", "end": "18:00"}}

"Today" is the calendar day in the company's zone (:func:`day_bounds`); the working day is used
only to judge the pace of calls. :func:`quota_warnings` says what an agent should be told now;
the hub pushes each as a ``quota.warning`` frame once a day (:func:`warning_key`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.policy.clock import first_instant, local, zone_named
from storage.quotas import AgentDay

MAX_DAILY = 10_000  # more than anyone can work in a day: a bigger number is a typo
QUOTA_FIELDS = ("daily_new_leads", "daily_calls")
WARN_AT_PERCENT = 80
PACE_GRACE = timedelta(hours=1)  # too early in the day to judge a pace

# Built-in defaults, used until a supervisor saves the quotas: a telesales agent works about 80
# fresh leads and makes about 120 outbound calls (fresh leads, retries, callbacks) in a 9-hour day
# in the company's zone (China Standard Time); no overrides.
DEFAULT_QUOTAS_JSON: dict[str, Any] = {
    "default": {"daily_new_leads": 80, "daily_calls": 120},
    "tiers": {},
    "teams": {},
    "agents": {},
    "zone": "Asia/Shanghai",
    "working_day": {"start": "09:00", "end": "18:00"},
}


@dataclass(frozen=True, slots=True)
class Quota:
    """An agent's daily new-lead cap and call target; None = no cap / no target (or, in an
    override, not set at that level)."""

    daily_new_leads: int | None = None
    daily_calls: int | None = None

    def is_empty(self) -> bool:
        return self.daily_new_leads is None and self.daily_calls is None


class Source(enum.StrEnum):
    """Where a resolved quota field comes from."""

    AGENT = "agent"
    TEAM = "team"
    TIER = "tier"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class QuotaOrigin:
    """The level each field of a resolved quota was set at."""

    daily_new_leads: Source
    daily_calls: Source


@dataclass(frozen=True, slots=True)
class QuotaBook:
    """Every quota setting of the company: default, overrides, the day's zone and working hours."""

    default: Quota = Quota()
    tiers: dict[str, Quota] = field(default_factory=dict)
    teams: dict[int, Quota] = field(default_factory=dict)
    agents: dict[int, Quota] = field(default_factory=dict)
    zone: ZoneInfo = field(default_factory=lambda: zone_named("Asia/Shanghai"))
    start: time = time(9)
    end: time = time(18)

    def resolve(self, agent_id: int, team_id: int | None, tier: str | None) -> tuple[Quota, QuotaOrigin]:
        """The agent's quota and, per field, the level it comes from."""
        levels = (
            (Source.AGENT, self.agents.get(agent_id)),
            (Source.TEAM, self.teams.get(team_id) if team_id is not None else None),
            (Source.TIER, self.tiers.get(tier) if tier is not None else None),
        )
        values: dict[str, int | None] = {}
        sources: dict[str, Source] = {}
        for name in QUOTA_FIELDS:
            values[name], sources[name] = getattr(self.default, name), Source.DEFAULT
            for source, quota in levels:
                if quota is not None and getattr(quota, name) is not None:
                    values[name], sources[name] = getattr(quota, name), source
                    break
        return Quota(**values), QuotaOrigin(**sources)

    def for_agent(self, agent_id: int, team_id: int | None, tier: str | None) -> Quota:
        """The quota that applies to the agent: agent > team > tier > default, field by field."""
        return self.resolve(agent_id, team_id, tier)[0]

    def local(self, now_utc: datetime) -> datetime:
        """``now_utc`` as the naive wall time of the company's zone (for :func:`quota_warnings`)."""
        return local(now_utc, self.zone)


class QuotaError(ValueError):
    """Quotas that cannot be saved; ``problems`` are (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))
        self.problems = problems


_LEVELS = ("tiers", "teams", "agents")
_TOP_KEYS = frozenset({"default", *_LEVELS, "zone", "working_day"})
_INTEGER = re.compile(r"\s*-?[0-9]+\s*")
_NOT_A_PLACE = frozenset({"localtime", "posixrules", "Factory"})
_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


def parse_quotas(raw: Mapping[str, Any]) -> QuotaBook:
    """Validate stored or submitted JSON (see :data:`DEFAULT_QUOTAS_JSON`) into a book.

    Numbers may be JSON integers or strings of digits (a form's fields); empty or null means
    not set. Raises :class:`QuotaError` naming every bad field.
    """
    problems: list[tuple[str, str]] = []
    for key in raw:
        if key not in _TOP_KEYS:
            problems.append((str(key), f"unknown setting; one of {', '.join(sorted(_TOP_KEYS))}"))
    default = _quota(raw.get("default", {}), "default", problems, override=False) or Quota()
    tiers: dict[str, Quota] = {}
    for key, value in _level(raw, "tiers", problems).items():
        tier = str(key).strip()
        if not tier or len(tier) > 8:
            problems.append((f"tiers.{key}", "a tier is named by 1 to 8 characters, like A"))
            continue
        _keep(tiers, tier, _quota(value, f"tiers.{key}", problems, override=True))
    teams, agents = (
        _numbered(_level(raw, level, problems), level, problems) for level in ("teams", "agents")
    )
    zone = zone_named("Asia/Shanghai")
    try:
        name = str(raw.get("zone", "Asia/Shanghai")).strip()
        if name in _NOT_A_PLACE:  # these read the server's own settings, not a place's clock
            raise ValueError(f"unknown time zone {name!r}")
        zone = zone_named(name)
    except ValueError as exc:
        problems.append(("zone", f"{exc}; a name like Asia/Shanghai"))
    start, end = _working_day(raw.get("working_day", {}), problems)
    if problems:
        raise QuotaError(problems)
    return QuotaBook(default, tiers, teams, agents, zone, start, end)


def quota_book(raw: Mapping[str, Any] | None) -> QuotaBook:
    """The book of a stored setting, or the built-in defaults when none is stored."""
    return parse_quotas(DEFAULT_QUOTAS_JSON if raw is None else raw)


def quotas_json(book: QuotaBook) -> dict[str, Any]:
    """The JSON form of a book, as :func:`parse_quotas` reads it (empty overrides left out)."""

    def fields(quota: Quota, *, override: bool) -> dict[str, int | None]:
        both = {name: getattr(quota, name) for name in QUOTA_FIELDS}
        return {k: v for k, v in both.items() if v is not None} if override else both

    def level(overrides: Mapping[Any, Quota]) -> dict[str, dict[str, int | None]]:
        return {
            str(key): fields(q, override=True)
            for key, q in sorted(overrides.items(), key=lambda kv: str(kv[0]))
            if not q.is_empty()
        }

    return {
        "default": fields(book.default, override=False),
        "tiers": level(book.tiers),
        "teams": level(book.teams),
        "agents": level(book.agents),
        "zone": book.zone.key,
        "working_day": {"start": book.start.strftime("%H:%M"), "end": book.end.strftime("%H:%M")},
    }


def _level(raw: Mapping[str, Any], name: str, problems: list[tuple[str, str]]) -> Mapping[Any, Any]:
    value = raw.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append((name, "must be an object of name: quota"))
        return {}
    return value


def _numbered(overrides: Mapping[Any, Any], level: str, problems: list[tuple[str, str]]) -> dict[int, Quota]:
    # JSON object keys are strings: team and agent ids arrive as "3", from Python as 3.
    out: dict[int, Quota] = {}
    for key, value in overrides.items():
        where = f"{level}.{key}"
        text = str(key).strip()
        if isinstance(key, bool) or not (text.isascii() and text.isdigit() and 0 < int(text[:11]) < 2**31):
            problems.append((where, f"{level[:-1]} ids are whole numbers, like 3"))
            continue
        if int(text) in out:
            problems.append((where, f"names {level[:-1]} {int(text)} twice"))
            continue
        _keep(out, int(text), _quota(value, where, problems, override=True))
    return out


def _keep(level: dict[Any, Quota], key: Any, quota: Quota | None) -> None:
    if quota is not None and not quota.is_empty():
        level[key] = quota


def _quota(raw: Any, where: str, problems: list[tuple[str, str]], *, override: bool) -> Quota | None:
    if raw is None:
        return Quota()
    if not isinstance(raw, Mapping):
        problems.append((where, f"must be an object with {' and '.join(QUOTA_FIELDS)}"))
        return None
    for key in raw:
        if key not in QUOTA_FIELDS:
            problems.append((f"{where}.{key}", f"unknown setting; one of {', '.join(QUOTA_FIELDS)}"))
    values = {name: _daily(raw.get(name), f"{where}.{name}", problems, override) for name in QUOTA_FIELDS}
    return Quota(**values)


def _daily(value: Any, where: str, problems: list[tuple[str, str]], override: bool) -> int | None:
    what = "cap" if where.endswith("daily_new_leads") else "target"
    empty = "leave it empty to use the wider setting" if override else f"leave it empty for no {what}"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not _INTEGER.fullmatch(str(value)):
        problems.append((where, f"must be a whole number; {empty}"))
        return None
    if isinstance(value, str) and len(value.strip()) > 12:  # int() of a huge string is slow, or refused
        problems.append((where, f"at most {MAX_DAILY:,} a day"))
        return None
    number = int(value)
    if number < 0:
        problems.append((where, f"must be more than 0; {empty}"))
    elif number == 0 and what == "cap":
        problems.append((where, f"a cap of 0 would give the agent no new leads at all; {empty}"))
    elif number == 0:
        problems.append((where, f"a target of 0 calls means nothing; {empty}"))
    elif number > MAX_DAILY:
        problems.append((where, f"at most {MAX_DAILY:,} a day"))
    else:
        return number
    return None


def _working_day(raw: Any, problems: list[tuple[str, str]]) -> tuple[time, time]:
    start, end = time(9), time(18)
    if not isinstance(raw, Mapping):
        problems.append(("working_day", "must be an object with start and end, like 09:00 and 18:00"))
        return start, end
    parsed: list[time | None] = []
    for name, fallback in (("start", start), ("end", end)):
        value = raw.get(name, fallback.strftime("%H:%M"))
        match = _HHMM.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            problems.append((f"working_day.{name}", "a time of day like 09:00 (00:00 to 23:59)"))
        parsed.append(time(int(match[1]), int(match[2])) if match else None)
    first, last = parsed
    if first is None or last is None:
        return start, end
    if last <= first:
        # A night shift across midnight would split "today" in two; the company day is one date.
        problems.append(("working_day.end", f"must be after the start ({first:%H:%M}), on the same day"))
    return first, last


class WarningKind(enum.StrEnum):
    DAILY_CAP = "daily_cap"  # new leads given today against the cap
    CALL_TARGET = "call_target"  # calls made today against the target
    BEHIND_PACE = "behind_pace"  # fewer calls than the working day so far asks for


@dataclass(frozen=True, slots=True)
class QuotaWarning:
    """What to tell an agent: ``threshold`` is the cap or target (for ``behind_pace``, the calls
    expected by now), ``remaining`` how many are left to reach the cap or target, ``level`` the
    percent reached (80 or 100; 80 for ``behind_pace``: under 80 % of the pace)."""

    kind: WarningKind
    level: int
    remaining: int
    threshold: int
    message: str

    def as_event(self) -> dict[str, Any]:
        """The ``quota.warning`` frame (without the hub's ``seq``/``ts``)."""
        return {
            "type": "quota.warning",
            "kind": self.kind.value,
            "level": self.level,
            "remaining": self.remaining,
            "threshold": self.threshold,
            "message": self.message,
        }


def quota_warnings(
    quota: Quota, day_counts: AgentDay, now_local: datetime, book: QuotaBook
) -> list[QuotaWarning]:
    """The warnings an agent has earned now: at most one per kind, the highest level reached.

    ``now_local`` is the wall time in the company's zone (:meth:`QuotaBook.local`); an aware
    datetime is converted first. Pace is judged on the wall clock from the working day's start.
    """
    if now_local.tzinfo is not None:
        now_local = local(now_local, book.zone)
    warnings = []
    cap, given = quota.daily_new_leads, day_counts.new_leads
    if cap is not None and _percent_reached(given, cap) is not None:
        left = max(cap - given, 0)
        if given >= cap:
            text = f"You've had all {cap} new leads for today. Callbacks and retries still come to you."
            warnings.append(QuotaWarning(WarningKind.DAILY_CAP, 100, left, cap, text))
        else:
            text = f"{left} new {_leads(left)} left for today (cap {cap})."
            warnings.append(QuotaWarning(WarningKind.DAILY_CAP, WARN_AT_PERCENT, left, cap, text))
    target, calls = quota.daily_calls, day_counts.calls
    if target is not None and _percent_reached(calls, target) is not None:
        left = max(target - calls, 0)
        if calls >= target:
            text = f"Target reached: {calls} calls today (target {target}). Well done!"
            warnings.append(QuotaWarning(WarningKind.CALL_TARGET, 100, 0, target, text))
        else:
            text = f"Nearly there: {left} more {_calls(left)} to today's target of {target}."
            warnings.append(QuotaWarning(WarningKind.CALL_TARGET, WARN_AT_PERCENT, left, target, text))
    if target is not None:
        expected = _calls_expected(target, now_local, book)
        # Behind when under 80 % of the pace: calls < 0.8 × expected, in whole numbers.
        if expected is not None and calls * 100 < WARN_AT_PERCENT * expected:
            mark = round(expected)
            text = f"Behind pace: {calls} {_calls(calls)} so far; about {mark} by now would reach {target}."
            warnings.append(
                QuotaWarning(WarningKind.BEHIND_PACE, WARN_AT_PERCENT, target - calls, mark, text)
            )
    return warnings


def _percent_reached(count: int, limit: int) -> int | None:
    if count >= limit:
        return 100
    if count * 100 >= WARN_AT_PERCENT * limit:
        return WARN_AT_PERCENT
    return None


def _calls_expected(target: int, now_local: datetime, book: QuotaBook) -> float | None:
    """Calls the target asks for by now (target × share of the working day gone); None outside
    the judged part of the day (the first hour, and from the end on)."""
    start = datetime.combine(now_local.date(), book.start)
    end = datetime.combine(now_local.date(), book.end)
    if not start + PACE_GRACE <= now_local < end:
        return None
    return target * ((now_local - start) / (end - start))


def _leads(n: int) -> str:
    return "lead" if n == 1 else "leads"


def _calls(n: int) -> str:
    return "call" if n == 1 else "calls"


def warning_key(w: QuotaWarning, day: date) -> str:
    """A key naming the warning on that day: push a warning only when its key is new."""
    return f"quota:{day.isoformat()}:{w.kind.value}:{w.level}"


def day_bounds(book: QuotaBook, now_utc: datetime) -> tuple[date, datetime]:
    """The company's calendar day containing ``now_utc`` (aware) and the instant (UTC) it began.

    DST-safe: a day whose midnight falls in a gap begins when the clock jumps past it.
    """
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be an aware datetime")
    day = local(now_utc, book.zone).date()
    return day, first_instant(day, time(0), book.zone)
