-- Secrets at rest (leadroute.vault): webhook secrets sealed under LEADROUTE_SECRET_KEY.

-- name: vault_endpoints_to_seal
-- Webhook endpoints holding a plain secret (with $1: every webhook endpoint, to re-seal).
SELECT id FROM outbound_endpoints
 WHERE kind = 'webhook'
   AND ($1 OR EXISTS (SELECT 1 FROM jsonb_array_elements(secrets) AS s WHERE s ? 'secret'))
 ORDER BY id;

-- name: vault_endpoint_lock
-- One endpoint's stored secrets, locked while they are sealed.
SELECT id, secrets FROM outbound_endpoints WHERE id = $1 FOR UPDATE;

-- name: vault_endpoint_secrets
-- Replace endpoint $1's stored secrets (sealed) without touching updated_at.
UPDATE outbound_endpoints SET secrets = $2 WHERE id = $1;
