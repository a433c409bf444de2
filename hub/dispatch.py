"""Dispatch: the next lead for an agent, in dispatch order and cleared by the contact policy.

The order itself lives in the database function the claim calls (storage.dispatch, migration
0006): the agent's due callbacks, callbacks for anyone, fresh leads shuffled, retries by due
time, lists mixed by weight. Here each claimed lead meets the contact policy; a refused one goes
back and the next is tried, a few times, before the agent is told why nothing can be called.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg

from hub.contact_gate import ContactGate, Verdict
from storage import dispatch as dispatch_store
from storage.db import sync_url
from storage.dispatch import ClaimedLead, Refusal
from storage.leads import HeldLead

# Leads the contact policy may hold back in one offer before the agent is told why (each one goes
# back, due when the policy allows, so the next claim starts past them).
CLAIM_TRIES = 5


@dataclass(frozen=True, slots=True)
class Offer:
    """The lead for the agent (None: nothing may be called now) and the last refusal's verdict."""

    lead: HeldLead | None
    fresh: bool = False
    refused: Verdict | None = None


async def _keep_session(connection: asyncpg.Connection) -> None:
    """No reset between claims (asyncpg's costs a round trip): a claim leaves no session state."""


class Dispatcher:
    """Claims leads for this process's agents (one per hub process)."""

    def __init__(self, database_url: str, contact: ContactGate, lease_s: float, pool_size: int) -> None:
        self._database_url = database_url
        self._contact = contact
        self._lease_s = lease_s
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        """Open the claim's own connections; all of them at once, so none is opened under load."""
        self._pool = await asyncpg.create_pool(
            sync_url(self._database_url),
            min_size=self._pool_size,
            max_size=self._pool_size,
            reset=_keep_session,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        """The always-open connections of the hot paths: the claim, and inbound routing."""
        if self._pool is None:
            raise RuntimeError("the dispatcher is not started")
        return self._pool

    async def next_lead(
        self, agent_id: int, *, general_pool: bool, new_lead_cap: int | None, day: date
    ) -> Offer:
        """Claim the agent's next lead the policy allows (or the one it already holds).

        ``general_pool``: the agent may take shared leads of no campaign; ``new_lead_cap``: fresh
        leads the agent may be given on ``day``, the company's calendar day (None: no cap).
        """
        if self._pool is None:
            raise RuntimeError("Dispatcher.start() was not awaited")
        pool = self._pool
        await self._contact.ready()
        verdicts: list[Verdict] = []

        def judge(claimed: ClaimedLead) -> Refusal | None:
            refusal, verdict = self._contact.judge(claimed)
            verdicts.append(verdict)
            return refusal

        for _ in range(CLAIM_TRIES):
            claim = await dispatch_store.claim_next_lead(
                pool,
                agent_id,
                self._lease_s,
                general_pool=general_pool,
                new_lead_cap=new_lead_cap,
                day=day,
                judge=judge,
            )
            if claim.claimed is None:
                break
            if claim.refusal is None:
                return Offer(claim.claimed.lead, fresh=claim.claimed.fresh)
        return Offer(None, refused=verdicts[-1] if verdicts else None)
