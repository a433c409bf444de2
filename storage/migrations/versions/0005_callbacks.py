"""Callbacks: who a callback is booked for, and the index that finds an agent's due callbacks.

``leads.callback_agent_id`` is the agent a callback was promised by (NULL: anyone may take it).
A personal callback is offered to its agent before any other lead, and becomes "anyone" when it
has waited past ``LINEUP_CALLBACK_GRACE_S``.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from storage.ddl import run_script

revision = "0005"
down_revision = "0004"

UPGRADE = """
ALTER TABLE leads ADD COLUMN callback_agent_id integer;
CREATE INDEX leads_callbacks ON leads (callback_agent_id, next_attempt_at)
    WHERE status = 'callback' AND callback_agent_id IS NOT NULL AND held_by IS NULL AND deleted_at IS NULL
"""

DOWNGRADE = """
DROP INDEX leads_callbacks;
ALTER TABLE leads DROP COLUMN callback_agent_id
"""


def upgrade() -> None:
    run_script(op, UPGRADE)


def downgrade() -> None:
    run_script(op, DOWNGRADE)
