"""Lean lead writes: fewer per-row costs for every new lead, so imports reach their budget.

Measured on a million-row import (bench/import.py); the figures are in docs/ARCHITECTURE.md.

- Leads find their customer by phone: the customer upsert and the ``customer_id`` foreign key cost
  a million-row import ~20 s of ~100 s. Customers are the customer record of a phone number
  (name, notes), joined to leads on ``phone_e164``, written when there is something to remember.
- ``batch_id``, ``owner_id``, ``held_by`` and ``campaign_id`` lose their foreign keys. Postgres
  queues a check per inserted row for every foreign key, even a NULL one (~1.5 µs each), and one
  per claim on ``held_by``; import batches, users and campaigns are never deleted, and the code
  checks ids where they come in (allocation, campaign membership, the signed-in agent).
- ``leads_batch`` and ``leads_created`` become BRIN indexes: leads arrive in batch and time order,
  and only batch-wide supervisor actions and the hourly retention purge read them.
- ``import_rejects`` keeps a rejected row's cells as text joined with U+001F (splitting is the
  download's job, building a JSON array cost ~7 µs a row) and loses its foreign key like leads.
- ``leads_claimable`` holds owned leads only; the shared pool has its own index
  (``leads_pool_claimable``), so a new unowned lead is written to one claim index, not two.

See docs/ARCHITECTURE.md, "Departures".

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from storage.ddl import run_script

revision = "0003"
down_revision = "0002"

UPGRADE = """
ALTER TABLE leads DROP COLUMN customer_id;
ALTER TABLE leads DROP CONSTRAINT leads_batch_id_fkey, DROP CONSTRAINT leads_owner_id_fkey,
    DROP CONSTRAINT leads_held_by_fkey, DROP CONSTRAINT leads_campaign_id_fkey;
DROP INDEX leads_batch;
CREATE INDEX leads_batch ON leads USING brin (batch_id);
DROP INDEX leads_created;
CREATE INDEX leads_created ON leads USING brin (created_at);
DROP INDEX leads_claimable;
CREATE INDEX leads_claimable ON leads (owner_id, next_attempt_at, id)
    WHERE owner_id IS NOT NULL AND held_by IS NULL AND deleted_at IS NULL AND status <> 'closed';
ALTER TABLE import_rejects DROP CONSTRAINT import_rejects_batch_id_fkey;
ALTER TABLE import_rejects ADD COLUMN cells_text text;
UPDATE import_rejects
    SET cells_text = array_to_string(ARRAY(SELECT jsonb_array_elements_text(cells)), chr(31));
ALTER TABLE import_rejects DROP COLUMN cells;
ALTER TABLE import_rejects RENAME COLUMN cells_text TO cells;
ALTER TABLE import_rejects ALTER COLUMN cells SET NOT NULL
"""

DOWNGRADE = """
ALTER TABLE import_rejects ALTER COLUMN cells TYPE jsonb USING to_jsonb(string_to_array(cells, chr(31)));
ALTER TABLE import_rejects ADD CONSTRAINT import_rejects_batch_id_fkey
    FOREIGN KEY (batch_id) REFERENCES import_batches(id) ON DELETE CASCADE;
DROP INDEX leads_claimable;
CREATE INDEX leads_claimable ON leads (owner_id, next_attempt_at, id)
    WHERE held_by IS NULL AND deleted_at IS NULL AND status <> 'closed';
DROP INDEX leads_created;
CREATE INDEX leads_created ON leads (created_at);
DROP INDEX leads_batch;
CREATE INDEX leads_batch ON leads (batch_id);
ALTER TABLE leads ADD CONSTRAINT leads_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES import_batches(id),
    ADD CONSTRAINT leads_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users(id),
    ADD CONSTRAINT leads_held_by_fkey FOREIGN KEY (held_by) REFERENCES users(id),
    ADD CONSTRAINT leads_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns(id);
INSERT INTO customers (phone_e164, name, area)
    SELECT DISTINCT ON (phone_e164) phone_e164, name, area FROM leads ORDER BY phone_e164, id
    ON CONFLICT (phone_e164) DO NOTHING;
ALTER TABLE leads ADD COLUMN customer_id bigint REFERENCES customers(id);
UPDATE leads l SET customer_id = c.id FROM customers c WHERE c.phone_e164 = l.phone_e164;
ALTER TABLE leads ALTER COLUMN customer_id SET NOT NULL;
CREATE INDEX leads_customer ON leads (customer_id)
"""


def upgrade() -> None:
    run_script(op, UPGRADE)


def downgrade() -> None:
    run_script(op, DOWNGRADE)
