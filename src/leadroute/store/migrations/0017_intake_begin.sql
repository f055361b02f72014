-- One statement for everything a new lead's transaction does before routing (issue 10 §2: one
-- or two PostgreSQL round trips per lead). Intake used to send three: the idempotency claim
-- (queries.sql idempotency_claim), the identity locks and match (leadroute_identity_match, 0012)
-- and the routing lock with the configuration version (routing.sql routing_lock_config). This
-- function does the same three, in the same order and with the same locks, in one round trip.
--
-- Rows: one head (kind 'head'): the keys claimed now and, unless the request is a retry, the
-- routing configuration's version. When a key was already taken (claimed has fewer keys than
-- p_keys) the head is the only row: the caller reads the stored answer, and neither the identity
-- locks nor the routing lock are taken (a retry neither matches nor routes). Otherwise the person's
-- stored leads (kind 'lead'), row-locked, as leadroute_identity_match returns them, come first.
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
    -- the identity locks and the person's stored leads, as leadroute_identity_match (0012) does
    -- for every other caller: one definition of a match
    IF cardinality(p_lock_keys) > 0 THEN
        RETURN QUERY
        SELECT 'lead'::text, NULL::text[], NULL::bigint, m.*
          FROM leadroute_identity_match(p_lock_keys, p_email, p_phone, p_name) AS m;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(p_routing_lock);
    SELECT rc.version INTO v FROM routing_config AS rc;
    RETURN QUERY SELECT 'head'::text, got, coalesce(v, 0), NULL::uuid, NULL::text, NULL::text,
        NULL::text, NULL::text, NULL::text, NULL::double precision, NULL::text, NULL::text,
        NULL::text, NULL::jsonb, NULL::timestamptz, NULL::timestamptz;
END
$$;
