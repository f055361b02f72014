-- Duplicates (issue 13 §1): what intake matches a person on, indexed, and how merged leads are marked.
--
-- A lead event is matched, in the intake transaction, to the live lead of the same person: by
-- normalized email, then E.164 phone, then (LEADROUTE_MATCH_BY_NAME) normalized name + company
-- domain. The identity values get columns of their own so each match is an index scan.

ALTER TABLE leads ADD COLUMN phone_e164 text;
ALTER TABLE leads ADD COLUMN name_key text;
-- "first last|company.example", lower-cased with inner whitespace collapsed (the same as
-- leadroute.intake.identity.name_key); NULL unless both names and a company domain are known.
ALTER TABLE leads ADD COLUMN last_seen_at timestamptz;
-- When the person last came in: the lead event, a merged event or an activity (the
-- re-engagement window counts from here).
ALTER TABLE leads ADD COLUMN merged_into uuid REFERENCES leads (id);
-- A duplicate merged into another lead by `leadroute leads dedupe`: closed, never matched again.

UPDATE leads SET
    phone_e164 = normalized ->> 'phone_e164',
    name_key = CASE
        WHEN nullif(normalized ->> 'first_name', '') IS NOT NULL
         AND nullif(normalized ->> 'last_name', '') IS NOT NULL
         AND company_domain IS NOT NULL
        THEN lower(regexp_replace(btrim(normalized ->> 'first_name'), '\s+', ' ', 'g')) || ' '
             || lower(regexp_replace(btrim(normalized ->> 'last_name'), '\s+', ' ', 'g')) || '|'
             || company_domain
    END,
    last_seen_at = greatest(
        created_at,
        (SELECT max(e.received_at) FROM lead_events AS e
          WHERE e.lead_id = leads.id AND e.kind = 'activity.recorded')
    );
ALTER TABLE leads ALTER COLUMN last_seen_at SET NOT NULL;
ALTER TABLE leads ALTER COLUMN last_seen_at SET DEFAULT now();

-- Only leads that can still be matched (never the merged-away ones); newest first, as the match reads.
CREATE INDEX leads_phone_match_idx ON leads (phone_e164, created_at DESC)
    WHERE phone_e164 IS NOT NULL AND merged_into IS NULL;
CREATE INDEX leads_name_match_idx ON leads (name_key, created_at DESC)
    WHERE name_key IS NOT NULL AND merged_into IS NULL;
-- leads_email_created_idx (0005) serves the email match.

-- The identity locks and the match in one round trip. Intake locks every identity value of the
-- incoming person (advisory locks on (0x1EAD0012, key), the keys computed and sorted by the
-- caller, leadroute.intake.identity.lock_key, so two requests never wait on each other
-- crosswise), then reads the
-- leads those values name, locked. Why a function: in READ COMMITTED a statement's snapshot is
-- taken when it starts, so a match in the statement that waited for the lock would not see the
-- lead the other request has just committed; each statement inside a VOLATILE function takes a
-- new snapshot, after the lock. The candidates are ordered by id so two transactions lock the
-- same rows in the same order. Which candidate wins is decided by the caller (a pure function).
CREATE FUNCTION leadroute_identity_match(lock_keys int[], match_email text, match_phone text, match_name text)
RETURNS TABLE (
    id uuid, email text, phone_e164 text, name_key text, company_domain text, stage text,
    score double precision, status text, owner_id text, pool_id text, normalized jsonb,
    created_at timestamptz, last_seen_at timestamptz
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k int;
BEGIN
    FOREACH k IN ARRAY lock_keys LOOP
        PERFORM pg_advisory_xact_lock(x'1EAD0012'::int, k);
    END LOOP;
    RETURN QUERY
    SELECT l.id, l.email, l.phone_e164, l.name_key, l.company_domain, l.stage, l.score, l.status,
           l.owner_id, l.pool_id, l.normalized, l.created_at, l.last_seen_at
      FROM leads AS l
     WHERE l.merged_into IS NULL
       AND l.id IN (
           (SELECT e.id FROM leads AS e WHERE e.email = match_email AND e.merged_into IS NULL
             ORDER BY e.created_at DESC LIMIT 20)
           UNION
           (SELECT p.id FROM leads AS p WHERE p.phone_e164 = match_phone AND p.merged_into IS NULL
             ORDER BY p.created_at DESC LIMIT 20)
           UNION
           (SELECT n.id FROM leads AS n WHERE n.name_key = match_name AND n.merged_into IS NULL
             ORDER BY n.created_at DESC LIMIT 20)
       )
     ORDER BY l.id
       FOR UPDATE OF l;
END
$$;
