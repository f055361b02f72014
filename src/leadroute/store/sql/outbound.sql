-- Outbound (leadroute.outbound): endpoints, the relay's cursor, deliveries and their attempts.

-- name: outbound_endpoint_insert
-- A new endpoint; returns it.
INSERT INTO outbound_endpoints (id, kind, url, description, events, secrets, enabled, start_after,
                                created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT coalesce(max(id), 0) FROM lead_events), $8, $8)
RETURNING *;

-- name: outbound_endpoint_get
-- One endpoint.
SELECT * FROM outbound_endpoints WHERE id = $1;

-- name: outbound_endpoint_lock
-- One endpoint, locked for a change.
SELECT * FROM outbound_endpoints WHERE id = $1 FOR UPDATE;

-- name: outbound_endpoint_list
-- Every endpoint, webhooks and connectors, by id.
SELECT * FROM outbound_endpoints ORDER BY id;

-- name: outbound_endpoint_update
-- Replace an endpoint's changeable fields; returns it.
UPDATE outbound_endpoints
   SET url = $2, description = $3, events = $4, enabled = $5, disabled_reason = $6, secrets = $7,
       updated_at = $8
 WHERE id = $1
RETURNING *;

-- name: outbound_endpoint_delete
-- Delete an endpoint with its deliveries and attempts; returns its id if it existed.
DELETE FROM outbound_endpoints WHERE id = $1 RETURNING id;

-- name: outbound_endpoint_disable
-- Stop sending to an endpoint (410 Gone, or a connector no longer configured), with the reason.
UPDATE outbound_endpoints SET enabled = false, disabled_reason = $2, updated_at = $3
 WHERE id = $1 AND enabled;

-- name: outbound_connector_upsert
-- A connector the settings configure: created from the end of the log, or enabled again.
INSERT INTO outbound_endpoints (id, kind, events, start_after, created_at, updated_at)
VALUES ($1, $1, $2, (SELECT coalesce(max(id), 0) FROM lead_events), $3, $3)
ON CONFLICT (id) DO UPDATE
   SET events = EXCLUDED.events, enabled = true, disabled_reason = NULL, updated_at = EXCLUDED.updated_at
 WHERE NOT outbound_endpoints.enabled OR outbound_endpoints.events <> EXCLUDED.events;

-- name: outbound_relay_ensure
-- The relay's cursor row, made at the end of the log if it is missing (a truncated table).
INSERT INTO outbound_relay (id, last_seq) SELECT 1, coalesce(max(id), 0) FROM lead_events
ON CONFLICT (id) DO NOTHING;

-- name: outbound_relay_lock
-- The relay's cursor, locked: one instance fans out at a time; the others skip this part.
SELECT last_seq, gap_below, gap_xmax FROM outbound_relay WHERE id = 1 FOR UPDATE SKIP LOCKED;

-- name: outbound_relay_save
-- Move the relay's cursor and remember the open gap.
UPDATE outbound_relay SET last_seq = $1, gap_below = $2, gap_xmax = $3, updated_at = now() WHERE id = 1;

-- name: outbound_fan_out
-- One delivery per event ($1 seqs, $2 leads, $3 types) per enabled endpoint that wants its type and
-- was made before it, due at $4. Existing ones are left alone (a relay that ran twice adds nothing).
INSERT INTO outbound_deliveries (endpoint_id, event_seq, lead_id, event_type, next_at, created_at)
SELECT ep.id, e.seq, e.lead_id, e.kind, $4, $4
  FROM unnest($1::bigint[], $2::uuid[], $3::text[]) AS e (seq, lead_id, kind)
  JOIN outbound_endpoints AS ep ON ep.enabled AND e.kind = ANY (ep.events) AND e.seq > ep.start_after
ON CONFLICT (endpoint_id, event_seq) DO NOTHING;

-- name: outbound_claim
-- Up to $3 deliveries due at $1 of enabled endpoints, each the earliest pending event of its lead
-- for its endpoint (per-lead order), leased until $2 (a crash leaves them due again then).
WITH due AS (
    SELECT d.id FROM outbound_deliveries AS d
      JOIN outbound_endpoints AS ep ON ep.id = d.endpoint_id AND ep.enabled
     WHERE d.status = 'pending' AND d.next_at <= $1
       AND NOT EXISTS (SELECT 1 FROM outbound_deliveries AS p
                        WHERE p.endpoint_id = d.endpoint_id AND p.lead_id = d.lead_id
                          AND p.status = 'pending' AND p.event_seq < d.event_seq)
     ORDER BY d.next_at, d.event_seq
     LIMIT $3
       FOR UPDATE OF d SKIP LOCKED
)
UPDATE outbound_deliveries AS d SET next_at = $2, attempts = d.attempts + 1
  FROM due WHERE d.id = due.id
