"""The composition root's live services for one hub process, started and stopped as one."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub import retention
from hub.agents import AgentDesk
from hub.bus import Bus
from hub.calls import STUCK_AFTER_S, CallDesk
from hub.contact_gate import ContactGate
from hub.dispatch import Dispatcher
from hub.gateway_intake import allowed_addresses
from hub.identity import TokenSigner
from hub.inbound import InboundDesk
from hub.lead_import import sweep_abandoned_uploads
from hub.presence import PresenceStore
from hub.quota_desk import QuotaDesk
from hub.settings import Settings
from hub.supervisor_desk import SupervisorDesk
from storage import leads as lead_store
from storage.db import create_engine, session_factory
from telephony import Gateway
from telephony.kamailio.gateway import KamailioGateway
from telephony.simulator import SimulatorGateway, SimulatorProfile

if TYPE_CHECKING:
    from hub.registrations import RegistrationIntake

log = logging.getLogger("lineup.hub")


def build_gateway(settings: Settings) -> Gateway:
    if settings.gateway == "simulator":
        return SimulatorGateway(
            SimulatorProfile(
                answer_rate=settings.sim_answer_rate,
                ring_s=settings.sim_ring_s,
                talk_s=settings.sim_talk_s,
                no_answer_after_s=settings.sim_no_answer_after_s,
                agent_answer_s=settings.sim_agent_answer_s,
                abandon_rate=settings.sim_abandon_rate,
                inbound_every_s=settings.sim_inbound_every_s,
                inbound_did=settings.sim_inbound_did,
            )
        )
    return KamailioGateway(settings.kamailio_rpc_url, settings.kamailio_sip_address)


class Hub:
    """Engine, Redis, bus, gateway and the desks that use them."""

    def __init__(self, settings: Settings) -> None:
        if not settings.database_url or not settings.redis_url:
            raise ValueError("LINEUP_DATABASE_URL and LINEUP_REDIS_URL must be set (lineup serve sets them)")
        self.settings = settings
        self.process_id = settings.process_id or f"hub-{secrets.token_hex(4)}"
        self.engine: AsyncEngine = create_engine(settings.database_url)
        self.db: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        # A blocking pool waits for a free connection instead of failing when many agents act at once.
        self.redis: Redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=200, timeout=10
            )
        )
        self.presence = PresenceStore(self.redis, settings.redis_prefix, settings.presence_ttl_s)
        self.bus = Bus(self.redis, settings.redis_prefix)
        self.gateway: Gateway = build_gateway(settings)
        self.gateway_addresses = allowed_addresses(settings.gateway_addresses)
        self.tokens = TokenSigner(settings.secret_key, settings.token_ttl_s)
        self.contact = ContactGate(self.db)
        self.dispatch = Dispatcher(
            settings.database_url, self.contact, settings.lead_lease_s, settings.dispatch_pool_size
        )
        self.quota_desk = QuotaDesk(self.db, self.redis, settings.redis_prefix)
        self.agents = AgentDesk(self)
        self.supervisors = SupervisorDesk(self.redis, self.bus, self.quota_desk, settings.redis_prefix)
        self.calls = CallDesk(self)
        self.inbound = InboundDesk(self)
        self.gateway.attach_router(self.inbound.route)
        if isinstance(self.gateway, SimulatorGateway):
            self.gateway.attach_callers(self.inbound.sample_caller)
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.registrations: RegistrationIntake | None = None

    async def start(self) -> None:
        await self.redis.ping()
        await self.dispatch.start()
        await self.gateway.start()
        await self.bus.start(self._on_agent_message, self._on_broadcast, self.supervisors.deliver)
        self.calls.start()
        await self.calls.reconcile()
        s = self.settings
        self._every(s.heartbeat_s, self._heartbeat, "heartbeat")
        self._every(min(15.0, s.lead_lease_s / 4), self._release_expired_leases, "lease-sweeper")
        self._every(s.idle_rescan_s, self.agents.offer_to_idle_agents, "idle-rescan")
        self._every(STUCK_AFTER_S / 2, self.calls.reconcile, "calls-reconcile")
        self._every(s.callback_poll_s, self.agents.push_due_callbacks, "callbacks-due")
        self._every(
            min(30.0, s.callback_grace_s / 2), self.agents.pass_stale_callbacks, "callbacks-to-anyone"
        )
        self._every(600, lambda: sweep_abandoned_uploads(self), "upload-sweeper")
        if s.retention_days > 0:
            self._every(3600, self._purge_expired, "retention")
        if s.kafka_bootstrap:
            from hub.registrations import RegistrationIntake

            self.registrations = RegistrationIntake(self)
            await self.registrations.start()
        # What exists now lives as long as the process: keep it out of the collector's way, so a
        # full collection does not pause every socket and the gateway's routing answers.
        gc.freeze()
        log.info("event=hub_started process=%s gateway=%s", self.process_id, s.gateway)

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self.registrations is not None:
            await self.registrations.close()
        await self.calls.close()
        await self.gateway.close()
        await self.bus.close()
        await self.redis.aclose()
        await self.dispatch.close()
        await self.engine.dispose()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def leads_available(self) -> None:
        """Tell every hub process that new leads exist, so idle ready agents get one now."""
        await self.bus.broadcast({"op": "leads_available"})

    async def control_agent(self, agent_id: int, control: dict[str, Any]) -> bool:
        """Send a control message to the agent's process; True if some process holds the agent."""
        return await self.bus.publish_to_agent(agent_id, {"control": control}) > 0

    def _every(self, period: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(period)
                try:
                    await job()
                except Exception:
                    log.exception("event=periodic_job_failed job=%s", name)

        self._loops.append(asyncio.create_task(loop(), name=name))

    async def _purge_expired(self) -> None:
        await retention.purge_expired(self)

    async def _heartbeat(self) -> None:
        agent_ids = self.agents.connected_agent_ids()
        await self.presence.heartbeat(agent_ids)
        async with self.db() as s:
            await lead_store.refresh_leases(s, agent_ids, self.settings.lead_lease_s)

    async def _release_expired_leases(self) -> None:
        async with self.db() as s:
            released = await lead_store.release_expired_leases(s)
        for lead_id, agent_id in released:
            log.info("event=lease_expired lead=%s agent=%s", lead_id, agent_id)
            await self.agents.lead_released(agent_id, lead_id)
        if released:
            await self.leads_available()

    async def _on_agent_message(self, agent_id: int, message: dict[str, Any]) -> None:
        if "event" in message:
            self.agents.deliver(agent_id, message["event"])
        elif "control" in message:
            await self.agents.on_control(agent_id, message["control"])

    async def _on_broadcast(self, message: dict[str, Any]) -> None:
        if message.get("op") == "leads_available":
            # Not awaited: the bus listener must stay free while agents are served.
            self.spawn(self.agents.offer_to_idle_agents())
