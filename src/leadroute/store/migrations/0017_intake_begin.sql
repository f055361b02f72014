-- One statement for everything a new lead's transaction does before routing (issue 10 §2: one
-- or two PostgreSQL round trips per lead). Intake used to send three: the idempotency claim
-- (queries.sql idempotency_claim), the identity locks and match (leadroute_identity_match, 0012)
-- and the routing lock with the configuration version (routing.sql routing_lock_config). This
-- function does the same three, in the same order and with the same locks, in one round trip.
--
-- Rows: the first is the head (kind 'head'): the keys claimed now and, unless the request is a
-- retry, the routing configuration's version. When a key was already taken (claimed has fewer
-- keys than p_keys) the function stops there: the caller reads the stored answer, and neither the
-- identity locks nor the routing lock are taken (a retry neither matches nor routes). Otherwise the
-- head is followed by the person's stored leads (kind 'lead'), row-locked, as
-- leadroute_identity_match returns them.
--
-- Lock order, as before: the idempotency keys (row locks, sorted), the identity values (advisory,
-- sorted), the routing lock (advisory, shared, until the transaction ends).
CREATE FUNCTION leadroute_intake_begin(
    p_scope text, p_keys text[], p_fingerprint text,
    p_lock_keys int[], p_email text, p_phone text, p_name text,
    p_routing_lock bigint
)
RETURNS TABLE (
    kind text, claimed text[], config_version bigint,
    id uuid, email text, phone_e164 text, name_key text, company_domain text, stage text,
    score double precision, status text, owner_id text, pool_id text, normalized jsonb,
    created_at timestamptz, last_seen_at timestamptz
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    got text[] := '{}';
    k int;
    v bigint;
BEGIN
    IF cardinality(p_keys) > 0 THEN
        WITH c AS (
            INSERT INTO idempotency_keys (scope, key, fingerprint)
            SELECT p_scope, x, p_fingerprint FROM unnest(p_keys) AS x ORDER BY x
            ON CONFLICT DO NOTHING
            RETURNING idempotency_keys.key
        )
        SELECT coalesce(array_agg(c.key), '{}') INTO got FROM c;
        IF cardinality(got) < cardinality(p_keys) THEN
            RETURN QUERY SELECT 'head'::text, got, NULL::bigint, NULL::uuid, NULL::text, NULL::text,
                NULL::text, NULL::text, NULL::text, NULL::double precision, NULL::text, NULL::text,
                NULL::text, NULL::jsonb, NULL::timestamptz, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;
    IF cardinality(p_lock_keys) > 0 THEN
        FOREACH k IN ARRAY p_lock_keys LOOP
            PERFORM pg_advisory_xact_lock(x'1EAD0012'::int, k);
        END LOOP;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(p_routing_lock);
    SELECT rc.version INTO v FROM routing_config AS rc;
    RETURN QUERY SELECT 'head'::text, got, coalesce(v, 0), NULL::uuid, NULL::text, NULL::text,
        NULL::text, NULL::text, NULL::text, NULL::double precision, NULL::text, NULL::text,
        NULL::text, NULL::jsonb, NULL::timestamptz, NULL::timestamptz;
    IF cardinality(p_lock_keys) > 0 THEN
        RETURN QUERY
        SELECT 'lead'::text, NULL::text[], NULL::bigint,
               l.id, l.email, l.phone_e164, l.name_key, l.company_domain, l.stage, l.score, l.status,
               l.owner_id, l.pool_id, l.normalized, l.created_at, l.last_seen_at
          FROM leads AS l
         WHERE l.merged_into IS NULL
           AND l.id IN (
               (SELECT e.id FROM leads AS e WHERE e.email = p_email AND e.merged_into IS NULL
                 ORDER BY e.created_at DESC LIMIT 20)
               UNION
               (SELECT p.id FROM leads AS p WHERE p.phone_e164 = p_phone AND p.merged_into IS NULL
                 ORDER BY p.created_at DESC LIMIT 20)
               UNION
               (SELECT n.id FROM leads AS n WHERE n.name_key = p_name AND n.merged_into IS NULL
                 ORDER BY n.created_at DESC LIMIT 20)
           )
         ORDER BY l.id
           FOR UPDATE OF l;
    END IF;
END
$$;
