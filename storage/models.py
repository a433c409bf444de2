"""SQLAlchemy 2 models. The DDL of record lives in ``storage/migrations``; a test keeps them in step."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    SALES = "sales"
    TMK = "tmk"
    QA = "qa"


class LeadStatus(enum.StrEnum):
    NEW = "new"  # never contacted
    RETRY = "retry"  # contacted, to be tried again from next_attempt_at
    CALLBACK = "callback"  # a callback was promised for callback_at
    CLOSED = "closed"  # final outcome, never dispensed again


class Outcome(enum.StrEnum):
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    INVALID_NUMBER = "invalid_number"
    NOT_INTERESTED = "not_interested"
    INTERESTED = "interested"
    CALLBACK = "callback"
    CONVERTED = "converted"
    DNC = "dnc"


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = _now()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin','supervisor','sales','tmk','qa')", name="users_role_check"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    tier: Mapped[str] = mapped_column(String(8), server_default="A")
    sip_extension: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()


class Customer(Base):
    """The customer record of a phone number (name, notes); leads join it on ``phone_e164``."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    phone_e164: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200), server_default="")
    area: Mapped[str] = mapped_column(String(200), server_default="")
    notes: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = _now()


class Campaign(Base):
    """A pool of leads with its kind (sales or TMK), its agents or teams, and contact settings."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("kind IN ('sales','tmk')", name="campaigns_kind_check"),
        CheckConstraint("mix_weight BETWEEN 1 AND 100", name="campaigns_mix_weight_check"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()
    # An agent working several lists gets leads from each in proportion (migration 0006).
    mix_weight: Mapped[int] = mapped_column(Integer, server_default="1")


class CampaignAgent(Base):
    __tablename__ = "campaign_agents"
    __table_args__ = (Index("campaign_agents_user", "user_id"),)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class CampaignTeam(Base):
    __tablename__ = "campaign_teams"
    __table_args__ = (Index("campaign_teams_team", "team_id"),)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)


class DncNumber(Base):
    """A number never to be dialled: system-wide (campaign NULL) or for one campaign."""

    __tablename__ = "dnc_numbers"
    __table_args__ = (
        Index(
            "dnc_numbers_phone_campaign",
            "phone_e164",
            "campaign_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    phone_e164: Mapped[str] = mapped_column(String(20))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(64), server_default="")
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _now()


class ImportBatch(Base):
    """One import job: its progress while it runs and its counts when done."""

    __tablename__ = "import_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _now()
    status: Mapped[str] = mapped_column(String(16), server_default="done")
    total: Mapped[int] = mapped_column(Integer, server_default="0")
    invalid: Mapped[int] = mapped_column(Integer, server_default="0")
    duplicate: Mapped[int] = mapped_column(Integer, server_default="0")
    inserted: Mapped[int] = mapped_column(Integer, server_default="0")
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    dnc: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_read: Mapped[int] = mapped_column(Integer, server_default="0")
    bytes_total: Mapped[int] = mapped_column(BigInteger, server_default="0")
    bytes_read: Mapped[int] = mapped_column(BigInteger, server_default="0")
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str] = mapped_column(Text, server_default="")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportReject(Base):
    """A row an import refused, with the reason, for the uploader's download."""

    __tablename__ = "import_rejects"
    batch_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # no foreign key: migration 0003
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    cells: Mapped[str] = mapped_column(Text)  # the row as read, joined with U+001F


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint("status IN ('new','retry','callback','closed')", name="leads_status_check"),
        # One lead per agent: the database itself refuses a second held lead.
        Index("leads_one_per_agent", "held_by", unique=True, postgresql_where=text("held_by IS NOT NULL")),
        # The claim's indexes (migration 0006, docs/ARCHITECTURE.md "Dispatch"): one per tier,
        # keyed by owner, list (campaign, 0 for none) and the tier's order.
        Index(
            "leads_fresh",
            text("coalesce(owner_id, 0)"),
            text("coalesce(campaign_id, 0)"),
            "shuffle",
            postgresql_where=text("status = 'new' AND held_by IS NULL AND deleted_at IS NULL"),
        ),
        Index(
            "leads_retry",
            text("coalesce(owner_id, 0)"),
            text("coalesce(campaign_id, 0)"),
            "next_attempt_at",
            postgresql_where=text("status = 'retry' AND held_by IS NULL AND deleted_at IS NULL"),
        ),
        Index(
            "leads_open_callbacks",
            "next_attempt_at",
            postgresql_where=text(
                "status = 'callback' AND callback_agent_id IS NULL AND held_by IS NULL AND deleted_at IS NULL"
            ),
        ),
        Index("leads_phone", "phone_e164"),
        Index("leads_lease", "lease_expires_at", postgresql_where=text("held_by IS NOT NULL")),
        Index(
            "leads_source_event",
            "source_event_id",
            unique=True,
            postgresql_where=text("source_event_id IS NOT NULL"),
        ),
        Index("leads_batch", "batch_id", postgresql_using="brin"),
        Index("leads_created", "created_at", postgresql_using="brin"),
        Index("leads_deleted", "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
        Index("leads_cleared_phone", "phone_e164", postgresql_where=text("cleared_at IS NOT NULL")),
        Index(
            "leads_callbacks",
            "callback_agent_id",
            "next_attempt_at",
            postgresql_where=text(
                "status = 'callback' AND callback_agent_id IS NOT NULL AND held_by IS NULL"
                " AND deleted_at IS NULL"
            ),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # No foreign keys on leads' references (migration 0003): leads is the hot table, and every
    # insert paid a per-row check for each (even a NULL one), every claim one on held_by. Import
    # batches, users and campaigns are never deleted, and ids are checked where they come in.
    batch_id: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), server_default="")
    phone_e164: Mapped[str] = mapped_column(String(20))
    area: Mapped[str] = mapped_column(String(200), server_default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default="new")
    held_by: Mapped[int | None] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = _now()
    callback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32), server_default="import")
    source_event_id: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str] = mapped_column(Text, server_default="")
    # When the contact policy cleared the held lead for dialling (migration 0004).
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The agent a callback was promised by; NULL: anyone (migration 0005).
    callback_agent_id: Mapped[int | None] = mapped_column(Integer)
    # Fresh leads are dispensed in this random order (migration 0006).
    shuffle: Mapped[int] = mapped_column(Integer, server_default=text("(random() * 2147483646)::integer"))


