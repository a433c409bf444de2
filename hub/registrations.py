"""The registration stream: sign-ups from the education app on Kafka become TMK leads.

``parse_registration`` is the protocol (bytes in, a cleaned registration or a rejection out, no I/O);
``RegistrationIntake`` is the thin I/O loop around it. Delivery is at-least-once: a batch's offsets
are committed only after its leads are committed in Postgres and its rejects are acknowledged by the
dead-letter topic, and the insert is idempotent on the event id, so the effect is exactly once.

Dead letters keep the original key and value byte for byte (so they can be replayed by copying them
back) and carry the reason in headers: ``lineup.dlq.reason`` (a code, see ``RejectReason``),
``lineup.dlq.detail`` (a human sentence), ``lineup.dlq.topic``, ``lineup.dlq.partition`` and
``lineup.dlq.offset`` (where the message came from), after the original message's own headers.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from hub.intake.phones import normalise_phone
from storage.registrations import Registration, campaign_named, insert_registrations

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["Registration", "RegistrationIntake", "RejectReason", "Rejection", "parse_registration"]

log = logging.getLogger("lineup.registrations")

CAMPAIGN_KIND = "tmk"
MAX_EVENT_ID_LENGTH = 100  # leads.source_event_id is varchar(100)
MAX_NAME_LENGTH = 200  # leads.name is varchar(200)
MAX_ATTRIBUTE_LENGTH = 200
_TEXT_ATTRIBUTES = ("grade", "subject", "source")


class RejectReason(enum.StrEnum):
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_EVENT_ID = "missing_event_id"
    INVALID_EVENT_ID = "invalid_event_id"
    MISSING_PHONE = "missing_phone"
    INVALID_PHONE = "invalid_phone"
    INVALID_FIELD = "invalid_field"
    INVALID_REGISTERED_AT = "invalid_registered_at"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message cannot become a lead."""

    reason: RejectReason
    detail: str


def parse_registration(value: bytes, region: str) -> Registration | Rejection:
    """Read one message value of ``lineup.leads.inbound``; never raises.

    Expects a JSON object with ``event_id`` and ``phone`` (required), and ``name``, ``grade``,
    ``subject``, ``source``, ``registered_at`` (ISO-8601) when known. The phone is normalised to
    E.164 (numbers without a country code are read as numbers of ``region``); grade, subject, source
    and registered_at become the lead's attributes.
    """
    try:
        data = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Rejection(RejectReason.NOT_JSON, f"value is not JSON: {exc}"[:200])
    if not isinstance(data, dict):
        return Rejection(RejectReason.NOT_OBJECT, f"value is a JSON {type(data).__name__}, not an object")

    event_id = data.get("event_id")
    if event_id is None or event_id == "":
        return Rejection(RejectReason.MISSING_EVENT_ID, "event_id is missing")
    event_id = _text(event_id)
    if not event_id or len(event_id) > MAX_EVENT_ID_LENGTH:
        return Rejection(
            RejectReason.INVALID_EVENT_ID,
            f"event_id must be a non-empty string or integer of at most {MAX_EVENT_ID_LENGTH} characters",
        )

    raw_phone = data.get("phone")
    if raw_phone is None or raw_phone == "":
        return Rejection(RejectReason.MISSING_PHONE, "phone is missing")
    raw_phone = _text(raw_phone)
    phone = normalise_phone(raw_phone, region) if raw_phone else None
    if phone is None:
        return Rejection(RejectReason.INVALID_PHONE, "phone is not a valid phone number")

    name = "" if data.get("name") is None else _text(data["name"], numbers=False)
    if name is None:
        return Rejection(RejectReason.INVALID_FIELD, "name must be a string")

    attributes: dict[str, Any] = {}
    for key in _TEXT_ATTRIBUTES:
        item = data.get(key)
        if item is None:
            continue
        if isinstance(item, float) and math.isfinite(item):
            attributes[key] = item
        elif isinstance(item, int) and not isinstance(item, bool):
            attributes[key] = item
        elif (text := _text(item, numbers=False)) is not None:
            attributes[key] = text[:MAX_ATTRIBUTE_LENGTH]
        else:
            return Rejection(RejectReason.INVALID_FIELD, f"{key} must be a string or a number")

    registered_at = data.get("registered_at")
    if registered_at is not None:
        try:
            attributes["registered_at"] = datetime.fromisoformat(registered_at).isoformat()
        except (TypeError, ValueError):
            return Rejection(RejectReason.INVALID_REGISTERED_AT, "registered_at is not an ISO-8601 time")

    return Registration(
        event_id=event_id,
        name=name[:MAX_NAME_LENGTH],
        phone_e164=phone,
        attributes=attributes,
    )


