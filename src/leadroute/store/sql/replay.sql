-- Replay: stored leads and their activities. Read-only, every one of them.
-- Simulate reads pools and owners with routing's own queries (routing.sql).

-- name: replay_lead_count
-- How many stored leads a replay would read: created at or after $1 (NULL: all), at most $2 (NULL: no limit).
-- A duplicate merged into another lead (leads dedupe) is that lead's: never replayed on its own.
SELECT count(*) FROM (
    SELECT 1 FROM leads WHERE ($1::timestamptz IS NULL OR created_at >= $1) AND merged_into IS NULL
     LIMIT $2::bigint
) AS chosen;

-- name: replay_leads
-- Stored leads to replay, newest first: created at or after $1 (NULL: all), at most $2 (NULL: no limit).
SELECT id, stage, normalized FROM leads
 WHERE ($1::timestamptz IS NULL OR created_at >= $1) AND merged_into IS NULL
 ORDER BY created_at DESC, id
 LIMIT $2::bigint;

-- name: replay_lead
-- One stored lead (a simulation of a stored lead).
SELECT id, stage, normalized FROM leads WHERE id = $1;

-- name: replay_activities
-- The activity events of the given leads, each lead's oldest first.
SELECT lead_id, occurred_at, payload FROM lead_events
 WHERE lead_id = ANY($1::uuid[]) AND kind = 'activity.recorded'
 ORDER BY lead_id, occurred_at, id;
