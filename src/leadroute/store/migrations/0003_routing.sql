-- Routing (issue 4): what eligibility needs on owners and pools, and the account-owner map.
-- Redis holds the hot counters (open, daily, cursors); everything here is what they are rebuilt from.

ALTER TABLE owners
    ADD COLUMN timezone       text NOT NULL DEFAULT 'UTC',
    -- {"mon": ["09:00-18:00"], ...} after normalization; NULL: always available
    ADD COLUMN working_hours  jsonb,
    -- [{"from": "2026-12-24", "to": "2027-01-02"}, {"from": "<iso datetime>", "to": ...}]
    ADD COLUMN out_of_office  jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN max_open       integer CHECK (max_open >= 0),
    ADD COLUMN max_per_day    integer CHECK (max_per_day >= 0),
    ADD COLUMN weight         integer NOT NULL DEFAULT 1 CHECK (weight >= 1),
    ADD COLUMN skills         text[] NOT NULL DEFAULT '{}',
    ADD COLUMN crm_user_id    text;

ALTER TABLE pools DROP CONSTRAINT pools_strategy_check;
ALTER TABLE pools
    ADD CONSTRAINT pools_strategy_check CHECK (strategy IN ('round_robin', 'weighted', 'least_loaded')),
    ADD COLUMN required_skill      text,
    ADD COLUMN allow_off_hours     boolean NOT NULL DEFAULT false,
    ADD COLUMN sla_business_hours  boolean NOT NULL DEFAULT false,
    ADD COLUMN escalate_to         text;

-- The account owner of a company domain: set by the first assignment of a lead of that domain,
-- taken over by the next assignment only when that owner is no longer active.
CREATE TABLE account_owners (
    company_domain  text PRIMARY KEY,
    owner_id        text NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    lead_id         uuid REFERENCES leads (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_owners_owner_idx ON account_owners (owner_id);

-- Rebuild reads current assignments per owner and today's per owner, and the last one per pool.
CREATE INDEX assignments_owner_current_idx ON assignments (owner_id) WHERE ended_at IS NULL;
CREATE INDEX assignments_owner_created_idx ON assignments (owner_id, created_at);

-- Which claim (Redis sequence number) made an assignment, so a rebuild restores the exact
-- round-robin cursor and "longest since last assignment" order; and which routing rule placed it.
ALTER TABLE assignments
    ADD COLUMN claim_seq  bigint,
    ADD COLUMN rule       text;
