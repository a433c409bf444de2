"""Initial schema: users, teams, customers, leads, imports, calls, contact attempts, audit log.

Revision ID: 0001
Revises:
"""

from alembic import op

from storage.ddl import run_script

revision = "0001"
down_revision = None

UPGRADE = """
CREATE TABLE teams (
    id serial PRIMARY KEY,
    name varchar(100) NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id serial PRIMARY KEY,
    username varchar(64) NOT NULL UNIQUE,
    display_name varchar(100) NOT NULL,
    password_hash text NOT NULL,
    role varchar(16) NOT NULL CONSTRAINT users_role_check
        CHECK (role IN ('admin','supervisor','sales','tmk','qa')),
    team_id integer REFERENCES teams(id),
    tier varchar(8) NOT NULL DEFAULT 'A',
    sip_extension varchar(32),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    phone_e164 varchar(20) NOT NULL UNIQUE,
    name varchar(200) NOT NULL DEFAULT '',
    area varchar(200) NOT NULL DEFAULT '',
    notes text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE import_batches (
    id serial PRIMARY KEY,
    filename varchar(255) NOT NULL,
    created_by integer REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    status varchar(16) NOT NULL DEFAULT 'done',
    total integer NOT NULL DEFAULT 0,
    invalid integer NOT NULL DEFAULT 0,
    duplicate integer NOT NULL DEFAULT 0,
    inserted integer NOT NULL DEFAULT 0
);

CREATE TABLE leads (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers(id),
    batch_id integer REFERENCES import_batches(id),
    owner_id integer REFERENCES users(id),
    name varchar(200) NOT NULL DEFAULT '',
    phone_e164 varchar(20) NOT NULL,
    area varchar(200) NOT NULL DEFAULT '',
    attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    status varchar(16) NOT NULL DEFAULT 'new' CONSTRAINT leads_status_check
        CHECK (status IN ('new','retry','callback','closed')),
    held_by integer REFERENCES users(id),
    lease_expires_at timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    callback_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_outcome varchar(32),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE UNIQUE INDEX leads_one_per_agent ON leads (held_by) WHERE held_by IS NOT NULL;
CREATE INDEX leads_claimable ON leads (owner_id, next_attempt_at, id)
    WHERE held_by IS NULL AND deleted_at IS NULL AND status <> 'closed';
CREATE INDEX leads_phone ON leads (phone_e164);
CREATE INDEX leads_lease ON leads (lease_expires_at) WHERE held_by IS NOT NULL;

CREATE TABLE calls (
    id uuid NOT NULL,
    started_at timestamptz NOT NULL,
    direction varchar(8) NOT NULL,
    agent_id integer,
    lead_id bigint,
    phone_e164 varchar(20) NOT NULL,
    state varchar(16) NOT NULL,
    ringing_at timestamptz,
    answered_at timestamptz,
    ended_at timestamptz,
    duration_s double precision,
    hangup_cause varchar(32),
    PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX calls_agent ON calls (agent_id, started_at);
CREATE INDEX calls_lead ON calls (lead_id);
CREATE TABLE calls_default PARTITION OF calls DEFAULT;

CREATE SEQUENCE contact_attempts_id_seq;
CREATE TABLE contact_attempts (
    id bigint NOT NULL DEFAULT nextval('contact_attempts_id_seq'),
    created_at timestamptz NOT NULL DEFAULT now(),
    lead_id bigint NOT NULL,
    agent_id integer NOT NULL,
    outcome varchar(32) NOT NULL,
    note text NOT NULL DEFAULT '',
    call_id uuid,
    callback_at timestamptz,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX contact_attempts_lead ON contact_attempts (lead_id, created_at);
CREATE INDEX contact_attempts_agent ON contact_attempts (agent_id, created_at);
CREATE TABLE contact_attempts_default PARTITION OF contact_attempts DEFAULT;

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor_id integer,
    action varchar(64) NOT NULL,
    target varchar(200) NOT NULL DEFAULT '',
    detail jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip varchar(64) NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
"""

DOWNGRADE = """
DROP TABLE audit_log;
DROP TABLE contact_attempts;
DROP SEQUENCE contact_attempts_id_seq;
DROP TABLE calls;
DROP TABLE leads;
DROP TABLE import_batches;
DROP TABLE customers;
DROP TABLE users;
DROP TABLE teams;
"""


def upgrade() -> None:
    run_script(op, UPGRADE)


def downgrade() -> None:
    run_script(op, DOWNGRADE)
