-- name: search_leads
-- Leads matching the console's filters, newest first, one page past the cursor ($1 created_at,
-- $2 id; NULL: from the newest). {where} is a conjunction of the fixed conditions of
-- store/lead_search.py (each binds its own parameter); $3 is the page size plus one.
SELECT l.id, l.created_at, l.email, l.company_domain, l.normalized->>'company' AS company,
       l.stage, l.score, l.status, l.owner_id, l.pool_id,
       a.queue, a.waiting, a.created_at AS placed_at
  FROM leads AS l
  LEFT JOIN assignments AS a ON a.lead_id = l.id AND a.ended_at IS NULL
 WHERE ($1::timestamptz IS NULL OR (l.created_at, l.id) < ($1, $2::uuid))
   {where}
 ORDER BY l.created_at DESC, l.id DESC
 LIMIT $3;

-- name: queued_leads
-- The leads waiting in a queue now (for an owner of their pool, or for routing), the one that
-- has waited longest first (assignments_waiting_idx); $1 the page size plus one, $2 the offset.
SELECT l.id, l.email, l.company_domain, l.normalized->>'company' AS company, l.stage, l.score,
       l.status, a.pool_id, a.queue, a.reason, a.created_at AS queued_at
  FROM assignments AS a JOIN leads AS l ON l.id = a.lead_id
 WHERE a.ended_at IS NULL AND a.waiting
 ORDER BY a.created_at, a.id
 LIMIT $1 OFFSET $2;

-- name: queued_counts
-- How many leads wait in each queue now, and since when the oldest has waited.
SELECT coalesce(pool_id, '') AS pool_id, count(*) AS waiting, min(created_at) AS oldest
  FROM assignments
 WHERE ended_at IS NULL AND waiting
 GROUP BY 1
 ORDER BY 3;

-- name: lead_deliveries
-- Every outbound delivery of lead $1's events (webhooks, CRM write-back) with its state.
SELECT d.id, d.endpoint_id, d.event_seq, d.event_type, d.status, d.attempts, d.last_status,
       d.last_error, d.created_at, d.done_at, d.next_at
  FROM outbound_deliveries AS d
 WHERE d.lead_id = $1
 ORDER BY d.event_seq, d.endpoint_id;
