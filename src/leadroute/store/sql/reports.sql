-- Outcomes (leadroute.workflow.outcomes) and the reports that read them (leadroute.reports).
-- A lead's arrival is its lead.received event's time (the service's clock), and what was decided
-- about it is read from its lead.scored events: the log is the record the reports share.

-- name: outcome_lead_lock
-- The lead an outcome is recorded for, locked until the transaction ends, and when it arrived.
SELECT l.id, l.stage, l.score, l.owner_id,
       (SELECT min(e.received_at) FROM lead_events AS e
         WHERE e.lead_id = l.id AND e.kind = 'lead.received') AS arrived_at
  FROM leads AS l WHERE l.id = $1
   FOR NO KEY UPDATE OF l;

-- name: outcome_lead
-- A lead's outcomes in the order they happened.
SELECT id, occurred_at AS at, payload ->> 'outcome' AS outcome
  FROM lead_events WHERE lead_id = $1 AND kind = 'lead.outcome'
 ORDER BY occurred_at, id;

-- name: report_calibration_leads
-- Each lead that arrived in [$1, $2): the lead.scored payload that stands for it ($3 true: the
-- latest one at or before its first outcome, or before $2 without one; false: the first one) and
-- its outcomes in order (times, sequence numbers, kinds, amounts, currencies).
WITH arrived AS (
    SELECT e.lead_id FROM lead_events AS e
     WHERE e.kind = 'lead.received' AND e.received_at >= $1 AND e.received_at < $2
       AND NOT EXISTS (SELECT FROM leads AS l WHERE l.id = e.lead_id AND l.merged_into IS NOT NULL)
), outcomes AS (
    SELECT o.lead_id, min(o.occurred_at) AS first_at,
           array_agg(o.occurred_at ORDER BY o.occurred_at, o.id) AS ats,
           array_agg(o.id ORDER BY o.occurred_at, o.id) AS seqs,
           array_agg(o.payload ->> 'outcome' ORDER BY o.occurred_at, o.id) AS kinds,
           array_agg((o.payload ->> 'amount')::double precision ORDER BY o.occurred_at, o.id) AS amounts,
           array_agg(o.payload ->> 'currency' ORDER BY o.occurred_at, o.id) AS currencies
      FROM arrived AS a JOIN lead_events AS o ON o.lead_id = a.lead_id AND o.kind = 'lead.outcome'
     GROUP BY o.lead_id
)
SELECT a.lead_id, s.payload AS scored, o.ats, o.seqs, o.kinds, o.amounts, o.currencies
  FROM arrived AS a
  LEFT JOIN outcomes AS o ON o.lead_id = a.lead_id
  JOIN LATERAL (
      SELECT e.payload FROM lead_events AS e
       WHERE e.lead_id = a.lead_id AND e.kind = 'lead.scored'
         AND (NOT $3 OR e.received_at <= coalesce(o.first_at, $2))
       ORDER BY CASE WHEN $3 THEN -e.id ELSE e.id END
       LIMIT 1
  ) AS s ON true;

-- name: report_ruleset_sources
-- The stored rule files of the ruleset versions in $1 (a version may have legacy rows).
SELECT version, source FROM rulesets WHERE version = ANY($1::int[]);

-- name: report_arrivals
-- Each lead that arrived in [$1, $2), and the stage it was given at intake (a duplicate that
-- `leadroute leads dedupe` merged away is not a lead of its own: left out here and below).
SELECT r.received_at AS at, s.payload ->> 'stage' AS stage
  FROM lead_events AS r
  JOIN LATERAL (
      SELECT e.payload FROM lead_events AS e
       WHERE e.lead_id = r.lead_id AND e.kind = 'lead.scored' ORDER BY e.id LIMIT 1
  ) AS s ON true
 WHERE r.kind = 'lead.received' AND r.received_at >= $1 AND r.received_at < $2
   AND NOT EXISTS (SELECT FROM leads AS l WHERE l.id = r.lead_id AND l.merged_into IS NOT NULL);

-- name: report_picks
-- Placements with an owner in [$1, $2) made by a pool: the pool, owner, strategy and who was skipped.
SELECT received_at AS at, payload ->> 'pool' AS pool, payload ->> 'owner' AS owner,
       payload ->> 'strategy' AS strategy, coalesce(payload -> 'skipped', '[]'::jsonb) AS skipped
  FROM lead_events
 WHERE kind IN ('lead.assigned', 'lead.reassigned', 'lead.escalated')
   AND received_at >= $1 AND received_at < $2
   AND payload ->> 'owner' IS NOT NULL AND payload ->> 'pool' IS NOT NULL;

-- name: report_pools
-- Every pool: its strategy, members and their weights (today's).
SELECT p.id, p.strategy,
       coalesce(jsonb_object_agg(o.id, o.weight) FILTER (WHERE o.id IS NOT NULL), '{}'::jsonb) AS weights
  FROM pools AS p
  LEFT JOIN pool_members AS m ON m.pool_id = p.id
  LEFT JOIN owners AS o ON o.id = m.owner_id
 GROUP BY p.id, p.strategy;

-- name: report_assign_times
-- For each lead that arrived in [$1, $2): when, and when it first had an owner (null: never).
SELECT r.received_at AS arrived,
       (SELECT min(a.created_at) FROM assignments AS a
         WHERE a.lead_id = r.lead_id AND a.owner_id IS NOT NULL) AS assigned
  FROM lead_events AS r
 WHERE r.kind = 'lead.received' AND r.received_at >= $1 AND r.received_at < $2
   AND NOT EXISTS (SELECT FROM leads AS l WHERE l.id = r.lead_id AND l.merged_into IS NOT NULL);

-- name: report_accept_times
-- Seconds from assignment to acceptance, for the assignments accepted in [$1, $2).
SELECT extract(epoch FROM accepted_at - created_at)::double precision AS seconds
  FROM assignments WHERE accepted_at >= $1 AND accepted_at < $2;

-- name: report_breaches
-- SLA breaches in [$1, $2): when, and whose.
SELECT received_at AS at, payload ->> 'owner' AS owner
  FROM lead_events WHERE kind = 'lead.sla_breached' AND received_at >= $1 AND received_at < $2;

-- name: report_queues
-- Leads without an owner now, per queue (and the pool they wait for), with the oldest's time.
SELECT coalesce(queue, status) AS queue, CASE WHEN waiting THEN pool_id END AS pool,
       count(*) AS leads, min(created_at) AS oldest
  FROM assignments
 WHERE ended_at IS NULL AND owner_id IS NULL AND status IN ('unassigned', 'pending')
 GROUP BY 1, 2
 ORDER BY leads DESC, queue;

-- name: report_deliveries
-- Per outbound endpoint: attempts in [$1, $2), the failed ones, the dead ones, and how many
-- deliveries are being retried now.
SELECT e.id AS endpoint, e.kind, count(t.id) AS attempts,
       count(t.id) FILTER (WHERE t.outcome IN ('failed', 'dead', 'gone')) AS failed,
       count(t.id) FILTER (WHERE t.outcome = 'dead') AS dead,
       (SELECT count(*) FROM outbound_deliveries AS d
         WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.attempts > 0) AS retrying
  FROM outbound_endpoints AS e
  LEFT JOIN outbound_attempts AS t ON t.endpoint_id = e.id AND t.at >= $1 AND t.at < $2
 GROUP BY e.id, e.kind
 ORDER BY e.id;
