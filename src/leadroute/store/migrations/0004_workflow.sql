-- The lead workflow (issue 4 §4): workflow states on leads and assignments, and SLA timers.
--
-- A lead's status is its workflow state. Its current assignment (ended_at IS NULL, still at most
-- one per lead: assignments_current_key) carries the same state; a closed lead keeps its last
-- assignment current, marked 'closed', so every lead has exactly one current row: an owner, a
-- queue with the reason, or the closed record.

ALTER TABLE leads DROP CONSTRAINT leads_status_check;
ALTER TABLE leads ADD CONSTRAINT leads_status_check
    CHECK (status IN ('assigned', 'accepted', 'reassigned', 'escalated', 'closed', 'unassigned'));

ALTER TABLE assignments DROP CONSTRAINT assignments_status_check;
ALTER TABLE assignments DROP CONSTRAINT assignments_check;
ALTER TABLE assignments
    ADD CONSTRAINT assignments_status_check
        CHECK (status IN ('assigned', 'accepted', 'reassigned', 'escalated', 'closed', 'unassigned')),
    -- an owner exactly when the lead sits with someone; a closed lead may or may not have had one
    ADD CONSTRAINT assignments_owner_check
        CHECK (status = 'closed' OR (status = 'unassigned') = (owner_id IS NULL)),
    ADD COLUMN accepted_at  timestamptz;

-- One row per started SLA: the owner must accept the lead by due_at. The scheduler of every
-- instance claims due rows with FOR UPDATE SKIP LOCKED; the transaction that acts on a breach is
-- the one that marks the row fired, so a timer fires exactly once and survives restarts.
CREATE TABLE sla_timers (
    id              bigserial PRIMARY KEY,
    lead_id         uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    assignment_id   bigint NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    owner_id        text NOT NULL REFERENCES owners (id),
    pool_id         text,
    minutes         integer NOT NULL CHECK (minutes >= 0),
    on_breach       text NOT NULL CHECK (on_breach IN ('reassign', 'escalate')),
    -- the clock counted only inside the owner's working hours (the pool's sla_business_hours)
    business_hours  boolean NOT NULL DEFAULT false,
    started_at      timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    -- how many times this lead breached before this timer started (the breach limit counts these)
    breaches        integer NOT NULL DEFAULT 0 CHECK (breaches >= 0),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'fired', 'cancelled')),
    -- why it stopped: accepted, reassigned, closed, breached, ...
    resolution      text,
    resolved_at     timestamptz,
    -- failed firing attempts (the error's type only: no lead data); the row stays pending
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text
);
CREATE INDEX sla_timers_due_idx ON sla_timers (due_at, id) WHERE status = 'pending';
CREATE INDEX sla_timers_lead_idx ON sla_timers (lead_id, id);
-- At most one running timer per lead.
CREATE UNIQUE INDEX sla_timers_pending_key ON sla_timers (lead_id) WHERE status = 'pending';
