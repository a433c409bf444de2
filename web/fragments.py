"""Server events → htmx out-of-band HTML fragments for the agent workbench.

The htmx ``ws`` extension swaps every top-level element of a frame into the element with the
same id, so each event renders the parts of the page it changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.agent_state import PAUSE_REASONS
from storage.models import Outcome
from web.i18n import _
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


def _call(data: dict[str, Any] | None) -> dict[str, Any] | None:
    return {**data, "duration_human": human_duration(data.get("duration_s"))} if data else None


def render_event(event: dict[str, Any]) -> str:
    """The HTML fragments for one server event ("" for events the page does not show)."""
    kind = event["type"]
    if kind == "snapshot":
        connected = f'<div id="connection" class="connection ok">{_("Connected")}</div>'
        return "".join(
            [
                connected,
                _fragment("agent_state", agent=_agent(event["agent"])),
                _fragment("warnings", warnings=event["warnings"]),
                _fragment("lead_card", lead=event["lead"]),
                _fragment("call_panel", call=_call(event["call"])),
            ]
        )
    if kind == "agent.state":
        return _fragment("agent_state", agent=_agent(event))
    if kind == "lead.assigned":
        return _fragment("lead_card", lead=event["lead"]) + _fragment("call_panel", call=None)
    if kind == "lead.none":
        return _fragment("lead_card", lead=None, none_reason=event["reason"])
    if kind == "lead.disposed":
        return _fragment("lead_card", lead=None, disposed=True) + _fragment("call_panel", call=None)
    if kind == "call.state":
        return _fragment("call_panel", call=_call(event))
    if kind == "quota.warning":
        return _fragment("warnings", warnings=[event])
    if kind == "error":
        return _fragment("toast", code=event["code"], message=event["message"])
    if kind == "ack":
        return '<div id="toast" aria-live="assertive"></div>'
    return ""
