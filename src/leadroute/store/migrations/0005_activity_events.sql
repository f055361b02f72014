-- Activity events (POST /v1/events) are lead_events rows of kind 'activity': their payload is
-- {"type": ..., "properties": {...}} and occurred_at is when the lead acted. Rescoring reads all
-- of a lead's activities, so they get their own index.
CREATE INDEX lead_events_activity_idx ON lead_events (lead_id, occurred_at) WHERE kind = 'activity';

-- Leads are found by email for events that do not carry a lead id: the newest lead wins.
CREATE INDEX leads_email_created_idx ON leads (email, created_at DESC);
DROP INDEX leads_email_idx;

-- A ruleset whose qualification entries all have a condition may match none: the stage is then
-- 'lead' with no deciding rule, which 0001 could not record.
ALTER TABLE decisions ALTER COLUMN qualification_rule DROP NOT NULL;
