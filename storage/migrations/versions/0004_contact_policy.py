"""Contact policy: attempts by phone number, holds cleared for dialling, system-wide settings.

- ``contact_attempts.phone_e164``: caps per phone number count the attempts on every lead with
  that number (indexed with the time for the daily, rolling and lifetime counts).
- ``leads.cleared_at``: when the policy cleared the agent's held lead for dialling; a cleared hold
  counts as an attempt in progress for the number's caps, so two agents can never both be
  cleared past a cap.
- ``system_settings``: the system-wide contact policy and the default one (JSON).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from storage.ddl import run_script

revision = "0004"
down_revision = "0003"

UPGRADE = """
ALTER TABLE contact_attempts ADD COLUMN phone_e164 varchar(20) NOT NULL DEFAULT '';
UPDATE contact_attempts c SET phone_e164 = l.phone_e164 FROM leads l WHERE l.id = c.lead_id;
CREATE INDEX contact_attempts_phone ON contact_attempts (phone_e164, created_at);
ALTER TABLE leads ADD COLUMN cleared_at timestamptz;
CREATE INDEX leads_cleared_phone ON leads (phone_e164) WHERE cleared_at IS NOT NULL;
CREATE TABLE system_settings (
    key varchar(64) PRIMARY KEY,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by integer
)
"""

DOWNGRADE = """
DROP TABLE system_settings;
DROP INDEX leads_cleared_phone;
ALTER TABLE leads DROP COLUMN cleared_at;
DROP INDEX contact_attempts_phone;
ALTER TABLE contact_attempts DROP COLUMN phone_e164
"""


def upgrade() -> None:
    run_script(op, UPGRADE)


def downgrade() -> None:
    run_script(op, DOWNGRADE)
