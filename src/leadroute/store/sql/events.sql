-- Activity events: POST /v1/events (workflow/events.py).

-- name: lead_lock
-- A lead by id, locked until the transaction ends (events of one lead apply one at a time).
SELECT id, email, stage, score, status, owner_id, pool_id, normalized
  FROM leads WHERE id = $1 FOR UPDATE;

-- name: lead_lock_by_email
-- The newest lead with this (normalized) email, locked until the transaction ends.
SELECT id, email, stage, score, status, owner_id, pool_id, normalized
  FROM leads WHERE email = $1 ORDER BY created_at DESC, id LIMIT 1 FOR UPDATE;

-- name: lead_activities
-- A lead's activity events, oldest first: what rescoring with decay reads.
SELECT occurred_at, payload FROM lead_events
 WHERE lead_id = $1 AND kind = 'activity' ORDER BY occurred_at, id;

-- name: lead_rescored
-- A lead's new score and stage after an event.
UPDATE leads SET score = $2, stage = $3, updated_at = now() WHERE id = $1;
