-- Outbound: webhook endpoints and CRM connectors, the relay's place in the event log, one delivery
-- per (endpoint, event) and every attempt at it. leadroute.outbound reads and writes these.

-- Where events go: a webhook (url + secrets) or a CRM connector configured by the deployment
-- (id 'hubspot' or 'salesforce', kept in step with the settings at start-up).
CREATE TABLE outbound_endpoints (
    id               text PRIMARY KEY,
    kind             text NOT NULL DEFAULT 'webhook' CHECK (kind IN ('webhook', 'hubspot', 'salesforce')),
    url              text CHECK ((kind = 'webhook') = (url IS NOT NULL)),
    description      text,
    events           text[] NOT NULL,
    -- [{"secret": "whsec_...", "created_at": ..., "expires_at": null | ...}], newest first; every
    -- unexpired one signs (rotation: old and new signatures are both sent until the old expires)
    secrets          jsonb NOT NULL DEFAULT '[]',
    enabled          boolean NOT NULL DEFAULT true,
    disabled_reason  text,
    -- the log's last sequence number when the endpoint was made: it gets only later events
    start_after      bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The relay's cursor: every event up to last_seq has been fanned out (or is known never to
-- commit). gap_below/gap_xmax: sequence numbers below gap_below were missing in a snapshot whose
-- xmax was gap_xmax; once pg_snapshot_xmin reaches gap_xmax, those still missing never will be.
CREATE TABLE outbound_relay (
    id          smallint PRIMARY KEY CHECK (id = 1),
    last_seq    bigint NOT NULL,
    gap_below   bigint,
    gap_xmax    bigint,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Start from the end of the log: installing outbound does not send the history.
INSERT INTO outbound_relay (id, last_seq) SELECT 1, coalesce(max(id), 0) FROM lead_events;

-- One event for one endpoint. pending: due at next_at (a claim pushes next_at forward by a lease,
-- so a crashed sender's delivery comes due again); delivered, dead (retries exhausted) or skipped
-- (a connector had nothing to write: no CRM id). attempts counts claims.
CREATE TABLE outbound_deliveries (
    id            bigserial PRIMARY KEY,
    endpoint_id   text NOT NULL REFERENCES outbound_endpoints (id) ON DELETE CASCADE,
    event_seq     bigint NOT NULL REFERENCES lead_events (id) ON DELETE CASCADE,
    lead_id       uuid NOT NULL,
    event_type    text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered', 'dead', 'skipped')),
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL,
    last_status   integer,
    last_error    text,
    created_at    timestamptz NOT NULL,
    done_at       timestamptz,
    UNIQUE (endpoint_id, event_seq)
);
CREATE INDEX outbound_deliveries_due_idx ON outbound_deliveries (next_at) WHERE status = 'pending';
-- "is an earlier event of this lead still pending for this endpoint?" (per-lead order)
CREATE INDEX outbound_deliveries_lead_idx
    ON outbound_deliveries (endpoint_id, lead_id, event_seq) WHERE status = 'pending';
CREATE INDEX outbound_deliveries_endpoint_idx ON outbound_deliveries (endpoint_id, event_seq);

-- The delivery log: every attempt, its answer and how long it took.
CREATE TABLE outbound_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES outbound_deliveries (id) ON DELETE CASCADE,
    endpoint_id  text NOT NULL,
    event_seq    bigint NOT NULL,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL,
    outcome      text NOT NULL,
    status_code  integer,
    error        text,
    latency_ms   double precision,
    response     text
);
CREATE INDEX outbound_attempts_endpoint_idx ON outbound_attempts (endpoint_id, id);
