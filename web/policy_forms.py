"""The contact policy as an HTML form: inputs ↔ the policy JSON, problems placed at their inputs.

Pure (no I/O). The form does not validate on its own: it only shapes what was typed into the JSON
that ``hub.policy.parse_policy`` reads (a cap typed as "abc" is passed on as "abc"), so the page
and the JSON API refuse exactly the same things with the same words. What comes back as
``PolicyError.problems`` is then mapped to the inputs that caused it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from hub.policy.rules import OUTCOMES
from web.i18n import _, ngettext

CAP_GROUPS = ("lead_caps", "phone_caps")
CAP_NAMES = ("per_day", "per_24h", "lifetime")
# A callback's time is chosen by the agent, so it has no pause of its own.
DELAY_OUTCOMES = tuple(o for o in OUTCOMES if o != "callback")
SPARE_WINDOW_ROWS = 3
MAX_DIGITS = 9  # any longer number is over every limit of the policy anyway
MAX_WINDOW_ROWS = 48  # bounds what a crafted form can make the page render
COMMON_ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Asia/Kolkata",
    "Asia/Dubai",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "UTC",
)
_WINDOW_INPUT = re.compile(r"^window-(\d{1,2})-(day|start|end)$")
_DATE_SEPARATORS = re.compile(r"[\s,;，；]+")
_INDEXED = re.compile(r"^windows\[(\d+)\]")
_DAY_VALUES = frozenset(str(day) for day in range(7))


def weekday_names() -> list[str]:
    """Short day names, Monday first (the policy's 0 = Monday)."""
    return [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]


@dataclass(slots=True)
class WindowRow:
    """One row of calling hours as the form shows it."""

    days: frozenset[int] = frozenset()
    start: str = ""
    end: str = ""

    @property
    def blank(self) -> bool:
        # Clearing a row's times removes it; ticked days alone do not make a window.
        return not self.start and not self.end


@dataclass(slots=True)
class PolicyForm:
    """Every input's text, as stored or as submitted (kept as typed so a refused form shows it again)."""

    caps: dict[str, str] = field(default_factory=dict)  # "lead_caps.per_day" → "2"
    delays: dict[str, str] = field(default_factory=dict)  # outcome → minutes
    never: frozenset[str] = frozenset()  # outcomes after which the lead is never called again
    windows: list[WindowRow] = field(default_factory=list)
    blackout_dates: str = ""
    zone: str = ""
    zone_override: bool = False

    def delay_hint(self, outcome: str) -> str:
        """The typed pause in words ("2 h"), or "" when it is not a plain number."""
        text = self.delays.get(outcome, "")
        return delay_text(int(text)) if text.isdecimal() and outcome not in self.never else ""


@dataclass(frozen=True, slots=True)
class FormProblem:
    """One refusal placed at an input: ``slot`` names the input group, ``anchor`` the input's id.

    ``part`` says what the slot is (``cap``, ``delay``, ``window``, ``windows``, ``blackout_dates``,
    ``zone`` or ``other``) and ``detail`` which one (``lead_caps.per_day``, an outcome, a row number
    counted from 1), so the template can name it in the summary.
    """

    slot: str
    anchor: str
    part: str
    detail: str
    message: str


# --- stored policy → form ----------------------------------------------------------------------


def form_of(policy: Mapping[str, Any]) -> PolicyForm:
    """The form showing a stored (already validated) policy, with spare rows for new windows."""
    caps = {}
    for group in CAP_GROUPS:
        stored = policy.get(group) or {}
        for name in CAP_NAMES:
            value = stored.get(name)
            caps[f"{group}.{name}"] = "" if value is None else str(value)
    retry = policy.get("retry_after_minutes") or {}
    windows = [
        WindowRow(frozenset(w.get("weekdays", ())), str(w.get("start", "")), str(w.get("end", "")))
        for w in policy.get("windows") or ()
    ]
    return PolicyForm(
        caps=caps,
        delays={o: str(m) for o, m in retry.items() if m is not None},
        never=frozenset(o for o, m in retry.items() if m is None),
        windows=with_spare_rows(windows),
        blackout_dates="\n".join(policy.get("blackout_dates") or ()),
        zone=str(policy.get("zone", "")),
        zone_override=bool(policy.get("zone_override", False)),
    )


def with_spare_rows(rows: list[WindowRow]) -> list[WindowRow]:
    """The rows, then enough empty ones at the end to add a few windows without any script."""
    trailing = 0
    for row in reversed(rows):
        if not (row.blank and not row.days):
            break
        trailing += 1
    return rows + [WindowRow() for _ in range(max(0, SPARE_WINDOW_ROWS - trailing))]


# --- submitted form → form and JSON ------------------------------------------------------------


def read_form(form: FormData) -> PolicyForm:
    """The submitted inputs as typed (unknown names ignored, at most ``MAX_WINDOW_ROWS`` rows)."""
    rows: dict[int, WindowRow] = {}
    for name in form:
        match = _WINDOW_INPUT.match(name)
        if match is None or int(match[1]) >= MAX_WINDOW_ROWS:
            continue
        row = rows.setdefault(int(match[1]), WindowRow())
        if match[2] == "day":
            row.days = frozenset(int(v) for v in form.getlist(name) if v in _DAY_VALUES)
        else:
            setattr(row, match[2], _text(form, name))
    windows = [rows.get(i, WindowRow()) for i in range(max(rows, default=-1) + 1)]
    return PolicyForm(
        caps={f"{g}.{n}": _text(form, f"{g}.{n}") for g in CAP_GROUPS for n in CAP_NAMES},
        delays={o: _text(form, f"delay-{o}") for o in DELAY_OUTCOMES if _text(form, f"delay-{o}")},
        never=frozenset(o for o in DELAY_OUTCOMES if form.get(f"never-{o}") == "on"),
        windows=with_spare_rows(windows),
        blackout_dates=_text(form, "blackout_dates"),
        zone=_text(form, "zone"),
        zone_override=form.get("zone_override") == "on",
    )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def policy_of(values: PolicyForm) -> tuple[dict[str, Any], list[int]]:
    """The policy JSON the form stands for, and the form row of each JSON window (for problems)."""
    caps: dict[str, dict[str, Any]] = {group: {} for group in CAP_GROUPS}
    for key, text in values.caps.items():
        group, _dot, name = key.partition(".")
        caps[group][name] = _number_or_text(text) if text else None
    retry: dict[str, Any] = {o: _number_or_text(m) for o, m in values.delays.items()}
    retry.update(dict.fromkeys(values.never))
    rows = [i for i, row in enumerate(values.windows) if not row.blank]
    windows = [
        {
            "weekdays": sorted(values.windows[i].days),
            "start": values.windows[i].start,
            "end": values.windows[i].end,
        }
        for i in rows
    ]
    policy = {
        **caps,
        "retry_after_minutes": retry,
        "windows": windows,
        "blackout_dates": [d for d in _DATE_SEPARATORS.split(values.blackout_dates) if d],
        "zone": values.zone,
        "zone_override": values.zone_override,
    }
    return policy, rows


def _number_or_text(text: str) -> int | str:
    # Digits (also full-width ones from a Chinese IME) become a number; anything else goes on as
    # typed, for the policy to refuse by name. Absurdly long numbers stay text too.
    return int(text) if text.isdecimal() and len(text) <= MAX_DIGITS else text


# --- problems → inputs -------------------------------------------------------------------------


def placed(problems: list[tuple[str, str]], rows: list[int]) -> list[FormProblem]:
    """Each (field, message) of a PolicyError at its input; ``rows`` as :func:`policy_of` gives them."""
    return [_place(where, message, rows) for where, message in problems]


def _place(where: str, message: str, rows: list[int]) -> FormProblem:
    group, _dot, name = where.partition(".")
    if group in CAP_GROUPS and name in CAP_NAMES:
        return FormProblem(where, f"cap-{group}-{name}", "cap", where, message)
    if group == "retry_after_minutes" and name in DELAY_OUTCOMES:
        return FormProblem(f"delay-{name}", f"delay-{name}", "delay", name, message)
    indexed = _INDEXED.match(where)
    if indexed and int(indexed[1]) < len(rows):
        row = rows[int(indexed[1])]
        return FormProblem(f"window-{row}", f"window-{row}-start", "window", str(row + 1), message)
    if where == "windows":
        first = rows[0] if rows else 0
        return FormProblem("windows", f"window-{first}-start", "windows", "", message)
    if where == "blackout_dates":
        return FormProblem(where, "blackout-dates", where, "", message)
    if where == "zone":
        return FormProblem(where, "zone", where, "", message)
    return FormProblem("other", "problems", "other", where, message)


def by_slot(problems: list[FormProblem]) -> dict[str, list[str]]:
    """The messages to show next to each input group."""
    slots: dict[str, list[str]] = {}
    for problem in problems:
        slots.setdefault(problem.slot, []).append(problem.message)
    return slots


# --- one line per policy, for the list ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyLine:
    """A policy at a glance: its hours, its daily caps and its main pauses (outcome, words)."""

    hours: list[str]  # one per set of days: "Mon–Fri 09:00–12:00, 13:30–20:00"
    lead_per_day: int | None
    phone_per_day: int | None
    delays: list[tuple[str, str]]


MAIN_DELAYS = ("no_answer", "busy", "not_interested")


def policy_line(policy: Mapping[str, Any]) -> PolicyLine:
    """The one-line summary of a stored policy (validated JSON)."""
    retry = policy.get("retry_after_minutes") or {}
    return PolicyLine(
        hours=hours_text(policy.get("windows")),
        lead_per_day=(policy.get("lead_caps") or {}).get("per_day"),
        phone_per_day=(policy.get("phone_caps") or {}).get("per_day"),
        delays=[(o, delay_text(retry[o])) for o in MAIN_DELAYS if o in retry],
    )


def hours_text(windows: Any) -> list[str]:
    """Calling windows grouped by their days: ["Mon–Fri 09:00–12:00, 13:30–20:00", "Sat 10:00–18:00"]."""
    if windows is None:  # a policy without windows may call at any time
        return [_("Any day, any time")]
    groups: dict[tuple[int, ...], list[str]] = {}
    for w in windows:
        groups.setdefault(tuple(sorted(w["weekdays"])), []).append(f"{w['start']}–{w['end']}")
    return [f"{days_text(days)} {', '.join(times)}" for days, times in groups.items()]


def days_text(days: tuple[int, ...]) -> str:
    """Weekdays in runs: (0, 1, 2, 3, 4, 6) → "Mon–Fri, Sun"."""
    if len(days) == 7:
        return _("Every day")
    names = weekday_names()
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) > 2:
            parts.append(f"{names[run[0]]}–{names[run[-1]]}")
        else:
            parts.extend(names[d] for d in run)
    return ", ".join(parts)


def delay_text(minutes: int | None) -> str:
    """A pause for people: "never again", "no pause", "15 min", "2 h", "1 h 30 min", "30 days"."""
    if minutes is None:
        return _("never again")
    if minutes == 0:
        return _("no pause")
    days, rest = divmod(minutes, 24 * 60)
    if days and not rest:
        return ngettext("%(num)d day", "%(num)d days", days) % {"num": days}
    hours, mins = divmod(minutes, 60)
    if hours and mins:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": mins}
    if hours:
        return _("%(hours)d h") % {"hours": hours}
    return _("%(minutes)d min") % {"minutes": mins}
