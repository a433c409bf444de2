"""What an agent is shown (pure, no I/O): a lead as they may see it, why no lead came, low stock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.contact_gate import Verdict
from hub.intake.phones import mask_phone
from storage.leads import ContactRecord, HeldLead


def lead_payload(lead: HeldLead, history: list[ContactRecord]) -> dict[str, Any]:
    """A lead as an agent may see it: the phone is always masked."""
    return {
        "id": lead.id,
        "name": lead.name,
        "phone_masked": mask_phone(lead.phone_e164),
        "area": lead.area,
        "attributes": lead.attributes,
        "attempts": lead.attempts,
        "notes": lead.notes,
        "history": [
            {"at": h.at.isoformat(), "outcome": h.outcome, "note": h.note, "agent": h.agent_name}
            for h in history
        ],
        "callback_at": lead.callback_at.isoformat() if lead.callback_at else None,
    }


def none_reason(due: datetime | None, refused: Verdict | None, capped: bool) -> str:
    """The ``lead.none`` sentence: what holds the agent's next leads back, or when one is due."""
    if refused is not None and not refused.decision.dialable:
        # The leads tried just now were held back by the contact policy: say by what.
        return f"your next leads may not be called now: {refused.main_reason()}"
    if capped:
        reason = "you have had all your new leads for today"
        return reason + (f"; the next retry or callback is due at {due:%Y-%m-%d %H:%M %Z}" if due else "")
    if due is None:
        return "no leads left: your list and the shared pool are empty"
    return f"no lead is due now; the next one is due at {due.isoformat(timespec='minutes')}"


def stock_warning(remaining: int, threshold: int) -> dict[str, Any] | None:
    """The ``stock_low`` warning when the agent has fewer than ``threshold`` leads left."""
    if remaining >= threshold:
        return None
    return {
        "type": "quota.warning",
        "kind": "stock_low",
        "remaining": remaining,
        "threshold": threshold,
        "message": f"Low on leads: fewer than {threshold} left. Ask your supervisor for more.",
    }
