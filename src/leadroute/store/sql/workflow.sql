-- The lead workflow (package E): SLA timers, accept / reassign / close, and the history reads.
-- Every change locks the lead row first (workflow_lead_lock), then touches its assignments and
-- timers, so requests and schedulers on one lead apply one after the other.

-- name: sla_timer_insert
-- Start an SLA timer for a lead's current assignment; returns the row.
INSERT INTO sla_timers (lead_id, assignment_id, owner_id, pool_id, minutes, on_breach, business_hours,
                        started_at, due_at, breaches, warn_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *;

-- name: sla_timers_cancel
-- Stop a lead's running timer (accepted, moved, closed); returns the ids stopped.
UPDATE sla_timers SET status = 'cancelled', resolution = $2, resolved_at = $3
 WHERE lead_id = $1 AND status = 'pending'
RETURNING id;

-- name: sla_timer_claim
-- The most overdue pending timer not in $2, locked; rows another instance holds are skipped.
SELECT * FROM sla_timers
 WHERE status = 'pending' AND due_at <= $1 AND id <> ALL ($2::bigint[])
 ORDER BY due_at, id
   FOR UPDATE SKIP LOCKED
 LIMIT 1;

-- name: sla_warning_claim
-- The earliest running timer whose warning is due at $1 and not given, whose deadline is still
-- ahead (past it, the breach speaks instead), not in $2, locked; rows held elsewhere are skipped.
SELECT * FROM sla_timers
 WHERE status = 'pending' AND warned_at IS NULL AND warn_at IS NOT NULL AND warn_at <= $1 AND due_at > $1
   AND id <> ALL ($2::bigint[])
 ORDER BY warn_at, id
   FOR UPDATE SKIP LOCKED
 LIMIT 1;

-- name: sla_warning_done
-- Timer $1 warned at $2 (or its warning was found moot): it never warns again.
UPDATE sla_timers SET warned_at = $2 WHERE id = $1;

-- name: sla_timer_resolve
-- A claimed timer fired (resolution 'breached') or turned out stale ('cancelled').
UPDATE sla_timers SET status = $2, resolution = $3, resolved_at = $4 WHERE id = $1;

-- name: sla_timer_failed
-- Firing failed at $3: count the attempt, remember the error type, put the timer off by 1, 2, 4 ...
-- minutes (at most $4); it stays pending.
UPDATE sla_timers
   SET attempts = attempts + 1, last_error = $2,
       due_at = $3::timestamptz + make_interval(mins => least(power(2, least(attempts, 20))::int, $4::int))
 WHERE id = $1 AND status = 'pending'
RETURNING attempts;

-- name: sla_breached_owners
-- Every owner who let this lead's SLA run out (a reassignment never goes back to them).
SELECT DISTINCT owner_id FROM sla_timers WHERE lead_id = $1 AND status = 'fired';

-- name: sla_lead_timers
-- A lead's timers, oldest first.
SELECT id, assignment_id, owner_id, pool_id, minutes, on_breach, business_hours, started_at, due_at,
       breaches, status, resolution, resolved_at
  FROM sla_timers WHERE lead_id = $1 ORDER BY id;

-- name: sla_lead_latest
-- A lead's newest timer (its SLA terms carry over to the next owner).
SELECT * FROM sla_timers WHERE lead_id = $1 ORDER BY id DESC LIMIT 1;

-- name: workflow_lead_lock
-- A lead's workflow fields, locked until the transaction ends.
SELECT id, status, owner_id, pool_id, company_domain FROM leads WHERE id = $1 FOR UPDATE;

-- name: workflow_lead_try_lock
-- The same, but nothing when another transaction holds the lead (the scheduler comes back later).
SELECT id, status, owner_id, pool_id, company_domain FROM leads WHERE id = $1 FOR UPDATE SKIP LOCKED;

-- name: workflow_current
-- A lead's current assignment (the lead row is locked by the caller).
SELECT id, owner_id, pool_id, status, queue, reason, rule, created_at, accepted_at
  FROM assignments WHERE lead_id = $1 AND ended_at IS NULL;

-- name: workflow_assignment_state
-- Move the current assignment to a new state (accepted, closed) without ending it.
UPDATE assignments SET status = $2, accepted_at = coalesce($3, accepted_at) WHERE id = $1;

-- name: workflow_lead_set
-- The lead's workflow state, owner and pool.
UPDATE leads SET status = $2, owner_id = $3, pool_id = $4, updated_at = $5 WHERE id = $1;

-- name: workflow_lead_status
-- Only the lead's workflow state.
UPDATE leads SET status = $2, updated_at = $3 WHERE id = $1;

-- name: workflow_targets
-- The routing targets of the lead's latest decision (a reassignment tries them again).
SELECT explanation -> 'routing' -> 'targets' AS targets
  FROM decisions WHERE lead_id = $1 ORDER BY id DESC LIMIT 1;

-- name: workflow_assignments
-- Every assignment of a lead with its workflow fields, oldest first.
SELECT id, owner_id, pool_id, status, queue, reason, rule, created_at, accepted_at, ended_at
  FROM assignments WHERE lead_id = $1 ORDER BY id;

-- name: workflow_assignment_insert
-- A lead's new current assignment: owner or queue, the claim's sequence number, the placing rule,
-- and whether a queued lead waits for its pool (the queue drain offers it again).
INSERT INTO assignments (lead_id, decision_id, owner_id, pool_id, status, queue, reason, created_at,
                         claim_seq, rule, waiting)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id;

-- name: workflow_lead_closed
-- Close a lead: final, so decay no longer requalifies it.
UPDATE leads SET status = 'closed', rescore_at = NULL, updated_at = $2 WHERE id = $1;

-- name: drain_queues
-- The queues with waiting leads ('' for pending ones, which have no pool yet), the one whose
-- oldest lead has waited longest first.
SELECT coalesce(pool_id, '') AS queue FROM assignments
 WHERE ended_at IS NULL AND waiting
 GROUP BY 1
 ORDER BY min(created_at);

-- name: drain_claim
-- The lead that has waited longest in queue $1 ('' for pending leads), locked with its current
-- assignment. Called under the queue's drain lock; a lead a request is changing right now is
-- waited for, and skipped if it is no longer waiting once that request committed.
SELECT l.id, l.status, l.owner_id, l.pool_id, l.company_domain,
       a.id AS assignment_id, a.owner_id AS assignment_owner, a.pool_id AS assignment_pool,
       a.status AS assignment_status, a.created_at AS queued_at, a.rule
  FROM assignments AS a JOIN leads AS l ON l.id = a.lead_id
 WHERE a.ended_at IS NULL AND a.waiting AND coalesce(a.pool_id, '') = $1
   AND l.status IN ('unassigned', 'pending')
 ORDER BY a.created_at, a.id
   FOR UPDATE OF l
 LIMIT 1;

-- name: drain_pool_lock
-- Drain pool $1 in this transaction only if no other transaction does (false: skip it this pass).
SELECT pg_try_advisory_xact_lock(x'1EAD0006'::int, hashtext($1));

-- name: lead_former_owners
-- Every owner a lead had before its current assignment.
SELECT DISTINCT owner_id FROM assignments WHERE lead_id = $1 AND owner_id IS NOT NULL AND ended_at IS NOT NULL;

-- name: sla_timers_lag
-- Seconds the oldest due, still pending SLA timer is late (0: none is due).
SELECT coalesce(extract(epoch FROM $1::timestamptz - min(due_at)), 0)::float8
  FROM sla_timers WHERE status = 'pending' AND due_at <= $1;

-- name: queue_depth
-- Leads waiting in queues for an owner of their pool (or pending routing).
SELECT count(*) FROM assignments WHERE ended_at IS NULL AND waiting;
