"""What each disposition outcome does to a lead (pure rules, no I/O).

A retried lead is due again at once here; the contact policy's pause for the outcome is applied
right after the disposition is recorded (``ContactGate.after_contact``), so one set of rules decides.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from storage.leads import DispositionEffect
from storage.models import LeadStatus, Outcome

FINAL_OUTCOMES = frozenset({Outcome.CONVERTED, Outcome.NOT_INTERESTED, Outcome.INVALID_NUMBER, Outcome.DNC})
MAX_CALLBACK_AHEAD = timedelta(days=365)
NOTE_MAX_CHARS = 2000


class DispositionError(ValueError):
    pass


def parse_outcome(value: object) -> Outcome:
    try:
        return Outcome(str(value))
    except ValueError:
        names = " ".join(o.value for o in Outcome)
        raise DispositionError(f"unknown outcome {value!r}: one of {names}") from None


def callback_agent(value: object, agent_id: int) -> int | None:
    """Who a callback is for: ``"me"`` (the default) or ``"anyone"``."""
    if value in (None, "me"):
        return agent_id
    if value == "anyone":
        return None
    raise DispositionError("callback_for is 'me' or 'anyone'")


def handoff_effect(
    now: datetime, trial_at: datetime, note: str, agent_name: str, sales_campaign_id: int
) -> DispositionEffect:
    """A TMK agent booked a trial lesson: the lead moves, fresh, to a sales campaign's pool."""
    if trial_at <= now:
        raise DispositionError("the trial lesson time is in the past")
    if trial_at > now + MAX_CALLBACK_AHEAD:
        raise DispositionError("the trial lesson time is more than a year ahead")
    stamp = now.strftime("%Y-%m-%d %H:%M UTC")
    lesson = trial_at.strftime("%Y-%m-%d %H:%M UTC")
    handoff_note = f"[{stamp}] TMK {agent_name}: trial lesson booked for {lesson}." + (
        f" {note}" if note else ""
    )
    return DispositionEffect(
        LeadStatus.NEW,
        now,
        None,
        move_to_campaign=sales_campaign_id,
        append_notes=handoff_note + "\n",
        attributes={"trial_lesson_at": trial_at.isoformat()},
    )


def disposition_effect(
    outcome: Outcome,
    now: datetime,
    callback_at: datetime | None,
    *,
    callback_agent_id: int | None = None,
) -> DispositionEffect:
    """The lead's new status and when it may be dialled again.

    A callback is promised by ``callback_agent_id`` (offered to them first), or by nobody in
    particular (None: anyone may take it when it is due).
    """
    if outcome is Outcome.CALLBACK:
        if callback_at is None:
            raise DispositionError("choose when to call back (callback_at)")
        if callback_at <= now:
            raise DispositionError("the callback time is in the past")
        if callback_at > now + MAX_CALLBACK_AHEAD:
            raise DispositionError("the callback time is more than a year ahead")
        return DispositionEffect(LeadStatus.CALLBACK, callback_at, callback_at, callback_agent_id)
    if outcome in FINAL_OUTCOMES:
        return DispositionEffect(LeadStatus.CLOSED, now, None)
    # When it may be dialled again is the contact policy's to say (its retry pause for the outcome).
    return DispositionEffect(LeadStatus.RETRY, now, None)
