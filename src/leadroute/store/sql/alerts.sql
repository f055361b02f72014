-- Alerts for people (leadroute.outbound._alerts): who to tell, and how long a queue is.

-- name: alert_owner
-- An owner's name, email and Slack member id (NULL: no such owner).
SELECT id, name, email, slack_user_id FROM owners WHERE id = $1;

-- name: alert_breached_pool
-- The pool lead $1 was placed in by its latest placement before event $2, with its escalate_to.
SELECT p.id, p.escalate_to
  FROM lead_events AS e JOIN pools AS p ON p.id = e.payload ->> 'pool'
 WHERE e.lead_id = $1 AND e.id < $2
   AND e.kind IN ('lead.assigned', 'lead.reassigned', 'lead.escalated')
 ORDER BY e.id DESC
 LIMIT 1;

-- name: alert_queue_length
-- Leads waiting in pool $1's queue now.
SELECT count(*) FROM assignments WHERE ended_at IS NULL AND waiting AND pool_id = $1;

-- name: alert_queue_claim
-- Endpoint $1 announces pool $2's queue at $3; returns a row only if it had not announced it yet.
INSERT INTO outbound_queue_alerts (endpoint_id, pool_id, alerted_at) VALUES ($1, $2, $3)
ON CONFLICT (endpoint_id, pool_id) DO NOTHING
RETURNING pool_id;

-- name: alert_queue_rearm
-- Pool $2's queue is short again: endpoint $1 announces its next crossing.
DELETE FROM outbound_queue_alerts WHERE endpoint_id = $1 AND pool_id = $2;