class AgentDay(Base):
    """What an agent was given on one day, for the daily quotas (migration 0006)."""

    __tablename__ = "agent_days"
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    new_leads: Mapped[int] = mapped_column(Integer, server_default="0")


class InboundNumber(Base):
    """A number customers call (DID): who answers it and how (migration 0008)."""

    __tablename__ = "inbound_numbers"
    __table_args__ = (
        CheckConstraint("strategy IN ('sticky', 'longest_idle')", name="inbound_numbers_strategy_check"),
        CheckConstraint("ring_timeout_s BETWEEN 5 AND 120", name="inbound_numbers_ring_timeout_check"),
    )
    did: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), server_default="")
    strategy: Mapped[str] = mapped_column(String(16), server_default="sticky")
    ring_timeout_s: Mapped[int] = mapped_column(Integer, server_default="15")
    created_at: Mapped[datetime] = _now()


class InboundNumberAgent(Base):
    __tablename__ = "inbound_number_agents"
    did: Mapped[str] = mapped_column(ForeignKey("inbound_numbers.did", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class SystemSetting(Base):
    """A system-wide setting as JSON (the contact policies)."""

    __tablename__ = "system_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = _now()
    updated_by: Mapped[int | None] = mapped_column(Integer)


class Call(Base):
    """One phone call; range-partitioned by month on ``started_at``."""

    __tablename__ = "calls"
    __table_args__ = (
        PrimaryKeyConstraint("id", "started_at"),
        Index("calls_agent", "agent_id", "started_at"),
        Index("calls_lead", "lead_id"),
        Index("calls_phone", "phone_e164", "started_at"),
        {"postgresql_partition_by": "RANGE (started_at)"},
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    direction: Mapped[str] = mapped_column(String(8))
    agent_id: Mapped[int | None] = mapped_column(Integer)
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    phone_e164: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(16))
    ringing_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)
    hangup_cause: Mapped[str | None] = mapped_column(String(32))
    did: Mapped[str | None] = mapped_column(String(32))  # the number dialled, inbound
    gateway_call_id: Mapped[str | None] = mapped_column(String(200))  # the phone system's id (SIP Call-ID)
    recording_ref: Mapped[str | None] = mapped_column(Text)


class ContactAttempt(Base):
    """One disposition of a lead by an agent, or one manual call (outcome ``manual``, no lead).

    Range-partitioned by month on ``created_at``.
    """

    __tablename__ = "contact_attempts"
    __table_args__ = (
        PrimaryKeyConstraint("id", "created_at"),
        Index("contact_attempts_lead", "lead_id", "created_at"),
        Index("contact_attempts_agent", "agent_id", "created_at"),
        Index("contact_attempts_phone", "phone_e164", "created_at"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )
    id: Mapped[int] = mapped_column(BigInteger, server_default=text("nextval('contact_attempts_id_seq')"))
    created_at: Mapped[datetime] = _now()
    lead_id: Mapped[int | None] = mapped_column(BigInteger)  # None: a number dialled by hand
    agent_id: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, server_default="")
    call_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    phone_e164: Mapped[str] = mapped_column(String(20), server_default="")
    callback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("audit_log_at", "at"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = _now()
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), server_default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    ip: Mapped[str] = mapped_column(String(64), server_default="")
