-- Access: API keys and the admin audit trail (docs/security.md).
--
-- A key is "lr_live_<id>_<secret>": id is public (it names the key in logs, in the audit trail
-- and in every actor "key:<id>"), secret is 256 random bits of which only the sha256 is stored.
-- A fast hash is enough for a secret that cannot be guessed (see leadroute.access._tokens).
CREATE TABLE api_keys (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    scopes         text[] NOT NULL,
    origins        text[] NOT NULL DEFAULT '{}',
    secret_sha256  bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    rotated_at     timestamptz,
    revoked_at     timestamptz,
    revoked_by     text
);

-- Who changed what, written in the transaction of the change: owners, pools and keys (ruleset
-- activations keep their actor in ruleset_activations; GET /v1/audit reads both).
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    subject  text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
