"""Inbound routing: the numbers customers call (DIDs), the agents who answer each, and call facts.

- ``inbound_numbers``: a dialled number with its routing strategy and how long an agent's phone
  rings before the call moves on; ``inbound_number_agents``: the agents of its group.
- ``calls.did`` (the number dialled, inbound), ``calls.gateway_call_id`` (the phone system's own
  id, e.g. the SIP Call-ID) and ``calls.recording_ref`` (where the gateway keeps the recording).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

from storage.ddl import run_script

revision = "0008"
down_revision = "0007"

UPGRADE = """
CREATE TABLE inbound_numbers (
    did varchar(32) PRIMARY KEY,
    name varchar(100) NOT NULL DEFAULT '',
    strategy varchar(16) NOT NULL DEFAULT 'sticky'
        CONSTRAINT inbound_numbers_strategy_check CHECK (strategy IN ('sticky', 'longest_idle')),
    ring_timeout_s integer NOT NULL DEFAULT 15
        CONSTRAINT inbound_numbers_ring_timeout_check CHECK (ring_timeout_s BETWEEN 5 AND 120),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE inbound_number_agents (
    did varchar(32) NOT NULL REFERENCES inbound_numbers (did) ON DELETE CASCADE,
    user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (did, user_id)
);
ALTER TABLE calls ADD COLUMN did varchar(32);
ALTER TABLE calls ADD COLUMN gateway_call_id varchar(200);
ALTER TABLE calls ADD COLUMN recording_ref text;
CREATE INDEX calls_phone ON calls (phone_e164, started_at)
"""

DOWNGRADE = """
DROP INDEX calls_phone;
ALTER TABLE calls DROP COLUMN recording_ref;
ALTER TABLE calls DROP COLUMN gateway_call_id;
ALTER TABLE calls DROP COLUMN did;
DROP TABLE inbound_number_agents;
DROP TABLE inbound_numbers
"""


def upgrade() -> None:
    run_script(op, UPGRADE)


def downgrade() -> None:
    run_script(op, DOWNGRADE)
