"""Scheduled retention purge: leads older than ``retention_days`` go, with their contact history."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from storage import audit
from storage.recycle import CHUNK, PurgeCounts, purge_leads_created_before

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("lineup.retention")


async def purge_expired(hub: Hub) -> int:
    """Permanently delete leads created more than ``settings.retention_days`` ago; returns how many.

    Does nothing when retention is off (0 days). Works in chunks of ``CHUNK`` leads per transaction;
    leads an agent holds wait for the next run. Audited as ``retention_purge`` (no actor) whenever
    something was deleted, including what a failed run deleted before failing.
    """
    days = hub.settings.retention_days
    if days <= 0:
        return 0
    cutoff = datetime.now(UTC) - timedelta(days=days)
    counts = PurgeCounts()
    complete = False
    try:
        async with hub.db() as s:
            await purge_leads_created_before(s, cutoff, CHUNK, counts)
        complete = True
    finally:
        if counts.leads or counts.import_rejects or not complete:
            async with hub.db() as s:
                await audit.record(
                    s,
                    actor_id=None,
                    action="retention_purge",
                    target="leads",
                    detail={
                        "retention_days": days,
                        "cutoff": cutoff.isoformat(),
                        **counts.as_dict(),
                        "complete": complete,
                    },
                )
                await s.commit()
    log.info(
        "event=retention_purge days=%s %s", days, " ".join(f"{k}={v}" for k, v in counts.as_dict().items())
    )
    return counts.leads
