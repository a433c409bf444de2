"""The registration stream: parsing (pure), storing (real Postgres), and the consumer in a running hub
against a real Kafka-protocol broker (Tansu, or LINEUP_KAFKA_BOOTSTRAP)."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from hub.registrations import Registration, Rejection, RejectReason, parse_registration
from storage.campaigns import CampaignError
from storage.lead_intake import NewLead, insert_leads
from storage.registrations import campaign_named, insert_registrations
from tests import kafka_broker
from tests.agent_client import AgentClient
from tests.kafka_broker import start_tansu
from tests.seed import add_user, cn_mobiles, token
from tests.services import free_port

kafka_bootstrap = kafka_broker.kafka_bootstrap  # the fixture, for this module's tests

# --- parse_registration: pure ------------------------------------------------------------------


def _value(**fields: Any) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def test_a_full_registration_becomes_a_lead_with_its_attributes():
    parsed = parse_registration(
        _value(
            event_id="evt-1",
            name=" 李雷 ",
            phone="138 1234 5678",
            grade="初二",
            subject="数学",
            source="wechat-ad",
            registered_at="2025-03-01T09:30:00+08:00",
        ),
        "CN",
    )
    assert parsed == Registration(
        event_id="evt-1",
        name="李雷",
        phone_e164="+8613812345678",
        attributes={
            "grade": "初二",
            "subject": "数学",
            "source": "wechat-ad",
            "registered_at": "2025-03-01T09:30:00+08:00",
        },
    )


def test_only_event_id_and_phone_are_required_and_numbers_are_accepted_for_ids():
    parsed = parse_registration(_value(event_id=42, phone=13812345678, grade=8), "CN")
    assert parsed == Registration(
        event_id="42", name="", phone_e164="+8613812345678", attributes={"grade": 8}
    )


def test_registered_at_with_z_is_normalised():
    parsed = parse_registration(
        _value(event_id="e", phone="+8613812345678", registered_at="2025-03-01T01:30:00Z"), "CN"
    )
    assert isinstance(parsed, Registration)
    assert parsed.attributes["registered_at"] == "2025-03-01T01:30:00+00:00"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", RejectReason.NOT_JSON),
        (b"\xff\xfe", RejectReason.NOT_JSON),
        (b"", RejectReason.NOT_JSON),
        (b"[" * 100_000, RejectReason.NOT_JSON),
        (b"[1, 2, 3]", RejectReason.NOT_OBJECT),
        (b'"a string"', RejectReason.NOT_OBJECT),
        (b"null", RejectReason.NOT_OBJECT),
        (_value(phone="13812345678"), RejectReason.MISSING_EVENT_ID),
        (_value(event_id="", phone="13812345678"), RejectReason.MISSING_EVENT_ID),
        (_value(event_id="   ", phone="13812345678"), RejectReason.INVALID_EVENT_ID),
        (_value(event_id={"a": 1}, phone="13812345678"), RejectReason.INVALID_EVENT_ID),
        (_value(event_id=True, phone="13812345678"), RejectReason.INVALID_EVENT_ID),
        (_value(event_id="x" * 101, phone="13812345678"), RejectReason.INVALID_EVENT_ID),
        (_value(event_id="e"), RejectReason.MISSING_PHONE),
        (_value(event_id="e", phone=None), RejectReason.MISSING_PHONE),
        (_value(event_id="e", phone="12345"), RejectReason.INVALID_PHONE),
        (_value(event_id="e", phone="tel 13812345678"), RejectReason.INVALID_PHONE),
        (_value(event_id="e", phone=["13812345678"]), RejectReason.INVALID_PHONE),
        (_value(event_id="e", phone="13812345678", name=["x"]), RejectReason.INVALID_FIELD),
        (_value(event_id="e", phone="13812345678", grade={"x": 1}), RejectReason.INVALID_FIELD),
        (_value(event_id="e", phone="13812345678", subject=False), RejectReason.INVALID_FIELD),
        (b'{"event_id": "e", "phone": "13812345678", "grade": NaN}', RejectReason.INVALID_FIELD),
        (
            _value(event_id="e", phone="13812345678", registered_at="yesterday"),
            RejectReason.INVALID_REGISTERED_AT,
        ),
        (
            _value(event_id="e", phone="13812345678", registered_at=1700000000),
            RejectReason.INVALID_REGISTERED_AT,
        ),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(value: bytes, reason: RejectReason):
    parsed = parse_registration(value, "CN")
    assert isinstance(parsed, Rejection)
    assert parsed.reason is reason
    assert parsed.detail


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_fields = st.sampled_from(["event_id", "phone", "name", "grade", "subject", "source", "registered_at"])


@given(st.binary(max_size=300))
def test_any_bytes_give_a_registration_or_a_rejection(value: bytes):
    assert isinstance(parse_registration(value, "CN"), Registration | Rejection)


@given(st.dictionaries(_fields | st.text(max_size=5), _json, max_size=8), st.sampled_from(["CN", "US", "GB"]))
def test_any_json_object_gives_a_storable_registration_or_a_rejection(data: dict[str, Any], region: str):
    parsed = parse_registration(json.dumps(data).encode(), region)
    if isinstance(parsed, Rejection):
        return
    # What the database would refuse (NUL, lone surrogates, over-long keys) never gets this far:
    # such a message would fail its batch forever instead of going to the dead-letter topic.
    assert 0 < len(parsed.event_id) <= 100 and len(parsed.name) <= 200
    assert parsed.phone_e164.startswith("+") and parsed.phone_e164[1:].isdigit()
    stored_text = json.dumps([parsed.event_id, parsed.name, parsed.attributes], ensure_ascii=False)
    assert "\\u0000" not in stored_text
    stored_text.encode("utf-8")
    assert set(parsed.attributes) <= {"grade", "subject", "source", "registered_at"}


@given(
    st.sampled_from(cn_mobiles(50, seed=7)),
    st.sampled_from(["{cc}{n}", "{n}", "00{c}{n}", "{a} {b} {d}", "{a}-{b}-{d}", "+{c} {a} {b} {d}"]),
    st.text(min_size=1, max_size=30).filter(lambda s: s.strip("\x00").strip()),
)
def test_a_valid_phone_in_any_common_form_gives_the_same_lead_phone(e164: str, form: str, event_id: str):
    national = e164[3:]
    raw = form.format(cc=e164[:3], c="86", n=national, a=national[:3], b=national[3:7], d=national[7:])
    parsed = parse_registration(_value(event_id=event_id, phone=raw), "CN")
    if isinstance(parsed, Rejection):  # only an event id that is not storable text may be refused
        assert parsed.reason is RejectReason.INVALID_EVENT_ID
        return
    assert parsed.phone_e164 == e164


# --- storage: real Postgres --------------------------------------------------------------------


def _registration(i: int, phone: str, **attributes: Any) -> Registration:
    return Registration(event_id=f"evt-{i}", name=f"Student {i}", phone_e164=phone, attributes=attributes)


async def _count(db, sql: str, **params: Any) -> int:
    async with db() as s:
        return (await s.execute(text(sql), params)).scalar_one()


async def test_campaign_is_created_once_and_must_be_tmk(db):
    async with db() as s:
        first = await campaign_named(s, "Registrations", "tmk")
    async with db() as s:
        again = await campaign_named(s, "Registrations", "tmk")
    assert first == again
    assert (
        await _count(db, "SELECT count(*) FROM campaigns WHERE name = 'Registrations' AND kind = 'tmk'") == 1
    )
    async with db() as s:
        with pytest.raises(CampaignError) as refused:
            await campaign_named(s, "Registrations", "sales")
    assert refused.value.problems[0].code == "kind_mismatch"


async def test_the_same_event_twice_makes_one_lead(db):
    phones = cn_mobiles(3, seed=3)
    async with db() as s:
        await insert_leads(s, [NewLead(name="Imported", phone_e164=phones[0])], batch_id=None)
        campaign_id = await campaign_named(s, "Registrations", "tmk")
    batch = [
        _registration(1, phones[0], grade="7"),
        _registration(2, phones[1]),
        _registration(2, phones[1]),  # the same event twice in one batch
        _registration(3, phones[1], subject="math"),  # the same person registering again
    ]
    async with db() as s:
        assert await insert_registrations(s, batch, campaign_id) == 3
    async with db() as s:  # the whole batch redelivered, plus one new event
        assert await insert_registrations(s, [*batch, _registration(4, phones[2])], campaign_id) == 1

    assert await _count(db, "SELECT count(*) FROM leads WHERE source = 'registration'") == 4
    # A person registering again is a new lead (a new event); the earlier import stays as it was.
    assert await _count(db, "SELECT count(*) FROM leads WHERE phone_e164 = :p", p=phones[1]) == 2
    assert await _count(db, "SELECT count(*) FROM leads WHERE phone_e164 = :p", p=phones[0]) == 2
    async with db() as s:
        row = (
            await s.execute(
                text(
                    "SELECT campaign_id, attributes, name, status FROM leads WHERE source_event_id = 'evt-1'"
                )
            )
        ).one()
    assert row == (campaign_id, {"grade": "7"}, "Student 1", "new")


async def test_concurrent_overlapping_batches_create_each_lead_once(db):
    phones = cn_mobiles(300, seed=4)
    async with db() as s:
        campaign_id = await campaign_named(s, "Registrations", "tmk")
    events = [_registration(i, phones[i % len(phones)]) for i in range(600)]

    async def store(batch: list[Registration]) -> int:
        async with db() as s:
            return await insert_registrations(s, batch, campaign_id)

    # Four consumers holding overlapping, differently ordered batches at once.
    rng = random.Random(4)
    batches = [rng.sample(events, 400) for _ in range(4)]
    created = await asyncio.gather(*(store(b) for b in batches))
    unique = {r.event_id for b in batches for r in b}
    assert sum(created) == len(unique)
    assert await _count(db, "SELECT count(*) FROM leads") == len(unique)


async def test_text_the_database_would_refuse_never_reaches_it(db):
    async with db() as s:
        campaign_id = await campaign_named(s, "Registrations", "tmk")
    values = [
        _value(event_id="nul\x00", phone="13812345678", name="A\x00B", grade="\x00x", source="😀 app"),
        b'{"event_id": "lone", "phone": "13912345678", "name": "\\ud800"}',
    ]
    parsed = [parse_registration(v, "CN") for v in values]
    assert parsed[1] == Rejection(RejectReason.INVALID_FIELD, "name must be a string")
    good = [p for p in parsed if isinstance(p, Registration)]
    async with db() as s:
        assert await insert_registrations(s, good, campaign_id) == 1
    async with db() as s:
        row = (await s.execute(text("SELECT source_event_id, name, attributes FROM leads"))).one()
    assert row == ("nul", "AB", {"grade": "x", "source": "😀 app"})


# --- the consumer in a running hub, against a real broker --------------------------------------


class Stream:
    """This test's own topics and consumer group on the broker."""

    def __init__(self, bootstrap: str) -> None:
        tag = secrets.token_hex(4)
        self.bootstrap = bootstrap
        self.topic = f"lineup.leads.inbound.test-{tag}"
        self.dlq = f"{self.topic}.dlq"
        self.group = f"lineup-registrations-test-{tag}"

    def hub_env(self, **extra: str) -> dict[str, str]:
        return {
            "LINEUP_KAFKA_BOOTSTRAP": self.bootstrap,
            "LINEUP_REGISTRATIONS_TOPIC": self.topic,
            "LINEUP_REGISTRATIONS_DLQ_TOPIC": self.dlq,
            "LINEUP_REGISTRATIONS_GROUP_ID": self.group,
            "LINEUP_REGISTRATIONS_SESSION_TIMEOUT_MS": "6000",
            "LINEUP_REGISTRATIONS_RETRY_MAX_S": "1",
            **extra,
        }

    async def create_topics(self, partitions: int = 4) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.topic, partitions, 1), NewTopic(self.dlq, 1, 1)])
        finally:
            await admin.close()

    async def produce(self, values: list[bytes]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=False, linger_ms=5)
        await producer.start()
        try:
            # No key: the partitioner spreads messages (and their re-sends) over every partition.
            sent = [await producer.send(self.topic, value) for value in values]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def dead_letters(self, count: int, timeout: float = 30) -> list[Any]:
        """Read the dead-letter topic until it holds ``count`` messages; fail if it holds more."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        tp = TopicPartition(self.dlq, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                batch = await consumer.getmany(tp, timeout_ms=500)
                records.extend(batch.get(tp, []))
                if len(records) >= count or loop.time() > deadline:
                    break
            # The high-water mark of the last fetch, not ListOffsets: Tansu's "latest" offset
            # undercounts when one produce batch held several records. (A fetch that returned no
            # records leaves no mark; then the topic is empty or ListOffsets says otherwise.)
            end = consumer.highwater(tp)
            if end is None:
                end = (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
        assert end == len(records), f"dead-letter topic holds {end} messages, read {len(records)}"
        return records


async def _wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``check`` (its effect is in the database or a log, nothing to subscribe to) until true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.2)


async def _leads(db) -> int:
    return await _count(db, "SELECT count(*) FROM leads WHERE source = 'registration'")


def _leads_are(db, expected: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = await _leads(db)
        assert found <= expected, f"{found} leads, more than the {expected} unique registrations"
        return found == expected

    return check


def _in_log(server, marker: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return marker in Path(server.log_path).read_text(errors="replace")

    return check


def _phone_forms(e164: str, rng: random.Random) -> str:
    n = e164[3:]
    return rng.choice([e164, n, f"{n[:3]} {n[3:7]} {n[7:]}", f"0086{n}", f"+86-{n[:3]}-{n[3:7]}-{n[7:]}"])


async def test_ten_thousand_registrations_with_resends_and_bad_messages(start_hub, db, kafka_bootstrap):
    stream = Stream(kafka_bootstrap)
    await stream.create_topics()
    hub = start_hub(**stream.hub_env())

    rng = random.Random(2025)
    people = cn_mobiles(8_900, seed=11)  # 100 people register twice, under different event ids
    unique = [
        _value(
            event_id=f"reg-{i:05d}",
            name=f"学生{i}",
            phone=_phone_forms(people[i % len(people)], rng),
            grade=rng.choice(["初一", "初二", "初三", 7, 8]),
            subject=rng.choice(["数学", "英语", "物理"]),
            source=rng.choice(["app", "wechat", "h5"]),
            registered_at=f"2025-03-{1 + i % 28:02d}T10:{i % 60:02d}:00+08:00",
        )
        for i in range(9_000)
    ]
    resent = rng.sample(unique, 1_000)  # 10 % of the 10,000 messages are re-sends
    valid = unique + resent
    rng.shuffle(valid)
    malformed = {
        b"this is not json": RejectReason.NOT_JSON,
        _value(event_id="bad-no-phone", name="No Phone"): RejectReason.MISSING_PHONE,
        _value(event_id="bad-phone", phone="12345"): RejectReason.INVALID_PHONE,
        b'[{"event_id": "bad-array", "phone": "13812345678"}]': RejectReason.NOT_OBJECT,
        _value(phone="13912345678", name="No Event"): RejectReason.MISSING_EVENT_ID,
    }
    messages = list(valid)
    for value in malformed:
        messages.insert(rng.randrange(len(messages)), value)
    assert len(valid) == 10_000 and len(messages) == 10_005

    await stream.produce(messages)
    await _wait_until(_leads_are(db, 9_000), 45, "9,000 leads")

    dead = await stream.dead_letters(len(malformed))
    assert {d.value: dict(d.headers)["lineup.dlq.reason"].decode() for d in dead} == {
        v: r.value for v, r in malformed.items()
    }
    assert all(dict(d.headers)["lineup.dlq.topic"].decode() == stream.topic for d in dead)

    # The consumer is still running after the bad messages: one more registration becomes a lead.
    await stream.produce([_value(event_id="reg-last", name="Last", phone="+86 186 0000 1111", grade="初一")])
    await _wait_until(_leads_are(db, 9_001), 30, "the registration sent after the bad ones")
    assert hub.process.poll() is None

    assert await _count(db, "SELECT count(DISTINCT source_event_id) FROM leads") == 9_001
    assert (
        await _count(
            db,
            "SELECT count(*) FROM leads l JOIN campaigns c ON c.id = l.campaign_id "
            "WHERE c.name = 'Registrations' AND c.kind = 'tmk' AND l.status = 'new' AND l.owner_id IS NULL",
        )
        == 9_001
    )
    async with db() as s:
        row = (
            await s.execute(
                text("SELECT name, phone_e164, attributes FROM leads WHERE source_event_id = 'reg-00042'")
            )
        ).one()
    sent = json.loads(unique[42])
    assert row.name == "学生42" and row.phone_e164 == people[42]
    assert row.attributes == {
        "grade": sent["grade"],
        "subject": sent["subject"],
        "source": sent["source"],
        "registered_at": datetime.fromisoformat(sent["registered_at"]).isoformat(),
    }
    assert len(await stream.dead_letters(len(malformed))) == len(malformed)  # nothing dead-lettered twice


async def test_consumer_waits_for_the_broker_and_retries_a_failed_database_write(start_hub, db, tmp_path):
    port = free_port()
    stream = Stream(f"127.0.0.1:{port}")
    # Idle rescans are slow here, so the waiting agent gets its lead only from the intake's wake-up.
    hub = start_hub(**stream.hub_env(LINEUP_IDLE_RESCAN_S="600"))
    tina = await add_user(db, "tina", role="tmk")
    async with db() as s:  # the campaign exists already, and tina works it
        campaign_id = await campaign_named(s, "Registrations", "tmk")
        await s.execute(
            text("INSERT INTO campaign_agents (campaign_id, user_id) VALUES (:c, :u)"),
            {"c": campaign_id, "u": tina},
        )
        await s.commit()
    agent = await AgentClient.connect(hub.ws_base, await token(hub.base, "tina"))
    await agent.expect("snapshot")
    await agent.send("state.set", state="ready")
    await agent.expect("lead.none")

    # The hub serves while the broker is down, and keeps trying.
    await _wait_until(_in_log(hub, "event=registrations_kafka_unavailable"), 15, "a failed connection")

    # Every registration insert fails until the constraint is dropped: a database error, for real.
    async with db() as s:
        await s.execute(
            text("ALTER TABLE leads ADD CONSTRAINT test_refuse CHECK (source <> 'registration') NOT VALID")
        )
        await s.commit()

    broker = start_tansu(tmp_path, port=port)
    try:
        await stream.create_topics(partitions=2)
        phones = cn_mobiles(20, seed=21)
        values = [_value(event_id=f"late-{i}", name=f"Late {i}", phone=p) for i, p in enumerate(phones)]
        await stream.produce(values + values[:5])

        await _wait_until(_in_log(hub, "event=registrations_batch_failed"), 30, "a failed batch")
        assert await _leads(db) == 0

        async with db() as s:
            await s.execute(text("ALTER TABLE leads DROP CONSTRAINT test_refuse"))
            await s.commit()

        assigned = await agent.expect("lead.assigned", timeout=30)
        assert assigned["lead"]["name"].startswith("Late ")
        await _wait_until(_leads_are(db, 20), 30, "20 leads after the database recovered")
        assert await stream.dead_letters(0) == []  # a database error is not a bad message
        assert hub.process.poll() is None

        # A stopping hub leaves the consumer group cleanly (while the broker is still there to tell).
        await agent.close()
        hub.stop()
        assert "event=registrations_stopped" in hub.log_tail()
        assert "Unclosed AIOKafka" not in Path(hub.log_path).read_text()
    finally:
        await agent.close()
        hub.stop()
        broker.stop()
