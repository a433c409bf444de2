"""Lineup's hub driving real Kamailio and sipp phones on loopback: inbound routing and click-to-call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text

from telephony.kamailio.lab import KamailioServer, free_port
from tests.seed import add_hotline, add_leads, add_user, ready_agent
from tests.services import HubServer
from tests.sip_lab import SipLab, sip_lab_fixture  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(90)


@dataclass
class PhoneSystem:
    hub: HubServer
    kamailio: KamailioServer


def _phone_system(start_hub, sip_lab: SipLab, carrier_gateway: str | None = None) -> PhoneSystem:
    """A hub on Kamailio: the hub learns Kamailio's ports first, then Kamailio the hub's URL."""
    sip_port, rpc_port = free_port("udp"), free_port("tcp")
    hub = start_hub(
        LINEUP_GATEWAY="kamailio",
        LINEUP_KAMAILIO_RPC_URL=f"http://127.0.0.1:{rpc_port}/RPC",
        LINEUP_KAMAILIO_SIP_ADDRESS=f"127.0.0.1:{sip_port}",
    )
    kamailio = sip_lab.kamailio(
        hub.base, sip_port=sip_port, rpc_port=rpc_port, carrier_gateway=carrier_gateway
    )
    return PhoneSystem(hub, kamailio)


async def _call_row(db, call_id: str) -> dict[str, object]:
    async with db() as s:
        row = (
            await s.execute(
                text(
                    "SELECT direction, agent_id, lead_id, state, duration_s, hangup_cause FROM calls"
                    " WHERE id = CAST(:c AS uuid)"
                ),
                {"c": call_id},
            )
        ).one()
    return dict(row._mapping)


async def test_an_inbound_call_pops_the_card_on_the_agent_it_rings_and_times_the_talk(start_hub, db, sip_lab):
    system = _phone_system(start_hub, sip_lab)
    ann = await add_user(db, "ann", extension="1001")
    await add_hotline(db, [ann])
    (phone,) = await add_leads(db, 1, owner_id=ann, seed=11)
    await sip_lab.agent(system.kamailio, "1001", "answer", ring_ms=200)
    ann_ws = await ready_agent(system.hub, "ann")
    await ann_ws.expect("lead.assigned")

    carrier = asyncio.create_task(
        sip_lab.carrier_call(system.kamailio, did="800", caller=phone.removeprefix("+86"), talk_ms=1500)
    )
    pop = await ann_ws.expect("call.inbound", timeout=10)
    assert pop["customer"]["owner"]["id"] == ann and pop["customer"]["name"] == "Lead 0"
    call_id = pop["call_id"]
    await ann_ws.expect("call.state", call_id=call_id, state="answered", timeout=10)
    await ann_ws.expect("agent.state", state="on_call")
    ended = await ann_ws.expect("call.state", call_id=call_id, state="ended", timeout=10)
    result = await carrier
    assert result.final_code == 200
    assert abs(ended["duration_s"] - 1.5) < 0.1, ended
    await ann_ws.expect("agent.state", state="wrap_up")
    row = await _call_row(db, call_id)
    assert (row["direction"], row["agent_id"], row["state"], row["hangup_cause"]) == (
        "in",
        ann,
        "ended",
        "normal_clearing",
    )
    await ann_ws.close()


async def test_ring_no_answer_pauses_the_agent_and_the_call_moves_on(start_hub, db, sip_lab):
    system = _phone_system(start_hub, sip_lab)
    ann = await add_user(db, "ann", extension="1001")
    bob = await add_user(db, "bob", extension="1002")
    await add_hotline(db, [ann, bob], ring_timeout_s=5, strategy="longest_idle")
    await sip_lab.agent(system.kamailio, "1001", "noanswer")
    await sip_lab.agent(system.kamailio, "1002", "answer", ring_ms=200)
    ann_ws = await ready_agent(system.hub, "ann")  # ready first: idle longest, offered first
    bob_ws = await ready_agent(system.hub, "bob")

    carrier = asyncio.create_task(
        sip_lab.carrier_call(system.kamailio, did="800", caller="13912340000", talk_ms=800)
    )
    pop = await ann_ws.expect("call.inbound", timeout=10)
    assert pop["customer"] is None
    missed = await ann_ws.expect("call.state", call_id=pop["call_id"], state="ended", timeout=10)
    assert missed["cause"] == "rona"
    assert (await ann_ws.expect("agent.state", state="paused"))["reason"] == "rona"
    assert (await bob_ws.expect("call.inbound", timeout=10))["call_id"] == pop["call_id"]
    await bob_ws.expect("call.state", call_id=pop["call_id"], state="answered", timeout=10)
    await bob_ws.expect("call.state", call_id=pop["call_id"], state="ended", timeout=10)
    assert (await carrier).final_code == 200
    assert (await _call_row(db, pop["call_id"]))["agent_id"] == bob
    await asyncio.gather(ann_ws.close(), bob_ws.close())


async def test_an_abandoned_call_frees_the_agent_and_no_agent_means_a_clear_reject(start_hub, db, sip_lab):
    system = _phone_system(start_hub, sip_lab)
    ann = await add_user(db, "ann", extension="1001")
    await add_hotline(db, [ann])
    await sip_lab.agent(system.kamailio, "1001", "noanswer")
    ann_ws = await ready_agent(system.hub, "ann")

    carrier = asyncio.create_task(
        sip_lab.carrier_call(system.kamailio, did="800", caller="13912340001", cancel_after_ms=1000)
    )
    pop = await ann_ws.expect("call.inbound", timeout=10)
    gone = await ann_ws.expect("call.state", call_id=pop["call_id"], state="ended", timeout=10)
    assert gone["cause"] == "abandoned"
    await ann_ws.expect("agent.state", state="ready")
    assert (await carrier).final_code == 487
    assert (await _call_row(db, pop["call_id"]))["hangup_cause"] == "abandoned"

    await ann_ws.reply(await ann_ws.send("state.set", state="paused", reason="lunch"))
    rejected = await sip_lab.carrier_call(system.kamailio, did="800", caller="13912340002")
    assert rejected.final_code == 480
    unserved = await sip_lab.carrier_call(system.kamailio, did="801", caller="13912340003")
    assert unserved.final_code in (404, 503), unserved  # Kamailio routes only its DIDs to the hub
    await ann_ws.close()


async def test_click_to_call_rings_the_agent_phone_which_calls_the_customer(start_hub, db, sip_lab):
    customer = sip_lab.phone("customer", "answer", ring_ms=200, talk_ms=1000)
    system = _phone_system(start_hub, sip_lab, carrier_gateway=f"sip:127.0.0.1:{customer.port}")
    ann = await add_user(db, "ann", extension="1001")
    await add_leads(db, 1, owner_id=ann, seed=12)
    await sip_lab.agent(system.kamailio, "1001", "refer", ring_ms=100)
    ann_ws = await ready_agent(system.hub, "ann")
    lead = (await ann_ws.expect("lead.assigned"))["lead"]
    dialled = await ann_ws.reply(await ann_ws.send("call.dial", lead_id=lead["id"]))
    assert dialled["type"] == "ack", dialled
    call_id = dialled["call_id"]
    await ann_ws.expect("call.state", call_id=call_id, state="answered", timeout=15)
    ended = await ann_ws.expect("call.state", call_id=call_id, state="ended", timeout=15)
    assert abs(ended["duration_s"] - 1.0) < 0.2, ended
    row = await _call_row(db, call_id)
    assert (row["direction"], row["lead_id"], row["state"]) == ("out", lead["id"], "ended")
    await ann_ws.close()


async def test_the_gateway_endpoints_refuse_bad_bodies_and_other_roles_see_a_clear_dial_error(
    start_hub, db, sip_lab
):
    system = _phone_system(start_hub, sip_lab)
    elsewhere = start_hub(LINEUP_GATEWAY="kamailio", LINEUP_GATEWAY_ADDRESSES="10.1.2.3")
    async with httpx.AsyncClient(base_url=elsewhere.base) as client:
        refused = await client.post("/gateway/kamailio/route", json={"call_id": "x", "from_user": "1"})
        assert refused.status_code == 403 and "gateway address" in refused.json()["error"]
    async with httpx.AsyncClient(base_url=system.hub.base) as client:
        bad = await client.post("/gateway/kamailio/route", content=b"{not json")
        assert bad.status_code == 400 and "JSON" in bad.json()["error"]
        missing = await client.post("/gateway/kamailio/event", json={"event": "answered"})
        assert missing.status_code == 400 and "call_id" in missing.json()["error"]
        unknown = await client.post(
            "/gateway/kamailio/event", json={"event": "ended", "call_id": "nobody@here", "duration_s": 3}
        )
        assert unknown.status_code == 200, "events for unknown calls are taken and ignored"
    ann = await add_user(db, "ann", extension="1009")  # no phone registered under 1009
    await add_leads(db, 1, owner_id=ann, seed=13)
    ann_ws = await ready_agent(system.hub, "ann")
    lead = (await ann_ws.expect("lead.assigned"))["lead"]
    system.kamailio.stop()  # the phone system is down: the agent hears it at once, nothing stays dialing
    failed = await ann_ws.reply(await ann_ws.send("call.dial", lead_id=lead["id"]))
    assert failed["code"] == "gateway_error" and "phone system" in failed["message"]
    ended = await ann_ws.expect("call.state", state="ended")
    assert ended["cause"] == "gateway_error"
    await ann_ws.close()
