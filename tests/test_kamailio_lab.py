"""Real Kamailio and sipp on loopback, without Lineup's hub.

The hub URL points at a closed port (Kamailio's queries are refused at once), except in the
routing-contract test, which answers Kamailio with a few-line stand-in router.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from telephony.gateway import GatewayError
from telephony.kamailio.lab import KamailioServer, free_port
from telephony.kamailio.phones import carrier_burst
from telephony.kamailio.protocol import (
    KamailioEvent,
    RouteQuery,
    encode_netstring,
    parse_event,
    parse_route_query,
    reject_answer,
    route_answer,
)
from telephony.kamailio.rpc import EvapiClient, KamailioRpc
from tests.sip_lab import SipLab, closed_hub_url, sip_lab_fixture  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(60)


async def poll(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Wait until ``condition()`` holds, checking every 20 ms, failing after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class EventLog:
    """Collects evapi events in the background."""

    def __init__(self, client: EvapiClient) -> None:
        self.client = client
        self.events: list[KamailioEvent] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.client:
            self.events.append(event)

    async def close(self) -> None:
        await self.client.close()
        await asyncio.wait_for(self.task, 5)


async def test_agents_register_and_rpc_lists_them(sip_lab: SipLab) -> None:
    kam = sip_lab.kamailio(closed_hub_url())
    assert kam.started_in_s is not None and kam.started_in_s < 5
    first = await sip_lab.agent(kam, "1001")
    second = await sip_lab.agent(kam, "1002", "busy")

    async with KamailioRpc(kam.rpc_url) as rpc:
        aors = {aor.aor: aor for aor in await rpc.registered()}
        assert {"1001", "1002"} <= aors.keys()
        assert [c.address for c in aors["1001"].contacts] == [first.contact]
        assert [c.address for c in aors["1002"].contacts] == [second.contact]

        await second.unregister(kam)
        assert "1002" not in {aor.aor for aor in await rpc.registered()}


async def test_call_to_did_without_hub_gets_503(sip_lab: SipLab) -> None:
    kam = sip_lab.kamailio(closed_hub_url())
    await sip_lab.agent(kam, "1001")

    result = await sip_lab.carrier_call(kam, did="800", caller="+15550001", timeout_s=10)

    # A refused routing query is answered at once: 503, no agent rung, the scenario ran to its end.
    assert result.final_code == 503, (result, kam.log_tail())
    assert result.returncode == 0
    assert result.elapsed_s < 3
    async with KamailioRpc(kam.rpc_url) as rpc:
        dialogs = await rpc.dialogs()
    assert isinstance(dialogs, list)
    assert result.call_id not in {d.call_id for d in dialogs}  # failed calls are not live


async def test_a_burst_from_one_carrier_records_when_each_invite_left(sip_lab: SipLab) -> None:
    kam = sip_lab.kamailio(closed_hub_url())
    before = time.time()

    burst = await carrier_burst(kam, sip_lab.work_dir, calls=6, rate_per_s=20, at_once=3, timeout_s=20)

    # Six INVITEs, each with its own Call-ID and send time, paced at 20 a second; every call is
    # refused (no hub), which the carrier scenario counts as run to its end.
    assert len(burst.invites) == 6, burst
    sent = sorted(burst.invites.values())
    assert before <= sent[0] and sent[-1] <= time.time()
    assert sent[-1] - sent[0] >= 0.2, "the rate is honoured"
    assert (burst.successful_calls, burst.returncode) == (6, 0), burst


async def test_rpc_against_closed_port_raises_gateway_error_quickly() -> None:
    async with KamailioRpc(f"http://127.0.0.1:{free_port('tcp')}/RPC") as rpc:
        for call in (rpc.dialogs, rpc.registered):
            started = time.monotonic()
            with pytest.raises(GatewayError, match="cannot connect"):
                await call()
            assert time.monotonic() - started < 1.0
        with pytest.raises(GatewayError, match="cannot connect"):
            await rpc.bridge("sip:2001@127.0.0.1:5070", "sip:+1555@127.0.0.1:5070", "sip:127.0.0.1:5070")


async def test_rpc_error_object_raises_gateway_error(sip_lab: SipLab) -> None:
    kam = sip_lab.kamailio(closed_hub_url())
    async with KamailioRpc(kam.rpc_url) as rpc:
        with pytest.raises(GatewayError, match="Method Not Found"):
            await rpc.call("no.such.method")
        with pytest.raises(GatewayError, match="Invalid parameters"):
            await rpc.call("dlg.bridge_dlg", "sip:2001@127.0.0.1")
        with pytest.raises(GatewayError, match="SIP URI"):
            await rpc.bridge("2001", "sip:+1555@127.0.0.1", kam.sip_uri)
        assert await rpc.dialogs() == []  # the client still works after errors


async def test_click_to_call_bridge_reaches_the_customer(sip_lab: SipLab) -> None:
    customer = sip_lab.phone("customer", "answer", ring_ms=100)  # behind the carrier trunk
    kam = sip_lab.kamailio(closed_hub_url(), carrier_gateway=f"sip:{customer.host}:{customer.port}")
    evapi = EventLog(EvapiClient(kam.host, kam.evapi_port))
    await evapi.client.wait_connected()
    agent = await sip_lab.agent(kam, "2001", "refer", ring_ms=100, talk_ms=400)

    async with KamailioRpc(kam.rpc_url) as rpc:
        await rpc.bridge(kam.agent_uri("2001"), kam.agent_uri("+15550003333"), kam.sip_uri)

        def customer_leg_ended() -> bool:
            return any(e.event == "ended" and e.caller == "2001" for e in evapi.events)

        await poll(customer_leg_ended, 10, "the customer leg to end")
        assert await rpc.dialogs() == []
    await evapi.close()

    # Kamailio rang the agent (leg 1: caller "c2c"), the agent REFERred to the customer (leg 2),
    # the agent hung up after talking 400 ms.
    assert any(line.startswith("INVITE sip:+15550003333@") for line in customer.received())
    assert any(line.startswith("REFER ") for line in agent.received())
    by_leg = {(e.event, e.is_bridge_leg): e for e in evapi.events if e.call_id}
    assert {("answered", True), ("ended", True), ("answered", False), ("ended", False)} <= by_leg.keys()
    assert by_leg["answered", True].agent_extension == "2001"
    customer_leg = by_leg["ended", False]
    assert customer_leg.agent_extension == "2001" and customer_leg.ended_side == "caller"
    assert customer_leg.talk_s is not None and 0.3 < customer_leg.talk_s < 2.0
    register = [e for e in evapi.events if e.event == "register"]
    assert [e.aor for e in register] == [f"sip:2001@{kam.address}"]
    seqs = [e.seq for e in evapi.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_evapi_client_survives_garbage_and_reconnects() -> None:
    """EvapiClient against a scripted TCP peer: a bad event is skipped, lost framing reconnects."""
    answered = b'{"event":"answered","call_id":"c1","agent_id":"1001","seq":1}'
    ended = b'{"event":"ended","call_id":"c1","agent_id":"1001","duration_s":"3","seq":2}'
    scripts = [
        encode_netstring(answered) + encode_netstring(b'{"event":"exploded"}') + b"12x:garbage",
        encode_netstring(ended),
    ]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(scripts.pop(0) if scripts else b"")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = EvapiClient("127.0.0.1", port, backoff_initial=0.01, backoff_max=0.05)
    received: list[KamailioEvent] = []
    async with server:

        async def collect() -> None:
            async for event in client:
                received.append(event)
                if len(received) == 2:
                    await client.close()

        await asyncio.wait_for(collect(), 10)
    assert [(e.event, e.call_id, e.seq) for e in received] == [("answered", "c1", 1), ("ended", "c1", 2)]
    assert received[1].duration_s == 3.0
    assert client.connects == 2


class StubRouter:
    """A stand-in for the hub's two Kamailio endpoints (not Lineup's hub): hunts through ``order``."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.kamailio: KamailioServer | None = None
        self.queries: list[RouteQuery] = []
        self.events: list[KamailioEvent] = []
        self.app = Starlette(
            routes=[
                Route("/gateway/kamailio/route", self.route, methods=["POST"]),
                Route("/gateway/kamailio/event", self.event, methods=["POST"]),
            ]
        )

    async def route(self, request: Request) -> JSONResponse:
        query = parse_route_query(await request.body())
        self.queries.append(query)
        if query.attempt > len(self.order) or self.kamailio is None:
            return JSONResponse(reject_answer(480, "No Agent Available"))
        agent = self.order[query.attempt - 1]
        return JSONResponse(route_answer(agent, self.kamailio.agent_uri(agent), ring_timeout=5))

    async def event(self, request: Request) -> JSONResponse:
        self.events.append(parse_event(await request.body()))
        return JSONResponse({"ok": True})

    def for_call(self, call_id: str | None) -> list[tuple[str, str | None, int | None]]:
        return [(e.event, e.agent_extension, e.code) for e in self.events if e.call_id == call_id]