RETURNING d.id, d.attempts;

-- name: outbound_jobs
-- What sending the claimed deliveries $1 needs: the delivery, its endpoint, the event, the owners
-- it names (with their CRM ids, read now) and the lead's CRM ids and email.
SELECT d.id, d.attempts, d.event_seq, d.lead_id,
       ep.id AS endpoint_id, ep.kind, ep.url, ep.secrets,
       e.kind AS event_type, e.received_at, e.actor, e.version, e.payload,
       o.id AS owner_id, o.name AS owner_name, o.crm_user_id AS owner_crm_user_id,
       po.id AS previous_owner_id, po.name AS previous_owner_name,
       po.crm_user_id AS previous_owner_crm_user_id,
       l.email AS lead_email, l.normalized -> 'source' AS lead_source,
       l.normalized -> 'attributes' ->> 'hubspot_contact_id' AS hubspot_contact_id,
       coalesce(l.normalized -> 'attributes' ->> 'salesforce_lead_id',
                CASE WHEN l.normalized -> 'attributes' ->> 'salesforce_type' = 'Lead'
                     THEN l.normalized -> 'attributes' ->> 'salesforce_id' END) AS salesforce_lead_id
  FROM outbound_deliveries AS d
  JOIN outbound_endpoints AS ep ON ep.id = d.endpoint_id
  JOIN lead_events AS e ON e.id = d.event_seq
  LEFT JOIN leads AS l ON l.id = d.lead_id
  LEFT JOIN owners AS o ON o.id = e.payload ->> 'owner'
  LEFT JOIN owners AS po ON po.id = e.payload ->> 'previous_owner'
 WHERE d.id = ANY ($1::bigint[])
 ORDER BY d.event_seq;

-- name: outbound_settle
-- The result of attempt $2 of delivery $1 (ignored if the delivery was claimed again since, unless
-- it was delivered): status $3, next due $4, the answer's status $5 and error $6, at $7.
UPDATE outbound_deliveries
   SET status = $3::text, next_at = $4, last_status = $5, last_error = $6,
       done_at = CASE WHEN $3::text = 'pending' THEN NULL ELSE $7::timestamptz END
 WHERE id = $1 AND status = 'pending' AND (attempts = $2 OR $3::text = 'delivered');

-- name: outbound_attempt_insert
-- One line of the delivery log.
INSERT INTO outbound_attempts (delivery_id, endpoint_id, event_seq, attempt, at, outcome, status_code,
                               error, latency_ms, response)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: outbound_redeliver
-- Events $2..$3 of the log that endpoint $1 wants, due again at $4: pending, delivered, dead or
-- skipped ones start over (attempts from 0), ones it never had are added. Returns their seqs.
INSERT INTO outbound_deliveries (endpoint_id, event_seq, lead_id, event_type, next_at, created_at)
SELECT ep.id, e.id, e.lead_id, e.kind, $4, $4
  FROM lead_events AS e
  JOIN outbound_endpoints AS ep ON ep.id = $1 AND e.kind = ANY (ep.events)
 WHERE e.id BETWEEN $2 AND $3
ON CONFLICT (endpoint_id, event_seq) DO UPDATE
   SET status = 'pending', attempts = 0, next_at = EXCLUDED.next_at, done_at = NULL
RETURNING event_seq;

-- name: outbound_deliveries
-- An endpoint's deliveries, newest event first: status $2 (NULL: any), events before $3, at most $4.
SELECT id, event_seq, lead_id, event_type, status, attempts, next_at, last_status, last_error,
       created_at, done_at
  FROM outbound_deliveries
 WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2) AND event_seq < $3
 ORDER BY event_seq DESC
 LIMIT $4;

-- name: outbound_attempts
-- An endpoint's delivery log, newest first: event $2 (NULL: any), at most $3.
SELECT a.delivery_id, a.event_seq, d.event_type, a.attempt, a.at, a.outcome, a.status_code, a.error,
       a.latency_ms, a.response
  FROM outbound_attempts AS a JOIN outbound_deliveries AS d ON d.id = a.delivery_id
 WHERE a.endpoint_id = $1 AND ($2::bigint IS NULL OR a.event_seq = $2)
 ORDER BY a.id DESC
 LIMIT $3;
