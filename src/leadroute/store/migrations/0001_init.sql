-- The record: leads, their events and decisions, owners, pools, assignments, rulesets.
-- Redis holds only routing state that can be rebuilt from these tables.

CREATE TABLE owners (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pools (
    id          text PRIMARY KEY,
    strategy    text NOT NULL DEFAULT 'round_robin' CHECK (strategy IN ('round_robin')),
    fallback    text NOT NULL DEFAULT 'unassigned',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pool_members (
    pool_id     text NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    owner_id    text NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    PRIMARY KEY (pool_id, owner_id)
);
CREATE INDEX pool_members_owner_idx ON pool_members (owner_id);

CREATE TABLE rulesets (
    id          bigserial PRIMARY KEY,
    version     integer NOT NULL,
    sha256      text NOT NULL,
    description text,
    source      text NOT NULL,
    path        text,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rulesets_version_sha256_key UNIQUE (version, sha256)
);

CREATE TABLE leads (
    id              uuid PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    email           text,
    company_domain  text,
    stage           text NOT NULL,
    score           double precision NOT NULL,
    status          text NOT NULL CHECK (status IN ('assigned', 'unassigned')),
    owner_id        text REFERENCES owners (id),
    pool_id         text,
    normalized      jsonb NOT NULL
);
CREATE INDEX leads_email_idx ON leads (email);
CREATE INDEX leads_company_domain_idx ON leads (company_domain);

-- Idempotency: one row per (scope, key); the row is inserted first in the intake transaction,
-- so concurrent retries wait on it and then read the stored response.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    fingerprint  text NOT NULL,
    lead_id      uuid,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE TABLE lead_events (
    id               bigserial PRIMARY KEY,
    lead_id          uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    kind             text NOT NULL,
    idempotency_key  text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    occurred_at      timestamptz,
    payload          jsonb NOT NULL
);
CREATE INDEX lead_events_lead_idx ON lead_events (lead_id, id);

CREATE TABLE decisions (
    id                  bigserial PRIMARY KEY,
    lead_id             uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    event_id            bigint NOT NULL REFERENCES lead_events (id) ON DELETE CASCADE,
    ruleset_id          bigint NOT NULL REFERENCES rulesets (id),
    ruleset_version     integer NOT NULL,
    ruleset_sha256      text NOT NULL,
    score               double precision NOT NULL,
    groups              jsonb NOT NULL,
    matched             jsonb NOT NULL,
    stage               text NOT NULL,
    qualification_rule  text NOT NULL,
    routing_rule        text,
    pool_id             text,
    owner_id            text REFERENCES owners (id),
    explanation         jsonb NOT NULL,
    decided_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_lead_idx ON decisions (lead_id, id);

CREATE TABLE assignments (
    id           bigserial PRIMARY KEY,
    lead_id      uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    decision_id  bigint REFERENCES decisions (id) ON DELETE CASCADE,
    owner_id     text REFERENCES owners (id),
    pool_id      text,
    status       text NOT NULL CHECK (status IN ('assigned', 'unassigned')),
    queue        text,
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    CHECK ((status = 'assigned') = (owner_id IS NOT NULL))
);
CREATE INDEX assignments_lead_idx ON assignments (lead_id, id);
CREATE INDEX assignments_pool_idx ON assignments (pool_id, id);
-- At most one current assignment per lead.
CREATE UNIQUE INDEX assignments_current_key ON assignments (lead_id) WHERE ended_at IS NULL;