@pytest.fixture
async def stub_router() -> AsyncIterator[tuple[StubRouter, str]]:
    router = StubRouter()
    port = free_port("tcp")
    server = uvicorn.Server(
        uvicorn.Config(router.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await poll(lambda: server.started or task.done(), 10, "the stub router to listen")
    assert not task.done(), "stub router did not start"
    try:
        yield router, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_routing_contract_with_stub_router(
    sip_lab: SipLab, stub_router: tuple[StubRouter, str]
) -> None:
    router, url = stub_router
    kam = sip_lab.kamailio(url, dids=("800", "+15557770000"))
    router.kamailio = kam
    await sip_lab.agent(kam, "1001", ring_ms=100, talk_ms=500)
    await sip_lab.agent(kam, "1002", "busy")
    await sip_lab.agent(kam, "1003", "noanswer")

    # Busy agent first: Kamailio reports it and asks again; the next agent answers and hangs up.
    router.order = ["1002", "1001"]
    answered = await sip_lab.carrier_call(kam, did="+15557770000", caller="+15550001", talk_ms=3000)
    assert answered.final_code == 200 and answered.agent_hung_up, kam.log_tail()
    queries = [(q.attempt, q.did, q.caller, q.failed_agent, q.failed_code) for q in router.queries]
    assert queries == [
        (1, "+15557770000", "+15550001", None, None),
        (2, "+15557770000", "+15550001", "1002", 486),
    ]
    assert router.for_call(answered.call_id) == [
        ("agent_failed", "1002", 486),
        ("ringing", "1001", 180),
        ("answered", "1001", None),
        ("ended", "1001", None),
    ]
    ended = router.events[-1]
    assert ended.ended_side == "callee" and ended.talk_s is not None and 0.4 < ended.talk_s < 1.5

    # The customer hangs up while the agent's phone rings.
    router.order = ["1003"]
    abandoned = await sip_lab.carrier_call(kam, cancel_after_ms=200)
    assert abandoned.final_code == 487
    assert [e for e, _, _ in router.for_call(abandoned.call_id)] == ["ringing", "abandoned", "failed"]

    # No agent: the router's reject code and reason reach the carrier.
    router.order = []
    rejected = await sip_lab.carrier_call(kam)
    assert rejected.final_code == 480

    # Not a DID: Kamailio routes it to the carrier trunk, of which there is none here.
    other = await sip_lab.carrier_call(kam, did="801")
    assert other.final_code == 503
