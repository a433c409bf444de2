"""Manual calls: a number an agent dialled by hand is a contact attempt without a lead.

The contact policy counts every attempt on a number (``contact_attempts.phone_e164``), so a manual
call counts towards the number's caps like any other.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.execute("ALTER TABLE contact_attempts ALTER COLUMN lead_id DROP NOT NULL")


def downgrade() -> None:
    op.execute("DELETE FROM contact_attempts WHERE lead_id IS NULL")
    op.execute("ALTER TABLE contact_attempts ALTER COLUMN lead_id SET NOT NULL")
