-- Routing (docs/routing.md): owners and pools with everything eligibility needs, the account-owner map,
-- the assignment record, and the reads a Redis rebuild is made of.

-- name: routing_owner_put
-- Create an owner or replace every field; updated_at moves only when something changed.
INSERT INTO owners (id, name, email, active, timezone, working_hours, out_of_office, max_open,
                    max_per_day, weight, skills, crm_user_id, slack_user_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (id) DO UPDATE
   SET name = EXCLUDED.name, email = EXCLUDED.email, active = EXCLUDED.active,
       timezone = EXCLUDED.timezone, working_hours = EXCLUDED.working_hours,
       out_of_office = EXCLUDED.out_of_office, max_open = EXCLUDED.max_open,
       max_per_day = EXCLUDED.max_per_day, weight = EXCLUDED.weight, skills = EXCLUDED.skills,
       crm_user_id = EXCLUDED.crm_user_id, slack_user_id = EXCLUDED.slack_user_id,
       updated_at = CASE WHEN (owners.name, owners.email, owners.active, owners.timezone,
                               owners.working_hours, owners.out_of_office, owners.max_open,
                               owners.max_per_day, owners.weight, owners.skills, owners.crm_user_id,
                               owners.slack_user_id)
                              IS DISTINCT FROM
                              (EXCLUDED.name, EXCLUDED.email, EXCLUDED.active, EXCLUDED.timezone,
                               EXCLUDED.working_hours, EXCLUDED.out_of_office, EXCLUDED.max_open,
                               EXCLUDED.max_per_day, EXCLUDED.weight, EXCLUDED.skills,
                               EXCLUDED.crm_user_id, EXCLUDED.slack_user_id)
                         THEN now() ELSE owners.updated_at END
RETURNING *;

-- name: routing_owner_get
-- One owner, every column.
SELECT * FROM owners WHERE id = $1;

-- name: routing_owner_list
-- Every owner, every column, by id.
SELECT * FROM owners ORDER BY id COLLATE "C";

-- name: routing_owner_lock
-- One owner, locked for a read-modify-write (PATCH).
SELECT * FROM owners WHERE id = $1 FOR UPDATE;

-- name: routing_pool_put
-- Create a pool or replace its settings; updated_at moves only when something changed.
INSERT INTO pools (id, strategy, fallback, required_skill, allow_off_hours, sla_business_hours, escalate_to)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE
   SET strategy = EXCLUDED.strategy, fallback = EXCLUDED.fallback,
       required_skill = EXCLUDED.required_skill, allow_off_hours = EXCLUDED.allow_off_hours,
       sla_business_hours = EXCLUDED.sla_business_hours, escalate_to = EXCLUDED.escalate_to,
       updated_at = CASE WHEN (pools.strategy, pools.fallback, pools.required_skill,
                               pools.allow_off_hours, pools.sla_business_hours, pools.escalate_to)
                              IS DISTINCT FROM
                              (EXCLUDED.strategy, EXCLUDED.fallback, EXCLUDED.required_skill,
                               EXCLUDED.allow_off_hours, EXCLUDED.sla_business_hours,
                               EXCLUDED.escalate_to)
                         THEN now() ELSE pools.updated_at END
RETURNING id;

-- name: routing_pool_list
-- Every pool (or the one named) with its settings and members' ids.
SELECT p.id, p.strategy, p.fallback, p.required_skill, p.allow_off_hours, p.sla_business_hours,
       p.escalate_to,
       coalesce(array_agg(m.owner_id ORDER BY m.owner_id COLLATE "C") FILTER (WHERE m.owner_id IS NOT NULL),
                '{}') AS members
  FROM pools p LEFT JOIN pool_members m ON m.pool_id = p.id
 WHERE $1::text IS NULL OR p.id = $1
 GROUP BY p.id
 ORDER BY p.id COLLATE "C";

-- name: routing_pool
-- A pool's routing settings.
SELECT id, strategy, fallback, required_skill, allow_off_hours, sla_business_hours, escalate_to
  FROM pools WHERE id = $1;

-- name: routing_roster
-- A pool's members with every field eligibility needs, in a fixed order (byte order of ids).
SELECT o.*
  FROM pool_members m JOIN owners o ON o.id = m.owner_id
 WHERE m.pool_id = $1
 ORDER BY o.id COLLATE "C";

-- name: routing_account_owner
-- The recorded account owner of a company domain.
SELECT owner_id FROM account_owners WHERE company_domain = $1;

-- name: routing_account_owner_set
-- Record the account owner of a domain: the first assignment sets it; a later one takes it over
-- only when the recorded owner is inactive. Returns the owner when the row was written.
INSERT INTO account_owners (company_domain, owner_id, lead_id, updated_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (company_domain) DO UPDATE
   SET owner_id = EXCLUDED.owner_id, lead_id = EXCLUDED.lead_id, updated_at = EXCLUDED.updated_at
 WHERE account_owners.owner_id <> EXCLUDED.owner_id
   AND NOT (SELECT active FROM owners WHERE id = account_owners.owner_id)
RETURNING owner_id;

-- name: routing_assignment_insert
-- A lead's new current assignment, with the instant (from the service clock) and claim sequence.
INSERT INTO assignments (lead_id, decision_id, owner_id, pool_id, status, queue, reason, created_at,
                         claim_seq, rule)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id;

-- name: routing_assignment_current
-- A lead's current assignment, locked (the row a reassignment or close ends).
SELECT id, owner_id, pool_id, status FROM assignments
 WHERE lead_id = $1 AND ended_at IS NULL
   FOR UPDATE;

-- name: routing_assignment_end
-- End an assignment (moved away or replaced).
UPDATE assignments SET ended_at = $2 WHERE id = $1;

-- name: routing_lead_placed
-- Point a lead at its new owner (or queue).
UPDATE leads SET owner_id = $2, pool_id = $3, status = $4, updated_at = $5 WHERE id = $1;

-- name: rebuild_open
-- Open leads per owner: current assignments to an owner of leads that are not closed.
SELECT a.owner_id, count(*) AS n
  FROM assignments a JOIN leads l ON l.id = a.lead_id
 WHERE a.ended_at IS NULL AND a.owner_id IS NOT NULL
   AND l.status <> 'closed' AND a.status <> 'closed'
 GROUP BY a.owner_id;

-- name: rebuild_daily
-- Leads assigned per owner on the owner's local date of $1, with that date.
SELECT o.id AS owner_id, o.timezone, count(a.id) AS n
  FROM owners o JOIN assignments a ON a.owner_id = o.id
 WHERE a.created_at > $1::timestamptz - interval '2 days'
   AND (a.created_at AT TIME ZONE o.timezone)::date = ($1::timestamptz AT TIME ZONE o.timezone)::date
 GROUP BY o.id, o.timezone;

-- name: rebuild_last
-- Each owner's last claim sequence number, and the largest overall.
SELECT owner_id, max(claim_seq) AS seq FROM assignments
 WHERE owner_id IS NOT NULL AND claim_seq IS NOT NULL
 GROUP BY owner_id;

-- name: rebuild_cursors
-- Each pool's last assigned owner (round-robin cursor), by claim order.
SELECT DISTINCT ON (pool_id) pool_id, owner_id FROM assignments
 WHERE owner_id IS NOT NULL AND pool_id IS NOT NULL
 ORDER BY pool_id, claim_seq DESC NULLS LAST, id DESC;

-- name: rebuild_accounts
-- The whole account-owner map.
SELECT company_domain, owner_id FROM account_owners;

-- name: routing_escalation_target_exists
-- Whether an id names an owner or a pool (a pool's escalate_to).
SELECT EXISTS (SELECT 1 FROM owners WHERE id = $1) OR EXISTS (SELECT 1 FROM pools WHERE id = $1);

-- name: routing_pool_ensure
-- Create a pool with the default settings unless it exists (CSV imports name pools by id only).
-- Returns the id when the pool was created (its fallback is then checked for a loop).
INSERT INTO pools (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING id;

-- name: routing_pool_fallbacks
-- Every pool's fallback (another pool's id, or a queue name): the graph a save checks for loops.
SELECT id, fallback FROM pools;

-- name: routing_pool_members_add
-- Add owners to a pool, keeping its other members.
INSERT INTO pool_members (pool_id, owner_id)
SELECT $1, unnest($2::text[])
ON CONFLICT DO NOTHING;

-- name: routing_lock_config
-- Take the routing lock shared for the rest of the transaction, and read the routing
-- configuration's version (0 when unknown: reload).
SELECT pg_advisory_xact_lock_shared($1), coalesce((SELECT version FROM routing_config), 0) AS version;

-- name: routing_config_pools
-- Every pool's routing settings.
SELECT id, strategy, fallback, required_skill, allow_off_hours, sla_business_hours, escalate_to FROM pools;

-- name: routing_config_members
-- Every pool's members, in routing order (byte order of ids).
SELECT pool_id, owner_id FROM pool_members ORDER BY pool_id, owner_id COLLATE "C";
