-- name: owners_missing
-- Which of the given owner ids do not exist.
SELECT id FROM unnest($1::text[]) AS id WHERE id NOT IN (SELECT id FROM owners);

-- name: pool_members_set
-- Replace a pool's members with exactly the given owner ids.
WITH gone AS (
    DELETE FROM pool_members WHERE pool_id = $1 AND owner_id <> ALL ($2::text[])
)
INSERT INTO pool_members (pool_id, owner_id)
SELECT $1, unnest($2::text[])
ON CONFLICT DO NOTHING;

-- name: pool_ids
-- The ids of every pool.
SELECT id FROM pools;

-- name: idempotency_claim
-- Claim every key of one request ($2: the header's and the body's event_id) in one statement;
-- returns the keys claimed now (a key another request holds is waited for, then left out). Keys
-- are inserted in sorted order, so two requests sharing keys wait on each other, never deadlock.
INSERT INTO idempotency_keys (scope, key, fingerprint)
SELECT $1, k, $3 FROM unnest($2::text[]) AS k ORDER BY k
ON CONFLICT DO NOTHING
RETURNING key;

-- name: idempotency_get
-- The stored fingerprint, lead and response of each of these keys that exists.
SELECT key, fingerprint, lead_id, response FROM idempotency_keys WHERE scope = $1 AND key = ANY ($2::text[]);

-- name: idempotency_complete
-- Store the response given for the request under each of its claimed keys.
UPDATE idempotency_keys SET lead_id = $3, response = $4 WHERE scope = $1 AND key = ANY ($2::text[]);

-- name: decision_insert
-- One decision about a lead; returns its id.
INSERT INTO decisions (lead_id, event_id, ruleset_id, ruleset_version, ruleset_sha256, score, groups,
                       matched, stage, qualification_rule, routing_rule, pool_id, owner_id, explanation)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING id;

-- name: lead_get
-- One lead.
SELECT id, created_at, updated_at, stage, score, status, owner_id, pool_id, normalized
  FROM leads WHERE id = $1;

-- name: lead_events
-- A lead's events, oldest first.
SELECT id, kind, received_at, occurred_at FROM lead_events WHERE lead_id = $1 ORDER BY id;

-- name: lead_decision_latest
-- A lead's latest decision: its current score and stage, and the rules behind them.
SELECT id, decided_at, ruleset_version, ruleset_sha256, score, stage, explanation
  FROM decisions WHERE lead_id = $1 ORDER BY id DESC LIMIT 1;

-- name: lead_decision_routed
-- A lead's latest decision in which routing ran (an event that only rescored it did not).
SELECT id, explanation FROM decisions
 WHERE lead_id = $1 AND NOT coalesce((explanation -> 'assignment' ->> 'unchanged')::boolean, false)
 ORDER BY id DESC LIMIT 1;

-- name: intake_record
-- Everything a new lead writes, in one statement (one round trip): the lead; its lead.received,
-- lead.scored and placement events; its decision; its assignment; its SLA timer when $31 is
-- true; and the answer stored under each of the request's idempotency keys ($39, text[]). $41, $42:
-- the phone and name key it is matched on later (migration 0012); $43 the SLA warning time. The
-- company domain's account owner too ($3, $7: as routing_account_owner_set does, first owner wins;
-- but a domain whose owner is set and active is not even locked, so concurrent transactions, and
-- the shared ones of group commit, do not queue on a busy company's row).
-- Returns the decision id and the account owner when that row was written (else null).
WITH lead AS (
    INSERT INTO leads (id, email, company_domain, stage, score, status, owner_id, pool_id, normalized, rescore_at,
                       phone_e164, name_key, last_seen_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $41, $42, $11)
), received AS (
    INSERT INTO lead_events (lead_id, kind, received_at, occurred_at, idempotency_key, actor, payload)
    VALUES ($1, 'lead.received', $11, $12, $13, $14, $15)
    RETURNING id
), decision AS (
    INSERT INTO decisions (lead_id, event_id, ruleset_id, ruleset_version, ruleset_sha256, score, groups,
                           matched, stage, qualification_rule, routing_rule, pool_id, owner_id, explanation)
    SELECT $1, received.id, $16, $17, $18, $5, $19, $20, $4, $21, $22, $8, $7, $23 FROM received
    RETURNING id
), scored AS (
    INSERT INTO lead_events (lead_id, kind, received_at, actor, payload)
    SELECT $1, 'lead.scored', $11, $14, $24::jsonb || jsonb_build_object('decision_id', decision.id) FROM decision
    RETURNING id
), assignment AS (
    INSERT INTO assignments (lead_id, decision_id, owner_id, pool_id, status, queue, reason, created_at,
                             claim_seq, rule, waiting)
    SELECT $1, decision.id, $7, $8, $25, $26, $27, $11, $28, $29, $30 FROM decision
    RETURNING id
), timer AS (
    INSERT INTO sla_timers (lead_id, assignment_id, owner_id, pool_id, minutes, on_breach, business_hours,
                            started_at, due_at, breaches, warn_at)
    SELECT $1, assignment.id, $7, $36, $32, $33, $34, $11, $35, 0, $43 FROM assignment WHERE $31
), placed AS (  -- read from scored: appended after it, so the log's order is received, scored, placed
    INSERT INTO lead_events (lead_id, kind, received_at, actor, payload)
    SELECT $1, $37, $11, $14, $38 FROM scored
), answer AS (
    UPDATE idempotency_keys SET lead_id = $1, response = $40 WHERE scope = 'lead' AND key = ANY ($39::text[])
), account AS (  -- skipped, without locking the row, when it already names this or an active owner
    INSERT INTO account_owners (company_domain, owner_id, lead_id, updated_at)
    SELECT $3, $7, $1, $11 WHERE $3::text IS NOT NULL AND $7::text IS NOT NULL
       AND NOT EXISTS (SELECT FROM account_owners AS a JOIN owners AS o ON o.id = a.owner_id
                        WHERE a.company_domain = $3 AND (a.owner_id = $7 OR o.active))
    ON CONFLICT (company_domain) DO UPDATE
       SET owner_id = EXCLUDED.owner_id, lead_id = EXCLUDED.lead_id, updated_at = EXCLUDED.updated_at
     WHERE account_owners.owner_id <> EXCLUDED.owner_id
       AND NOT (SELECT active FROM owners WHERE id = account_owners.owner_id)
    RETURNING owner_id
)
SELECT decision.id, (SELECT owner_id FROM account) AS account_owner FROM decision;

-- name: intake_begin
-- A new lead's first statement (migration 0017): claim the keys $2, lock the identity values $4
-- and read the person's leads ($5-$7), take the routing lock $8 shared and read the version.
SELECT * FROM leadroute_intake_begin($1, $2::text[], $3, $4::int[], $5, $6, $7, $8);
