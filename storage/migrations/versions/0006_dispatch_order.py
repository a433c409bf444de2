"""Dispatch order and the one-round-trip claim: tiers, list mix weights, fresh leads shuffled.

- ``leads.shuffle``: a random key given at insert; fresh leads are dispensed in its order, so an
  agent gets a mix of a file's good and bad rows whatever order they were imported in.
- ``leads_fresh`` / ``leads_retry`` / ``leads_open_callbacks`` replace ``leads_claimable`` and
  ``leads_pool_claimable``: each probe of the claim reads the head of one partial index, keyed
  by owner, list and the tier's order. No owner and no campaign are 0, not NULL: the probes
  then test equality, and only equality lets an index hand over rows in its order.
- A fresh lead the policy holds back leaves the fresh tier: it waits for its due time as a retry.
- ``campaigns.mix_weight``: an agent working several lists gets leads from each in proportion.
- ``agent_days``: fresh leads given to each agent per day, for the daily new-lead cap.
- ``lineup_lead_facts`` / ``lineup_claim_next_lead``: see docs/ARCHITECTURE.md, "Dispatch".

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from storage.ddl import run_script

revision = "0006"
down_revision = "0005"

UPGRADE = """
ALTER TABLE leads ADD COLUMN shuffle integer NOT NULL DEFAULT (random() * 2147483646)::integer;
UPDATE leads SET status = 'retry' WHERE status = 'new' AND next_attempt_at > now();
DROP INDEX leads_claimable;
DROP INDEX leads_pool_claimable;
CREATE INDEX leads_fresh ON leads ((coalesce(owner_id, 0)), (coalesce(campaign_id, 0)), shuffle)
    WHERE status = 'new' AND held_by IS NULL AND deleted_at IS NULL;
CREATE INDEX leads_retry ON leads ((coalesce(owner_id, 0)), (coalesce(campaign_id, 0)), next_attempt_at)
    WHERE status = 'retry' AND held_by IS NULL AND deleted_at IS NULL;
CREATE INDEX leads_open_callbacks ON leads (next_attempt_at)
    WHERE status = 'callback' AND callback_agent_id IS NULL AND held_by IS NULL AND deleted_at IS NULL;
ALTER TABLE campaigns ADD COLUMN mix_weight integer NOT NULL DEFAULT 1
    CONSTRAINT campaigns_mix_weight_check CHECK (mix_weight BETWEEN 1 AND 100);
CREATE TABLE agent_days (
    agent_id integer NOT NULL,
    day date NOT NULL,
    new_leads integer NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, day)
)
"""

# What the contact policy reads about a lead (hub.policy decides on it): its own attempts, and
# its number's attempts on every lead including holds cleared for dialling elsewhere.
LEAD_FACTS = """
CREATE FUNCTION lineup_lead_facts(p_lead bigint)
RETURNS TABLE (phone_e164 text, campaign_id integer, status text, callback_at timestamptz,
               last_outcome text, on_dnc boolean, lead_times timestamptz[], phone_times timestamptz[])
LANGUAGE sql STABLE AS $fn$
    SELECT l.phone_e164, l.campaign_id, l.status, l.callback_at, l.last_outcome,
        EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = l.phone_e164
                AND (d.campaign_id IS NULL OR d.campaign_id = l.campaign_id)),
        ARRAY(SELECT c.created_at FROM contact_attempts c WHERE c.lead_id = l.id ORDER BY 1),
        ARRAY(
            SELECT c.created_at FROM contact_attempts c WHERE c.phone_e164 = l.phone_e164
            UNION ALL
            SELECT o.cleared_at FROM leads o
            WHERE o.phone_e164 = l.phone_e164 AND o.cleared_at IS NOT NULL AND o.id <> l.id
            ORDER BY 1
        )
    FROM leads l WHERE l.id = p_lead
$fn$
"""

# The lists an agent works, with their mix weights: the active campaigns of the agent's kind it
# belongs to, directly or through its team (as storage.campaigns.campaigns_of_agent), and for
# sales agents (p_general) the leads of no campaign, list 0.
AGENT_LISTS = """
CREATE FUNCTION lineup_agent_lists(p_agent integer, p_general boolean)
RETURNS TABLE (list integer, weight integer)
LANGUAGE sql STABLE AS $fn$
    SELECT c.id, c.mix_weight FROM campaigns c
    WHERE c.active AND c.kind = (SELECT u.role FROM users u WHERE u.id = p_agent)
      AND (c.id IN (SELECT ca.campaign_id FROM campaign_agents ca WHERE ca.user_id = p_agent)
           OR c.id IN (SELECT ct.campaign_id FROM campaign_teams ct JOIN users u ON u.team_id = ct.team_id
                       WHERE u.id = p_agent))
    UNION ALL SELECT 0, 1 WHERE p_general
