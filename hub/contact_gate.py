"""The contact policy at work in dispatch: every claimed lead is cleared for dialling or given back.

The claim (storage.dispatch) reads a claimed lead's facts under a lock on its number and asks
:meth:`ContactGate.judge`, which decides with the pure policy (hub.policy): the claim is kept, or
given back due at the earliest time the policy allows. After a contact, :meth:`after_contact`
pushes the lead's next attempt to that time too.

Policies come from ``system_settings`` (the system-wide limits and the default policy) and each
campaign's ``settings["contact"]``, re-read every few seconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.policy import (
    DEFAULT_POLICY_JSON,
    ContactFacts,
    ContactPolicy,
    Decision,
    PolicyError,
    customer_zone,
    decide,
    parse_policy,
)
from hub.policy.explain import main_reason
from storage import calls as call_store
from storage import contact as contact_store
from storage.dispatch import ClaimedLead, Refusal

log = logging.getLogger("lineup.contact")

POLICIES_TTL_S = 5.0
_OPEN = ContactPolicy()  # no caps, no pauses, always open: no system-wide limits unless set


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision and the customer's zone, to say it in their local time."""

    decision: Decision
    zone: ZoneInfo

    def main_reason(self) -> str:
        return main_reason(self.decision, self.zone)


class ContactGate:
    """The hub's one door between dispatch and the contact policy (one per hub process)."""

    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self._db = db
        self._loaded_at = -POLICIES_TTL_S
        self._system = _OPEN
        self._default = parse_policy(DEFAULT_POLICY_JSON)
        self._campaigns: dict[int, ContactPolicy] = {}

    async def ready(self) -> None:
        """Re-read the policies if the cached ones are older than :data:`POLICIES_TTL_S`."""
        if time.monotonic() - self._loaded_at > POLICIES_TTL_S:
            async with self._db() as s:
                await self._load(s)

    def _own_policy(self, campaign_id: int | None) -> ContactPolicy:
        return self._default if campaign_id is None else self._campaigns.get(campaign_id, self._default)

    def forget_policies(self) -> None:
        """Re-read the policies before the next decision (one was just saved)."""
        self._loaded_at = -POLICIES_TTL_S

    async def _load(self, session: AsyncSession) -> None:
        self._system = _parsed(await contact_store.setting(session, contact_store.SYSTEM_POLICY), _OPEN)
        stored_default = await contact_store.setting(session, contact_store.DEFAULT_POLICY)
        self._default = _parsed(stored_default, parse_policy(DEFAULT_POLICY_JSON))
        self._campaigns = {
            campaign_id: _parsed(raw, self._default)
            for campaign_id, raw in (await contact_store.campaign_policies(session)).items()
        }
        self._loaded_at = time.monotonic()

    def decision(self, lead: contact_store.LeadContact, now: datetime) -> Decision:
        """The decision on a lead's facts with the cached policies (call :meth:`ready` first)."""
        facts = ContactFacts(
            lead.phone_e164,
            lead.status,
            on_dnc=lead.on_dnc,
            callback_at=lead.callback_at,
            last_outcome=lead.last_outcome,
            last_attempt_at=lead.lead_attempts[-1] if lead.lead_attempts else None,
            lead_attempts=lead.lead_attempts,
            phone_attempts=lead.phone_attempts,
        )
        # The campaign's own policy (or the default) and the system-wide limits on top of it.
        return decide([self._own_policy(lead.campaign_id), self._system], facts, now)

    def judge(self, claimed: ClaimedLead) -> tuple[Refusal | None, Verdict]:
        """The claim-time check of a lead just claimed (its facts read under its number's lock)."""
        decision = self.decision(claimed.contact, datetime.now(UTC))
        verdict = Verdict(decision, self.zone_of(claimed.contact))
        if decision.dialable:
            return None, verdict
        log.info(
            "event=lead_deferred lead=%s until=%s reasons=%s",
            claimed.lead.id,
            decision.earliest.isoformat() if decision.earliest else "never",
            ",".join(r.code for r in decision.reasons),
        )
        return Refusal(decision.earliest, close=_never(decision)), verdict

    async def lead_decision(
        self, lead_id: int, now: datetime
    ) -> tuple[contact_store.LeadContact, Decision] | None:
        """The decision for one lead (the "Why not?" page and API); None for an unknown lead."""
        await self.ready()
        async with self._db() as s:
            lead = await contact_store.lead_contact(s, lead_id)
        return None if lead is None else (lead, self.decision(lead, now))

    async def verdict_for(self, lead_id: int, now: datetime) -> Verdict | None:
        """The decision for one lead with the customer's zone (a dial-time check)."""
        found = await self.lead_decision(lead_id, now)
        return None if found is None else Verdict(found[1], self.zone_of(found[0]))

    async def number_decision(
        self, phone_e164: str, campaign_id: int | None, now: datetime
    ) -> tuple[contact_store.LeadContact, Decision]:
        """The decision for a new lead with this number in this campaign (e.g. before a manual dial)."""
        await self.ready()
        async with self._db() as s:
            lead = await contact_store.number_contact(s, phone_e164, campaign_id)
        return lead, self.decision(lead, now)

    async def clear_manual_call(
        self, agent_id: int, phone_e164: str, call_id: uuid.UUID, now: datetime
    ) -> Verdict:
        """Decide on a number dialled by hand and, when it may be called, record the call at once.

        The number's facts are read under its lock and the call is recorded (an attempt without a
        lead, and the call row) before the lock goes, as the claim does: two agents dialling the
        same number cannot both pass its cap. A manual call obeys the default policy, the
        system-wide limits and every do-not-call list.
        """
        await self.ready()
        async with self._db() as s:
            await contact_store.lock_number(s, phone_e164)
            facts = await contact_store.number_contact(s, phone_e164, None, any_list=True)
            verdict = Verdict(self.decision(facts, now), self.zone_of(facts))
            if not verdict.decision.dialable:
                await s.rollback()
                return verdict
            await contact_store.record_manual_attempt(
                s, agent_id=agent_id, phone_e164=phone_e164, call_id=call_id, at=now
            )
            await call_store.start_call(
                s,
                call_id=call_id,
                started_at=now,
                direction="out",
                agent_id=agent_id,
                lead_id=None,
                phone_e164=phone_e164,
            )
        return verdict

    def zone_of(self, lead: contact_store.LeadContact) -> ZoneInfo:
        """The zone the lead's campaign policy reads the customer's clock in (cached policies)."""
        return customer_zone(self._own_policy(lead.campaign_id), lead.phone_e164)

    async def after_contact(self, lead_id: int, now: datetime) -> None:
        """A contact was recorded: the lead is due again no sooner than the policy allows."""
        await self.ready()
        async with self._db() as s:
            lead = await contact_store.lead_contact(s, lead_id)
            if lead is None or lead.status == "closed":
                return
            decision = self.decision(lead, now)
            await contact_store.reschedule(s, lead_id, decision.earliest, close=_never(decision))
            await s.commit()


def _never(decision: Decision) -> bool:
    """Whether the lead can never be called again (a misconfiguration is not the lead's fault)."""
    return decision.earliest is None and not any(r.code == "windows_never_meet" for r in decision.reasons)


def _parsed(raw: dict[str, Any] | None, fallback: ContactPolicy) -> ContactPolicy:
    if raw is None:
        return fallback
    try:
        return parse_policy(raw)
    except PolicyError as exc:  # saved policies are validated; this is a hand-edited row
        log.error("event=contact_policy_invalid problems=%s", exc)
        return fallback