def _text(item: object, numbers: bool = True) -> str | None:
    """``item`` as text Postgres will store, or None if it is not text.

    Integers count as text where producers commonly send them as numbers (ids, phones). NUL
    characters are dropped and lone surrogates refused: Postgres rejects both, and a message the
    database refuses every time would block its partition forever.
    """
    if numbers and isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    if not isinstance(item, str):
        return None
    text = item.replace("\x00", "").strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text


class _Backoff:
    """Exponential back-off with jitter: 0.5 s, 1 s, 2 s … up to ``ceiling``."""

    def __init__(self, ceiling: float, initial: float = 0.5) -> None:
        self._initial = initial
        self._ceiling = max(ceiling, initial)
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def delay(self) -> float:
        current = self._next
        self._next = min(self._next * 2, self._ceiling)
        return current * random.uniform(0.8, 1.0)


class RegistrationIntake:
    """Consumes ``lineup.leads.inbound`` in a consumer group and turns registrations into TMK leads.

    ``start`` returns at once; the work runs in a background task that connects (retrying with
    back-off while the broker is down), then reads batches. A batch that cannot be stored (database
    down) is rewound and retried, its offsets uncommitted; a message that can never be a lead goes to
    the dead-letter topic and the consumer goes on.
    """

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._settings = hub.settings
        self._campaign_id: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start consuming in the background (the broker may still be down)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="registration-intake")

    async def close(self) -> None:
        """Stop consuming and leave the consumer group; uncommitted work is redelivered later."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            log.info("event=registrations_stopped")

    async def _run(self) -> None:
        s = self._settings
        backoff = _Backoff(s.registrations_retry_max_s)
        while True:
            consumer, producer = self._clients()
            try:
                await producer.start()
                await consumer.start()
                log.info(
                    "event=registrations_connected bootstrap=%s topic=%s group=%s",
                    s.kafka_bootstrap,
                    s.registrations_topic,
                    s.registrations_group_id,
                )
                backoff.reset()
                await self._consume(consumer, producer)
            except KafkaError as exc:
                delay = backoff.delay()
                log.warning(
                    "event=registrations_kafka_unavailable bootstrap=%s error=%r retry_in_s=%.1f",
                    s.kafka_bootstrap,
                    exc,
                    delay,
                )
            except Exception:
                delay = backoff.delay()
                log.exception("event=registrations_consumer_failed retry_in_s=%.1f", delay)
            finally:
                await _stop_quietly(consumer, producer)
            await asyncio.sleep(delay)

    def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
        s = self._settings
        client_id = f"lineup-{self._hub.process_id}"
        consumer = AIOKafkaConsumer(
            s.registrations_topic,
            bootstrap_servers=s.kafka_bootstrap,
            client_id=client_id,
            group_id=s.registrations_group_id,
            enable_auto_commit=False,
            # A new group starts at the beginning: registrations sent before the first hub ran count.
            auto_offset_reset="earliest",
            session_timeout_ms=s.registrations_session_timeout_ms,
            heartbeat_interval_ms=max(100, s.registrations_session_timeout_ms // 3),
            max_poll_records=s.registrations_batch_max,
        )
        # The broker we test on supports neither idempotent nor transactional producers; dead letters
        # are at-least-once like everything else here.
        producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap, client_id=client_id, enable_idempotence=False, acks="all"
        )
        return consumer, producer

    async def _consume(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        """Read batches until cancelled (or a Kafka error the caller reconnects from)."""
        backoff = _Backoff(self._settings.registrations_retry_max_s)
        while True:
            batch = await consumer.getmany(
                timeout_ms=1000, max_records=self._settings.registrations_batch_max
            )
            if not batch:
                continue
            if await self._handle(batch, consumer, producer):
                backoff.reset()
            else:
                await asyncio.sleep(backoff.delay())

    async def _handle(
        self,
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
    ) -> bool:
        """Store one batch, dead-letter its rejects, commit its offsets. False if it must be retried."""
        region = self._settings.default_region
        started = time.perf_counter()
        registrations: list[Registration] = []
        rejects: list[tuple[ConsumerRecord[bytes, bytes], Rejection]] = []
        for records in batch.values():
            for record in records:
                parsed = parse_registration(record.value or b"", region)
                if isinstance(parsed, Registration):
                    registrations.append(parsed)
                else:
                    rejects.append((record, parsed))
        try:
            created = await self._store(registrations)
            if created:
                await self._wake_agents()
            await self._dead_letter(producer, rejects)
        except Exception as exc:
            # Offsets stay uncommitted: rewind so the same messages come back; the insert skips
            # whatever did get stored.
            log.warning(
                "event=registrations_batch_failed messages=%d error=%r",
                len(registrations) + len(rejects),
                exc,
            )
            assigned = consumer.assignment()
            for tp, records in batch.items():
                if tp in assigned:
                    consumer.seek(tp, records[0].offset)
            return False
        # A partition taken away mid-batch is another member's now: it re-reads from the last commit,
        # and the idempotent insert makes that harmless.
        assigned = consumer.assignment()
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if tp in assigned}
        try:
            if offsets:
                await consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("event=registrations_commit_failed error=%r", exc)
        log.info(
            "event=registrations_batch messages=%d created=%d duplicates=%d rejected=%d ms=%.0f",
            len(registrations) + len(rejects),
            created,
            len(registrations) - created,
            len(rejects),
            (time.perf_counter() - started) * 1000,
        )
        return True

    async def _wake_agents(self) -> None:
        try:
            await self._hub.leads_available()
        except Exception:
            # Not worth failing the batch for: the idle-rescan job offers the leads a little later.
            log.exception("event=leads_available_failed")

    async def _store(self, registrations: list[Registration]) -> int:
        if not registrations:
            return 0
        async with self._hub.db() as session:
            if self._campaign_id is None:
                self._campaign_id = await campaign_named(
                    session, self._settings.registrations_campaign, CAMPAIGN_KIND
                )
            return await insert_registrations(session, registrations, self._campaign_id)

    async def _dead_letter(
        self, producer: AIOKafkaProducer, rejects: list[tuple[ConsumerRecord[bytes, bytes], Rejection]]
    ) -> None:
        topic = self._settings.registrations_dlq_topic
        sent = []
        for record, rejection in rejects:
            log.warning(
                "event=registration_rejected topic=%s partition=%d offset=%d reason=%s",
                record.topic,
                record.partition,
                record.offset,
                rejection.reason.value,
            )
            headers = [
                *(record.headers or ()),
                ("lineup.dlq.reason", rejection.reason.value.encode()),
                ("lineup.dlq.detail", rejection.detail.encode(errors="replace")),
                ("lineup.dlq.topic", record.topic.encode()),
                ("lineup.dlq.partition", str(record.partition).encode()),
                ("lineup.dlq.offset", str(record.offset).encode()),
            ]
            sent.append(
                await producer.send(topic, value=record.value or b"", key=record.key, headers=headers)
            )
        await asyncio.gather(*sent)


async def _stop_quietly(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
    for client in (consumer, producer):
        try:
            await client.stop()
        except Exception:
            log.exception("event=registrations_client_stop_failed")
