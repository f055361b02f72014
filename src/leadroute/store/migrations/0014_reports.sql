-- Reports (leadroute.reports) read the log by event type over a window of time: leads that
-- arrived, placements, SLA breaches, outcomes. One index serves them all; without it each report
-- reads the whole log. One more index entry per event on the write path.
CREATE INDEX lead_events_kind_at_idx ON lead_events (kind, received_at);
