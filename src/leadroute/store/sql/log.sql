-- The lead's event log (leadroute.workflow.log): appended in the changing transaction, never changed.

-- name: log_append
-- One event of a lead; returns its sequence number.
INSERT INTO lead_events (lead_id, kind, received_at, occurred_at, idempotency_key, actor, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id;

-- name: log_lead
-- A lead's events in the order they happened (time, then sequence).
SELECT id, lead_id, kind, received_at, actor, version, payload
  FROM lead_events WHERE lead_id = $1
 ORDER BY received_at, id;

-- name: log_after
-- Events after sequence number $1, in sequence order, at most $2.
SELECT id, lead_id, kind, received_at, actor, version, payload
  FROM lead_events WHERE id > $1
 ORDER BY id
 LIMIT $2;

-- name: log_snapshot
-- The bounds of this transaction's snapshot: older transactions have all ended (xmin), and every
-- transaction that had started is older than xmax.
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax;
