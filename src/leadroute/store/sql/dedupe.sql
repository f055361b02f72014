-- Duplicates (leadroute.workflow.merge, leadroute.workflow.dedupe): matching a person at intake,
-- merging into their lead, and finding old duplicates. Migration 0012 holds the columns, indexes
-- and the matching function.

-- name: identity_match
-- Take the identity locks $1 (sorted) and read the leads that share the email $2, the phone $3 or
-- the name key $4, each locked (see leadroute_identity_match in migration 0012): one round trip.
SELECT * FROM leadroute_identity_match($1::int[], $2, $3, $4);

-- name: identity_lock
-- Only the identity locks $1 (sorted), until the transaction ends (dedupe: before a group's rows).
SELECT pg_advisory_xact_lock(x'1EAD0012'::int, k) FROM unnest($1::int[]) WITH ORDINALITY AS t (k, i) ORDER BY i;

-- name: lead_merge_update
-- A lead after a merge: its normalized fields, the values it is matched on, and when the person
-- was last heard from ($7; $8: now).
UPDATE leads
   SET normalized = $2, email = $3, company_domain = $4, phone_e164 = $5, name_key = $6,
       last_seen_at = greatest(last_seen_at, $7), updated_at = $8
 WHERE id = $1;

-- name: dedupe_candidates
-- Every lead that can still be matched and shares its email, phone or (when $1) name key with
-- another such lead: the rows old duplicates are grouped from.
WITH live AS (SELECT * FROM leads WHERE merged_into IS NULL)
SELECT id, email, phone_e164, name_key, status, owner_id, created_at, last_seen_at
  FROM live
 WHERE email IN (SELECT email FROM live WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1)
    OR phone_e164 IN (SELECT phone_e164 FROM live WHERE phone_e164 IS NOT NULL
                       GROUP BY phone_e164 HAVING count(*) > 1)
    OR ($1 AND name_key IN (SELECT name_key FROM live WHERE name_key IS NOT NULL
                             GROUP BY name_key HAVING count(*) > 1))
 ORDER BY created_at, id;

-- name: dedupe_lock_leads
-- The leads of one duplicate group, locked in id order; those merged away since are left out.
SELECT id, email, phone_e164, name_key, company_domain, stage, score, status, owner_id, pool_id,
       normalized, created_at, last_seen_at
  FROM leads WHERE id = ANY ($1::uuid[]) AND merged_into IS NULL
 ORDER BY id
   FOR UPDATE;

-- name: lead_mark_merged
-- Lead $1 was merged into $2: it (and any lead merged into it before) now stands for $2.
UPDATE leads SET merged_into = $2, updated_at = $3 WHERE id = $1 OR merged_into = $1;
