"""Lead pipeline: campaigns, do-not-call lists, import jobs, registration events, recycle bin.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from storage.ddl import run_script

revision = "0002"
down_revision = "0001"

UPGRADE = """
CREATE TABLE campaigns (
    id serial PRIMARY KEY,
    name varchar(100) NOT NULL UNIQUE,
    kind varchar(8) NOT NULL CONSTRAINT campaigns_kind_check CHECK (kind IN ('sales','tmk')),
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaign_agents (
    campaign_id integer NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE INDEX campaign_agents_user ON campaign_agents (user_id);

CREATE TABLE campaign_teams (
    campaign_id integer NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    team_id integer NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, team_id)
);
CREATE INDEX campaign_teams_team ON campaign_teams (team_id);

ALTER TABLE leads ADD COLUMN campaign_id integer REFERENCES campaigns(id);
ALTER TABLE leads ADD COLUMN source varchar(32) NOT NULL DEFAULT 'import';
ALTER TABLE leads ADD COLUMN source_event_id varchar(100);
ALTER TABLE leads ADD COLUMN notes text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX leads_source_event ON leads (source_event_id) WHERE source_event_id IS NOT NULL;
-- The shared pool's claim reads this index's head; owner_id IS NULL cannot use leads_claimable's order.
CREATE INDEX leads_pool_claimable ON leads (next_attempt_at, id)
    WHERE owner_id IS NULL AND held_by IS NULL AND deleted_at IS NULL AND status <> 'closed';
CREATE INDEX leads_batch ON leads (batch_id);
CREATE INDEX leads_customer ON leads (customer_id);
CREATE INDEX leads_created ON leads (created_at);
CREATE INDEX leads_deleted ON leads (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE dnc_numbers (
    id bigserial PRIMARY KEY,
    phone_e164 varchar(20) NOT NULL,
    campaign_id integer REFERENCES campaigns(id) ON DELETE CASCADE,
    reason varchar(64) NOT NULL DEFAULT '',
    added_by integer REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dnc_numbers_phone_campaign ON dnc_numbers (phone_e164, campaign_id) NULLS NOT DISTINCT;

ALTER TABLE import_batches ADD COLUMN campaign_id integer REFERENCES campaigns(id);
ALTER TABLE import_batches ADD COLUMN dnc integer NOT NULL DEFAULT 0;
ALTER TABLE import_batches ADD COLUMN rows_read integer NOT NULL DEFAULT 0;
ALTER TABLE import_batches ADD COLUMN bytes_total bigint NOT NULL DEFAULT 0;
ALTER TABLE import_batches ADD COLUMN bytes_read bigint NOT NULL DEFAULT 0;
ALTER TABLE import_batches ADD COLUMN mapping jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE import_batches ADD COLUMN error text NOT NULL DEFAULT '';
ALTER TABLE import_batches ADD COLUMN finished_at timestamptz;

CREATE TABLE import_rejects (
    batch_id integer NOT NULL REFERENCES import_batches(id) ON DELETE CASCADE,
    row_number integer NOT NULL,
    reason varchar(32) NOT NULL,
    cells jsonb NOT NULL,
    PRIMARY KEY (batch_id, row_number)
);
"""

DOWNGRADE = """
DROP TABLE import_rejects;
ALTER TABLE import_batches DROP COLUMN finished_at, DROP COLUMN error, DROP COLUMN mapping,
    DROP COLUMN bytes_read, DROP COLUMN bytes_total, DROP COLUMN rows_read, DROP COLUMN dnc,
    DROP COLUMN campaign_id;
DROP TABLE dnc_numbers;
DROP INDEX leads_deleted;
DROP INDEX leads_created;
DROP INDEX leads_batch;
DROP INDEX leads_customer;
DROP INDEX leads_pool_claimable;
DROP INDEX leads_source_event;
ALTER TABLE leads DROP COLUMN notes, DROP COLUMN source_event_id, DROP COLUMN source, DROP COLUMN campaign_id;
DROP TABLE campaign_teams;
DROP TABLE campaign_agents;
DROP TABLE campaigns;
"""


def upgrade() -> None:
    run_script(op, UPGRADE)


def downgrade() -> None:
    run_script(op, DOWNGRADE)
