"""Demo mode: one user per role and a few hundred leads, loaded on first start only."""

from __future__ import annotations

import logging
import random

from sqlalchemy.ext.asyncio import AsyncSession

from hub.agents import DEFAULT_SALES_CAMPAIGN
from hub.passwords import hash_password
from hub.policy import DEMO_POLICY_JSON
from storage import campaigns as campaign_store
from storage import contact as contact_store
from storage import inbound as inbound_store
from storage import users as user_store
from storage.lead_intake import NewLead, insert_leads
from storage.models import Role

log = logging.getLogger("lineup.demo")

DEMO_PASSWORD = "demo"
DEMO_AGENTS = [f"agent{i}" for i in range(1, 6)]
DEMO_DID = "800"  # the number customers call; the sales agents answer it
LEADS_PER_AGENT = 20
DEMO_LEADS = 300
TMK_LEADS = 40  # of the demo leads, registrations for the TMK agent

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "华",
    "慧",
]
_PROPERTIES = ["万科城", "碧桂园", "保利花园", "绿地中心", "华润置地", "龙湖天街"]
_AREAS = ["朝阳区", "海淀区", "浦东新区", "天河区", "南山区", "武侯区"]
_GRADES = ["三年级", "四年级", "五年级", "六年级", "初一", "初二"]
_SUBJECTS = ["数学", "英语", "语文", "物理"]
_MOBILE_PREFIXES = ["138", "139", "136", "158", "186", "150", "177", "188"]


def demo_users() -> list[tuple[str, str, Role, str | None]]:
    """(username, display name, role, SIP extension) of every demo user."""
    users: list[tuple[str, str, Role, str | None]] = [
        ("admin", "Admin", Role.ADMIN, None),
        ("supervisor1", "Supervisor One", Role.SUPERVISOR, None),
    ]
    users += [(name, f"Agent {i}", Role.SALES, str(1000 + i)) for i, name in enumerate(DEMO_AGENTS, 1)]
    users += [("tmk1", "TMK One", Role.TMK, "1101"), ("qa1", "QA One", Role.QA, None)]
    return users


def demo_leads(owner_ids: list[int], rng: random.Random) -> list[NewLead]:
    """Realistic-looking leads with valid CN mobile numbers; some owned, the rest in the pool."""
    phones: set[str] = set()
    while len(phones) < DEMO_LEADS:
        phones.add(f"+86{rng.choice(_MOBILE_PREFIXES)}{rng.randrange(10**8):08d}")
    owners = [owner for owner in owner_ids for _ in range(LEADS_PER_AGENT)]
    leads = []
    for i, phone in enumerate(sorted(phones)):
        leads.append(
            NewLead(
                name=rng.choice(_SURNAMES) + rng.choice(_GIVEN),
                phone_e164=phone,
                area=rng.choice(_AREAS),
                attributes={"楼盘": rng.choice(_PROPERTIES), "grade": rng.choice(_GRADES)},
                owner_id=owners[i] if i < len(owners) else None,
            )
        )
    rng.shuffle(leads)
    return leads


async def load_demo(session: AsyncSession) -> bool:
    """Create the demo users and leads unless they exist; True when it loaded them.

    Demo campaigns call at any hour with short pauses (a demo database made before the contact
    policy existed gets that policy too); real campaigns get ``DEFAULT_POLICY_JSON``.
    """
    default_policy = contact_store.DEFAULT_POLICY
    if await contact_store.setting(session, default_policy) is None:
        await contact_store.put_setting(session, default_policy, DEMO_POLICY_JSON, actor_id=None)
        await session.commit()
    if await user_store.by_username(session, "admin") is not None:
        return False
    team = await user_store.team_named(session, "Demo team")
    password_hash = hash_password(DEMO_PASSWORD)
    agent_ids, tmk_ids = [], []
    for username, display, role, extension in demo_users():
        user = await user_store.add_user(
            session,
            username=username,
            display_name=display,
            password_hash=password_hash,
            role=role.value,
            team_id=team.id if role in (Role.SALES, Role.TMK, Role.SUPERVISOR) else None,
            sip_extension=extension,
        )
        if username in DEMO_AGENTS:
            agent_ids.append(user.id)
        elif role is Role.TMK:
            tmk_ids.append(user.id)
    rng = random.Random(2026)
    leads = demo_leads(agent_ids, rng)
    await insert_leads(session, leads[TMK_LEADS:], batch_id=None)
    # The TMK agent works fresh registrations; booked trials go to the sales agents' campaign.
    sales = await campaign_store.campaign_named(session, DEFAULT_SALES_CAMPAIGN, "sales")
    registrations = await campaign_store.campaign_named(session, "Registrations", "tmk")
    registrations.settings = {"handoff_campaign_id": sales.id, "description": "Free problem-solving sign-ups"}
    await session.commit()
    await campaign_store.set_members(session, sales.id, agent_ids, [], actor_id=None)
    await campaign_store.set_members(session, registrations.id, tmk_ids, [], actor_id=None)
    await session.commit()
    registration_leads = [
        NewLead(
            name=lead.name,
            phone_e164=lead.phone_e164,
            area=lead.area,
            attributes={"grade": lead.attributes["grade"], "subject": rng.choice(_SUBJECTS)},
        )
        for lead in leads[:TMK_LEADS]
    ]
    await insert_leads(session, registration_leads, batch_id=None, campaign_id=registrations.id)
    # Customers calling the hotline reach the sales agents (phones 1001 … 1005).
    await inbound_store.save_inbound_number(
        session,
        did=DEMO_DID,
        name="Course hotline",
        strategy="sticky",
        ring_timeout_s=15,
        agent_ids=agent_ids,
        actor_id=None,
    )
    await session.commit()
    log.info("event=demo_loaded users=%d leads=%d", len(demo_users()), DEMO_LEADS)
    return True
