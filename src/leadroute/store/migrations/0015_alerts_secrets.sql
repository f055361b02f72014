-- Issue 12's remaining outbound work: SLA warnings, Slack mentions, queue alerts by email and
-- webhook secrets encrypted at rest.

-- An owner's Slack member id (U…/W…): Slack alerts mention <@id> so the rep is notified.
ALTER TABLE owners ADD COLUMN slack_user_id text;

-- "About to breach": when the timer warns (NULL: no warning, LEADROUTE_SLA_WARN_BEFORE_MINUTES
-- is 0 or not shorter than the SLA) and when it did (each timer warns at most once; a timer
-- that stops before warn_at, because the lead was accepted, moved or closed, never warns).
ALTER TABLE sla_timers ADD COLUMN warn_at timestamptz;
ALTER TABLE sla_timers ADD COLUMN warned_at timestamptz;
CREATE INDEX sla_timers_warn_idx ON sla_timers (warn_at, id)
    WHERE status = 'pending' AND warned_at IS NULL AND warn_at IS NOT NULL;

-- Webhook secrets at rest: each entry of outbound_endpoints.secrets holds either "secret"
-- (plain text, written before this migration) or "sealed" (Fernet token under
-- LEADROUTE_SECRET_KEY). Instances seal the plain ones at start-up (leadroute.secrets).
