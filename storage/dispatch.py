"""The claim of an agent's next lead: one call of ``lineup_claim_next_lead`` (migration 0006).

The database function picks the lead in dispatch order, holds it marked as cleared for dialling,
locks its number, reads the facts the contact policy decides on (in a snapshot taken after the
lock, so they include every hold of the number cleared before) and commits: one round trip. The
caller's ``judge`` then decides on those facts; a refused lead is given back (a second round
trip, rare).

Committing before the decision is safe for the caps: a hold counts as an attempt from the moment
it is committed, so a check of the same number made meanwhile counts it too and can only be
stricter than needed, never looser. (If the first lead is then refused, the second may have been
held back by an attempt that did not happen: it is due again when that attempt would have
expired. A rare race, and a delay, never a broken cap.)

This is the hot path of dispatch: it speaks asyncpg directly, on a pool of its own whose
connections stay open (the function's plans are cached per connection).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from asyncpg import Pool, UniqueViolationError

from storage.contact import LeadContact
from storage.leads import HeldLead

_CLAIM = "SELECT * FROM lineup_claim_next_lead($1, $2, $3, $4, $5)"
# A refused lead goes back: due at the policy's time (a fresh one as a retry) or closed, and it
# no longer counts towards the agent's fresh leads of the day.
_GIVE_BACK = """
WITH lead AS (
    UPDATE leads SET held_by = NULL, lease_expires_at = NULL, cleared_at = NULL,
        next_attempt_at = coalesce($3, next_attempt_at),
        status = CASE WHEN $4 THEN 'closed' WHEN status = 'new' THEN 'retry' ELSE status END
    WHERE id = $1 AND held_by = $2 RETURNING id
)
UPDATE agent_days SET new_leads = new_leads - 1
WHERE $5 AND agent_id = $2 AND day = $6 AND EXISTS (SELECT 1 FROM lead)
"""


@dataclass(frozen=True, slots=True)
class ClaimedLead:
    """A lead just claimed for an agent, and its contact facts (read under its number's lock).

    ``held_before``: the agent already held this lead (a reconnect), so it was cleared before.
    ``fresh``: the lead had never been offered (it counts towards the daily new-lead cap).
    """

    lead: HeldLead
    contact: LeadContact
    held_before: bool
    fresh: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """The policy's no: the lead is due again at ``until``, or closed for good."""

    until: datetime | None
    close: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim did: the lead it found (None: nothing dispensable) and the refusal, if any."""

    claimed: ClaimedLead | None
    refusal: Refusal | None = None


async def claim_next_lead(
    pool: Pool,
    agent_id: int,
    lease_s: float,
    *,
    general_pool: bool,
    new_lead_cap: int | None,
    day: date,
    judge: Callable[[ClaimedLead], Refusal | None],
) -> Claim:
    """Claim the agent's next lead and keep it only if ``judge`` (the contact policy) allows it.

    ``general_pool``: the agent may take shared leads of no campaign (sales agents).
    ``new_lead_cap``: fresh leads the agent may be given on ``day`` (None: no cap).
    A refused lead goes back, due at the refusal's time (a fresh one as a retry), or closed.
    """
    async with pool.acquire() as conn:
        try:
            row = await conn.fetchrow(_CLAIM, agent_id, lease_s, general_pool, new_lead_cap, day)
        except UniqueViolationError:
            # The same agent claimed at the same moment on another socket: take the lead it got.
            row = await conn.fetchrow(_CLAIM, agent_id, lease_s, general_pool, new_lead_cap, day)
        if row is None:
            return Claim(None)
        claimed = _claimed(row)
        refusal = None if claimed.held_before else judge(claimed)
        if refusal is not None:
            await conn.execute(
                _GIVE_BACK, claimed.lead.id, agent_id, refusal.until, refusal.close, claimed.fresh, day
            )
        return Claim(claimed, refusal)


def _claimed(row: Any) -> ClaimedLead:
    attributes = row["attributes"]
    lead = HeldLead(
        id=row["id"],
        name=row["name"],
        phone_e164=row["phone_e164"],
        area=row["area"],
        attributes=json.loads(attributes) if isinstance(attributes, str) else attributes,
        status=row["status"],
        owner_id=row["owner_id"],
        callback_at=row["callback_at"],
        attempts=row["attempts"],
        campaign_id=row["campaign_id"],
        notes=row["notes"],
    )
    contact = LeadContact(
        lead_id=lead.id,
        phone_e164=lead.phone_e164,
        campaign_id=lead.campaign_id,
        status=lead.status,
        callback_at=lead.callback_at,
        last_outcome=row["last_outcome"],
        on_dnc=row["on_dnc"],
        lead_attempts=tuple(row["lead_times"]),
        phone_attempts=tuple(row["phone_times"]),
    )
    return ClaimedLead(lead, contact, held_before=row["held_before"], fresh=row["fresh"])
