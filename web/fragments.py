"""Server events → htmx out-of-band HTML fragments for the agent workbench.

The htmx ``ws`` extension swaps every top-level element of a frame into the element with the
same id (``outerHTML``, or what its ``hx-swap-oob`` says), so each event renders the parts of the
page it changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hub.agent_state import PAUSE_REASONS
from storage.models import Outcome, Role
from web.templating import env

OUTCOMES = [o.value for o in Outcome]


def _fragment(name: str, **context: Any) -> str:
    return env.get_template(f"fragments/{name}.html").render(
        pause_reasons=PAUSE_REASONS, outcomes=OUTCOMES, **context
    )


def _agent(data: dict[str, Any]) -> dict[str, Any]:
    since = data.get("since")
    iso = datetime.fromtimestamp(since / 1000, UTC).isoformat() if since else ""
    return {**data, "since_iso": iso}


def human_duration(seconds: float | None) -> str:
    total = round(seconds or 0)
    minutes, secs = divmod(total, 60)
    return f"{minutes}:{secs:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _call(data: dict[str, Any] | None, *, live: bool = False) -> dict[str, Any] | None:
    # ``live``: the page saw this state change as it happened, so a talk-time stopwatch may start now.
    if not data:
        return None
    return {**data, "duration_human": human_duration(data.get("duration_s")), "live": live}


def _lead_parts(
    lead: dict[str, Any] | None, call: dict[str, Any] | None = None, *, tmk: bool = False, **card: Any
) -> str:
    """The lead card, the call panel and the outcome form: the parts that change with the lead."""
    return (
        _fragment("lead_card", lead=lead, **card)
        + _fragment("call_panel", lead=lead, call=call)
        + _fragment("outcome", lead=lead, tmk=tmk)
    )


def renderer_for(role: str) -> Callable[[dict[str, Any]], str]:
    """The event renderer of one agent's page (TMK agents also book trial lessons)."""
    return functools.partial(render_event, tmk=role == Role.TMK)


def render_event(event: dict[str, Any], *, tmk: bool = False) -> str:
    """The HTML fragments for one server event ("" for events the page does not show)."""
    kind = event["type"]
    if kind == "snapshot":
        return (
            _fragment("connection", connection="ok")
            + _fragment("agent_state", agent=_agent(event["agent"]))
            + _fragment("warnings", warnings=event["warnings"])
            + _fragment("screen_pop", pop=event.get("inbound"))
            + _lead_parts(event["lead"], _call(event["call"]), tmk=tmk)
        )
    if kind == "agent.state":
        return _fragment("agent_state", agent=_agent(event))
    if kind == "lead.assigned":
        return _lead_parts(event["lead"], _call(event.get("call"), live=True), tmk=tmk)
    if kind == "lead.none":
        return _lead_parts(None, none_reason=event["reason"], next_due_at=event.get("next_due_at"))
    if kind == "lead.disposed":
        return _lead_parts(None, disposed=True)
    if kind == "call.state":
        panel = _fragment("call_panel", lead=None, call=_call(event, live=True))
        if event.get("direction") == "in" and event["state"] == "ended":
            panel += _fragment("screen_pop", pop=None)  # the caller is gone: so is their pop
        return panel
    if kind == "call.inbound":
        return _fragment("screen_pop", pop=event)
    if kind == "quota.warning":
        return _fragment("warnings", warnings=[event])
    if kind == "error":
        return _fragment("toast", code=event["code"], message=event["message"])
    if kind == "ack":
        return _fragment("toast", code="", message="")
    return ""


def render_supervisor_event(event: dict[str, Any]) -> str:
    """The HTML fragments of the supervisors' live feed: the alert list, newest first."""
    kind = event["type"]
    if kind == "snapshot":
        return _fragment("connection", connection="ok") + _fragment(
            "supervisor_alerts", alerts=[_alert(a) for a in event["alerts"]], swap="innerHTML"
        )
    if kind == "quota.warning":
        return _fragment("supervisor_alerts", alerts=[_alert(event)], swap="afterbegin")
    return ""


def _alert(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "at_iso": datetime.fromtimestamp(event["at"] / 1000, UTC).isoformat()}