$fn$
"""

# The claim, in dispatch order: the agent's due personal callback; a due callback for anyone on
# a list the agent works; a fresh lead (shuffled); a due retry (earliest first). Within the fresh
# and retry tiers the agent's lists are visited in a weighted random order (Efraimidis-Spirakis:
# random()^(1/weight), largest first), each list its owned leads before its shared ones; owned
# leads on lists the agent no longer works come last. Each probe reads the head of one partial
# index; SKIP LOCKED lets claimers pass each other.
#
# The found lead is held and marked cleared, then its number is locked and its facts read in a
# fresh snapshot (READ COMMITTED: each statement of a volatile function takes its own), so every
# check of a number sees the holds cleared before it. The claim commits (without waiting for the
# WAL flush: a hold lost in a database crash only frees the lead, and call.dial checks the hold);
# the caller decides on the facts with the contact policy and gives a refused lead back.
CLAIM = """
CREATE FUNCTION lineup_claim_next_lead(p_agent integer, p_lease_s double precision,
                                       p_general boolean, p_new_cap integer, p_day date)
RETURNS TABLE (id bigint, name text, phone_e164 text, area text, attributes jsonb, status text,
               owner_id integer, callback_at timestamptz, attempts integer, campaign_id integer,
               notes text, last_outcome text, on_dnc boolean, lead_times timestamptz[],
               phone_times timestamptz[], held_before boolean, fresh boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_id bigint;
    v_status text;
    v_phone text;
    v_list integer;
    v_lists integer[];
BEGIN
    SELECT l.id INTO v_id FROM leads l WHERE l.held_by = p_agent;
    IF v_id IS NOT NULL THEN  -- a reconnect or a second socket: the lead already held and cleared
        RETURN QUERY SELECT l.id, l.name::text, l.phone_e164::text, l.area::text, l.attributes,
            l.status::text, l.owner_id, l.callback_at, l.attempts, l.campaign_id, l.notes,
            l.last_outcome::text, false, '{}'::timestamptz[], '{}'::timestamptz[], true, false
            FROM leads l WHERE l.id = v_id;
        RETURN;
    END IF;

    SELECT coalesce(array_agg(a.list ORDER BY random() ^ (1.0 / a.weight) DESC), '{}') INTO v_lists
    FROM lineup_agent_lists(p_agent, p_general) a;

    SELECT l.id INTO v_id FROM leads l
    WHERE l.callback_agent_id = p_agent AND l.status = 'callback' AND l.held_by IS NULL
      AND l.deleted_at IS NULL AND l.next_attempt_at <= now()
    ORDER BY l.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED;

    IF v_id IS NULL THEN
        SELECT l.id INTO v_id FROM leads l
        WHERE l.status = 'callback' AND l.callback_agent_id IS NULL AND l.held_by IS NULL
          AND l.deleted_at IS NULL AND l.next_attempt_at <= now()
          AND (l.owner_id = p_agent OR coalesce(l.campaign_id, 0) = ANY (v_lists))
        ORDER BY l.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED;
    END IF;

    IF v_id IS NULL AND (p_new_cap IS NULL OR p_new_cap > coalesce(
            (SELECT d.new_leads FROM agent_days d WHERE d.agent_id = p_agent AND d.day = p_day), 0))
    THEN
        FOREACH v_list IN ARRAY v_lists LOOP
            SELECT l.id INTO v_id FROM leads l
            WHERE coalesce(l.owner_id, 0) = p_agent AND coalesce(l.campaign_id, 0) = v_list
              AND l.status = 'new'
              AND l.held_by IS NULL AND l.deleted_at IS NULL AND l.next_attempt_at <= now()
            ORDER BY l.shuffle LIMIT 1 FOR UPDATE SKIP LOCKED;
            EXIT WHEN v_id IS NOT NULL;
            SELECT l.id INTO v_id FROM leads l
            WHERE coalesce(l.owner_id, 0) = 0 AND coalesce(l.campaign_id, 0) = v_list AND l.status = 'new'
              AND l.held_by IS NULL AND l.deleted_at IS NULL AND l.next_attempt_at <= now()
            ORDER BY l.shuffle LIMIT 1 FOR UPDATE SKIP LOCKED;
            EXIT WHEN v_id IS NOT NULL;
        END LOOP;
        IF v_id IS NULL THEN
            SELECT l.id INTO v_id FROM leads l
            WHERE coalesce(l.owner_id, 0) = p_agent AND l.status = 'new' AND l.held_by IS NULL
              AND l.deleted_at IS NULL AND l.next_attempt_at <= now()
            ORDER BY coalesce(l.campaign_id, 0), l.shuffle LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
    END IF;

    IF v_id IS NULL THEN
        FOREACH v_list IN ARRAY v_lists LOOP
            SELECT l.id INTO v_id FROM leads l
            WHERE coalesce(l.owner_id, 0) = p_agent AND coalesce(l.campaign_id, 0) = v_list
              AND l.status = 'retry'
              AND l.held_by IS NULL AND l.deleted_at IS NULL AND l.next_attempt_at <= now()
              AND (l.callback_agent_id IS NULL OR l.callback_agent_id = p_agent)
            ORDER BY l.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED;
            EXIT WHEN v_id IS NOT NULL;
            SELECT l.id INTO v_id FROM leads l
            WHERE coalesce(l.owner_id, 0) = 0 AND coalesce(l.campaign_id, 0) = v_list AND l.status = 'retry'
              AND l.held_by IS NULL AND l.deleted_at IS NULL AND l.next_attempt_at <= now()
              AND (l.callback_agent_id IS NULL OR l.callback_agent_id = p_agent)
            ORDER BY l.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED;
            EXIT WHEN v_id IS NOT NULL;
        END LOOP;
        IF v_id IS NULL THEN
            SELECT l.id INTO v_id FROM leads l
            WHERE coalesce(l.owner_id, 0) = p_agent AND l.status = 'retry' AND l.held_by IS NULL
              AND l.deleted_at IS NULL AND l.next_attempt_at <= now()
              AND (l.callback_agent_id IS NULL OR l.callback_agent_id = p_agent)
            ORDER BY coalesce(l.campaign_id, 0), l.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
    END IF;

    IF v_id IS NULL THEN
        RETURN;
    END IF;
    UPDATE leads l SET held_by = p_agent, lease_expires_at = now() + make_interval(secs => p_lease_s),
        cleared_at = now()
    WHERE l.id = v_id RETURNING l.phone_e164, l.status INTO v_phone, v_status;
    PERFORM pg_advisory_xact_lock(hashtextextended(v_phone, 7));
    IF v_status = 'new' THEN
        INSERT INTO agent_days AS d (agent_id, day, new_leads) VALUES (p_agent, p_day, 1)
        ON CONFLICT (agent_id, day) DO UPDATE SET new_leads = d.new_leads + 1;
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT l.id, l.name::text, l.phone_e164::text, l.area::text, l.attributes,
        l.status::text, l.owner_id, l.callback_at, l.attempts, l.campaign_id, l.notes,
        l.last_outcome::text, f.on_dnc, f.lead_times, f.phone_times, false, v_status = 'new'
        FROM leads l, lineup_lead_facts(v_id) f WHERE l.id = v_id;
END
$fn$
"""

DOWNGRADE = """
DROP FUNCTION lineup_claim_next_lead(integer, double precision, boolean, integer, date);
DROP FUNCTION lineup_lead_facts(bigint);
DROP FUNCTION lineup_agent_lists(integer, boolean);
DROP TABLE agent_days;
ALTER TABLE campaigns DROP COLUMN mix_weight;
DROP INDEX leads_open_callbacks;
DROP INDEX leads_retry;
DROP INDEX leads_fresh;
CREATE INDEX leads_pool_claimable ON leads (next_attempt_at, id)
    WHERE owner_id IS NULL AND held_by IS NULL AND deleted_at IS NULL AND status <> 'closed';
CREATE INDEX leads_claimable ON leads (owner_id, next_attempt_at, id)
    WHERE owner_id IS NOT NULL AND held_by IS NULL AND deleted_at IS NULL AND status <> 'closed';
ALTER TABLE leads DROP COLUMN shuffle
"""


def upgrade() -> None:
    run_script(op, UPGRADE)
    for function in (LEAD_FACTS, AGENT_LISTS, CLAIM):  # bodies hold ";" + newline: not split
        op.execute(function)


def downgrade() -> None:
    run_script(op, DOWNGRADE)
