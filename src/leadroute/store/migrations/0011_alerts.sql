-- Alerts for people (leadroute.outbound._alerts): Slack and email are two more connectors of the
-- outbound relay, and a queue that grew past the threshold is announced once until it shrinks.

ALTER TABLE outbound_endpoints DROP CONSTRAINT outbound_endpoints_kind_check;
ALTER TABLE outbound_endpoints
    ADD CONSTRAINT outbound_endpoints_kind_check
    CHECK (kind IN ('webhook', 'hubspot', 'salesforce', 'slack', 'email'));

-- A pool whose queue an endpoint has announced as too long: present from the alert until a
-- lead.queued finds the queue at or below the threshold again (then the next crossing alerts).
CREATE TABLE outbound_queue_alerts (
    endpoint_id  text NOT NULL REFERENCES outbound_endpoints (id) ON DELETE CASCADE,
    pool_id      text NOT NULL,
    alerted_at   timestamptz NOT NULL,
    PRIMARY KEY (endpoint_id, pool_id)
);
