-- API keys and the admin audit trail (docs/security.md).

-- name: key_insert
-- A new key; the caller retries with another id on a (rare) id collision.
INSERT INTO api_keys (id, name, scopes, origins, secret_sha256, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, name, scopes, origins, created_at, created_by, rotated_at, revoked_at, revoked_by;

-- name: key_seed
-- The key of LEADROUTE_ADMIN_KEY: created, or its secret set again; a revoked one stays revoked.
INSERT INTO api_keys (id, name, scopes, origins, secret_sha256, created_by)
VALUES ($1, 'LEADROUTE_ADMIN_KEY', ARRAY['admin'], '{}', $2, 'settings')
ON CONFLICT (id) DO UPDATE SET secret_sha256 = EXCLUDED.secret_sha256
 WHERE api_keys.revoked_at IS NULL;

-- name: key_any
-- Whether any key that is not revoked exists (the first start creates an admin key otherwise).
SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL);

-- name: key_verify
-- What a request's key may do: its scopes and origins, if it exists and is not revoked.
SELECT id, scopes, origins, secret_sha256 FROM api_keys WHERE id = $1 AND revoked_at IS NULL;

-- name: key_list
-- Every key, newest first (revoked ones too: the audit trail names them).
SELECT id, name, scopes, origins, created_at, created_by, rotated_at, revoked_at, revoked_by
  FROM api_keys ORDER BY created_at DESC, id;

-- name: key_get
-- One key.
SELECT id, name, scopes, origins, created_at, created_by, rotated_at, revoked_at, revoked_by
  FROM api_keys WHERE id = $1;

-- name: key_rotate
-- A new secret for a key that is not revoked; the old one stops working.
UPDATE api_keys SET secret_sha256 = $2, rotated_at = now()
 WHERE id = $1 AND revoked_at IS NULL
RETURNING id, name, scopes, origins, created_at, created_by, rotated_at, revoked_at, revoked_by;

-- name: key_revoke
-- Revoke a key (revoking again keeps the first revocation).
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, $2)
 WHERE id = $1
RETURNING id, name, scopes, origins, created_at, created_by, rotated_at, revoked_at, revoked_by;

-- name: key_origins
-- Every origin some live key allows (a CORS preflight carries no key, so it is checked against all).
SELECT DISTINCT unnest(origins) AS origin FROM api_keys WHERE revoked_at IS NULL;

-- name: audit_insert
-- One change, in the transaction of the change.
INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4);

-- name: audit_list
-- The admin audit trail, newest first: owner, pool and key changes, and ruleset activations.
SELECT at, actor, action, subject, detail FROM (
    SELECT at, id AS seq, 0 AS src, actor, action, subject, detail FROM audit_log
    UNION ALL
    SELECT a.activated_at, a.id, 1, coalesce(a.actor, 'unknown'), 'ruleset.' || a.action,
           'ruleset:' || r.version, jsonb_build_object('sha256', r.sha256)
      FROM ruleset_activations a JOIN rulesets r ON r.id = a.ruleset_id
) AS trail
 WHERE ($1::timestamptz IS NULL OR at < $1)
 ORDER BY at DESC, src, seq DESC
 LIMIT $2;
