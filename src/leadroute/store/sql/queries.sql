-- name: owner_upsert
-- Create an owner or update its name, email and active flag; returns the row.
INSERT INTO owners (id, name, email, active)
VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE
   SET name = EXCLUDED.name, email = EXCLUDED.email, active = EXCLUDED.active,
       updated_at = CASE WHEN (owners.name, owners.email, owners.active)
                              IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.email, EXCLUDED.active)
                         THEN now() ELSE owners.updated_at END
RETURNING id, name, email, active, created_at, updated_at;

-- name: owner_get
-- One owner by id.
SELECT id, name, email, active, created_at, updated_at FROM owners WHERE id = $1;

-- name: owner_list
-- Every owner, by id.
SELECT id, name, email, active, created_at, updated_at FROM owners ORDER BY id;

-- name: owner_update
-- Change some of an owner's fields (NULL keeps the current value).
UPDATE owners
   SET name = coalesce($2, name), email = coalesce($3, email), active = coalesce($4, active),
       updated_at = now()
 WHERE id = $1
RETURNING id, name, email, active, created_at, updated_at;

-- name: owners_missing
-- Which of the given owner ids do not exist.
SELECT id FROM unnest($1::text[]) AS id WHERE id NOT IN (SELECT id FROM owners);

-- name: pool_upsert
-- Create a pool or update its strategy and fallback.
INSERT INTO pools (id, strategy, fallback)
VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE
   SET strategy = EXCLUDED.strategy, fallback = EXCLUDED.fallback,
       updated_at = CASE WHEN (pools.strategy, pools.fallback)
                              IS DISTINCT FROM (EXCLUDED.strategy, EXCLUDED.fallback)
                         THEN now() ELSE pools.updated_at END
RETURNING id;

-- name: pool_members_set
-- Replace a pool's members with exactly the given owner ids.
WITH gone AS (
    DELETE FROM pool_members WHERE pool_id = $1 AND owner_id <> ALL ($2::text[])
)
INSERT INTO pool_members (pool_id, owner_id)
SELECT $1, unnest($2::text[])
ON CONFLICT DO NOTHING;

-- name: pool_list
-- Every pool with its members' ids.
SELECT p.id, p.strategy, p.fallback,
       coalesce(array_agg(m.owner_id ORDER BY m.owner_id COLLATE "C") FILTER (WHERE m.owner_id IS NOT NULL),
                '{}') AS members
  FROM pools p LEFT JOIN pool_members m ON m.pool_id = p.id
 WHERE $1::text IS NULL OR p.id = $1
 GROUP BY p.id
 ORDER BY p.id;

-- name: pool_ids
-- The ids of every pool.
SELECT id FROM pools;

-- name: pool_roster
-- A pool's members with what eligibility needs, in a fixed order (byte order of ids).
SELECT o.id, o.active
  FROM pool_members m JOIN owners o ON o.id = m.owner_id
 WHERE m.pool_id = $1
 ORDER BY o.id COLLATE "C";

-- name: pool_exists
-- The pool's fallback, when the pool exists.
SELECT fallback FROM pools WHERE id = $1;

-- name: ruleset_record
-- Record a loaded ruleset (idempotent on version + checksum); returns its id.
WITH ins AS (
    INSERT INTO rulesets (version, sha256, description, source, path)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (version, sha256) DO NOTHING
    RETURNING id
)
SELECT id FROM ins
UNION ALL
SELECT id FROM rulesets WHERE version = $1 AND sha256 = $2
LIMIT 1;

-- name: idempotency_claim
-- Claim a key; returns nothing when another request holds or held it (waits for it to finish).
INSERT INTO idempotency_keys (scope, key, fingerprint)
VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING key;

-- name: idempotency_get
-- The stored fingerprint and response of a key.
SELECT fingerprint, response FROM idempotency_keys WHERE scope = $1 AND key = $2;

-- name: idempotency_complete
-- Store the response given for a claimed key.
UPDATE idempotency_keys SET lead_id = $3, response = $4 WHERE scope = $1 AND key = $2;

-- name: lead_insert
-- A new lead with its current stage, score and owner.
INSERT INTO leads (id, email, company_domain, stage, score, status, owner_id, pool_id, normalized)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: event_insert
-- One event of a lead; returns its id.
INSERT INTO lead_events (lead_id, kind, idempotency_key, occurred_at, payload)
VALUES ($1, $2, $3, $4, $5)
RETURNING id;

-- name: decision_insert
-- One decision about a lead; returns its id.
INSERT INTO decisions (lead_id, event_id, ruleset_id, ruleset_version, ruleset_sha256, score, groups,
                       matched, stage, qualification_rule, routing_rule, pool_id, owner_id, explanation)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING id;

-- name: assignment_insert
-- A lead's new current assignment (to an owner, or to a queue with the reason).
INSERT INTO assignments (lead_id, decision_id, owner_id, pool_id, status, queue, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: lead_get
-- One lead.
SELECT id, created_at, updated_at, stage, score, status, owner_id, pool_id, normalized
  FROM leads WHERE id = $1;

-- name: lead_events
-- A lead's events, oldest first.
SELECT id, kind, received_at, occurred_at FROM lead_events WHERE lead_id = $1 ORDER BY id;

-- name: lead_assignments
-- A lead's assignments, oldest first.
SELECT owner_id, pool_id, status, queue, reason, created_at, ended_at
  FROM assignments WHERE lead_id = $1 ORDER BY id;

-- name: lead_decisions
-- A lead's decisions, oldest first.
SELECT id, decided_at, ruleset_version, ruleset_sha256, score, groups, matched, stage,
       qualification_rule, routing_rule, pool_id, owner_id, explanation
  FROM decisions WHERE lead_id = $1 ORDER BY id;
