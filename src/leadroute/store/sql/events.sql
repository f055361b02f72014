-- Activity events (POST /v1/events) and requalifying stored leads (workflow/events.py, workflow/rescore.py).

-- name: lead_lock
-- A lead by id, locked until the transaction ends (events of one lead apply one at a time): the
-- UPDATE takes the row lock and notes that the person was heard from at $2 (re-engagement counts
-- from there) in the same round trip.
UPDATE leads SET last_seen_at = greatest(last_seen_at, $2) WHERE id = $1
RETURNING id, email, company_domain, stage, score, status, owner_id, pool_id, normalized;

-- name: lead_lock_by_email
-- The same for the lead an activity posted by (normalized) email $1 attaches to. Of several leads
-- with that email (duplicates from before matching at intake, or a re-engaged person's old and new
-- lead), the same one intake would merge into (leadroute.intake.identity): a lead merged away
-- stands for the lead it was merged into; then live (not closed, seen since $3, NULL: no window)
-- first, with an owner first, the oldest, the smallest id.
UPDATE leads SET last_seen_at = greatest(last_seen_at, $2)
 WHERE id = (
       SELECT coalesce(merged_into, id) FROM leads
        WHERE email = $1
        ORDER BY merged_into IS NOT NULL,
                 status <> 'closed' AND ($3::timestamptz IS NULL OR last_seen_at >= $3) DESC,
                 owner_id IS NULL, created_at, id
        LIMIT 1)
RETURNING id, email, company_domain, stage, score, status, owner_id, pool_id, normalized;

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
