-- Activity events (POST /v1/events) and requalifying stored leads (workflow/events.py, workflow/rescore.py).

-- name: lead_lock
-- A lead by id, locked until the transaction ends (events of one lead apply one at a time).
SELECT id, email, company_domain, stage, score, status, owner_id, pool_id, normalized
  FROM leads WHERE id = $1 FOR UPDATE;

-- name: lead_lock_by_email
-- The newest lead with this (normalized) email, locked until the transaction ends.
SELECT id, email, company_domain, stage, score, status, owner_id, pool_id, normalized
  FROM leads WHERE email = $1 ORDER BY created_at DESC, id LIMIT 1 FOR UPDATE;

-- name: lead_activities
-- A lead's activity events, oldest first: what rescoring with decay reads.
SELECT occurred_at, payload FROM lead_events
 WHERE lead_id = $1 AND kind = 'activity.recorded' ORDER BY occurred_at, id;

-- name: lead_rescored
-- A lead's new score and stage, and when decay should requalify it next (NULL: never).
UPDATE leads SET score = $2, stage = $3, rescore_at = $4, updated_at = now() WHERE id = $1;

-- name: lead_rescore_claim
-- The lead whose decay check is most overdue at $1, locked; leads another transaction holds are skipped.
SELECT id, email, company_domain, stage, score, status, owner_id, pool_id, normalized
  FROM leads WHERE rescore_at <= $1 AND status <> 'closed'
 ORDER BY rescore_at
   FOR UPDATE SKIP LOCKED
 LIMIT 1;

-- name: lead_rescore_later
-- The stage held: check again at $2 (NULL: the decaying points no longer count).
UPDATE leads SET rescore_at = $2 WHERE id = $1;

-- name: lead_received_event
-- The lead.received event of a lead (what a decision made by time alone points at).
SELECT id FROM lead_events WHERE lead_id = $1 AND kind = 'lead.received' ORDER BY id LIMIT 1;
