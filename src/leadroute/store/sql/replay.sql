-- Dry runs: simulate (one lead) and replay (stored leads). Read-only, every one of them.

-- name: replay_lead_count
-- How many stored leads a replay would read: created at or after $1 (NULL: all), at most $2 (NULL: no limit).
SELECT count(*) FROM (
    SELECT 1 FROM leads WHERE $1::timestamptz IS NULL OR created_at >= $1 LIMIT $2::bigint
) AS chosen;

-- name: replay_leads
-- Stored leads to replay, newest first: created at or after $1 (NULL: all), at most $2 (NULL: no limit).
SELECT id, normalized FROM leads
 WHERE $1::timestamptz IS NULL OR created_at >= $1
 ORDER BY created_at DESC, id
 LIMIT $2::bigint;

-- name: replay_activities
-- The activity events of the given leads, each lead's oldest first.
SELECT lead_id, occurred_at, payload FROM lead_events
 WHERE lead_id = ANY($1::uuid[]) AND kind = 'activity'
 ORDER BY lead_id, occurred_at, id;

-- name: replay_ruleset_source
-- The stored source of a ruleset version (the newest row if a version was recorded twice).
SELECT id, version, sha256, source, path FROM rulesets WHERE version = $1 ORDER BY id DESC LIMIT 1;

-- name: simulate_pools
-- Pools by id with their fallback and members (each with its active flag), for a dry run's answer.
SELECT p.id, p.strategy, p.fallback,
       coalesce(json_agg(json_build_object('id', o.id, 'active', o.active) ORDER BY o.id COLLATE "C")
                FILTER (WHERE o.id IS NOT NULL), '[]') AS members
  FROM pools p
  LEFT JOIN pool_members m ON m.pool_id = p.id
  LEFT JOIN owners o ON o.id = m.owner_id
 WHERE p.id = ANY($1::text[])
 GROUP BY p.id;
