-- The lead's event log. lead_events becomes the one append-only, typed log of every change to a
-- lead: its id is the global sequence, kind the event type, payload a versioned body, actor who
-- made the change, received_at when (the service clock). History, explain, the queue drain and
-- outbound webhooks all read it; leadroute.workflow.log defines the payloads.
--
-- txid is the transaction that wrote the event. Sequence numbers are taken before commit, so a
-- reader of "everything after N" can see N+2 before N+1 commits; a relay that must not skip one
-- reads in id order and treats a gap as open until every transaction older than the snapshot in
-- which it saw the gap has ended (pg_snapshot_xmin). See leadroute.workflow.log.

ALTER TABLE lead_events
    ADD COLUMN actor    text NOT NULL DEFAULT 'system',
    ADD COLUMN version  smallint NOT NULL DEFAULT 1,
    ADD COLUMN txid     xid8 NOT NULL DEFAULT pg_current_xact_id();

-- Activities: {"type", "properties"} -> {"activity", "properties", "points"} (points: the rules
-- that matched the activity, unknown for activities stored before the log recorded them).
UPDATE lead_events
   SET kind = 'activity.recorded',
       payload = jsonb_build_object('activity', payload -> 'type', 'properties', payload -> 'properties',
                                    'points', '[]'::jsonb)
 WHERE kind = 'activity';
DROP INDEX lead_events_activity_idx;
CREATE INDEX lead_events_activity_idx ON lead_events (lead_id, occurred_at) WHERE kind = 'activity.recorded';

-- The lead as posted: the body moves under "body", beside the key it was posted with.
UPDATE lead_events
   SET payload = jsonb_build_object('body', payload, 'idempotency_key', idempotency_key)
 WHERE kind = 'lead.received';

-- Workflow steps, renamed to the log's types and reshaped to its payloads.
UPDATE lead_events
   SET kind = 'lead.accepted', actor = coalesce('owner:' || (payload ->> 'owner'), 'api'),
       payload = jsonb_build_object('owner', payload -> 'owner', 'after_minutes', payload -> 'after_minutes',
                                    'sla_stopped', payload -> 'sla_stopped')
 WHERE kind = 'assignment.accepted';
UPDATE lead_events
   SET kind = 'lead.closed', actor = 'api',
       payload = jsonb_build_object('owner', payload -> 'owner', 'from_status', payload -> 'from_status',
                                    'reason', payload -> 'reason')
 WHERE kind = 'assignment.closed';
UPDATE lead_events
   SET kind = 'lead.sla_breached',
       payload = jsonb_build_object('owner', payload -> 'owner', 'due_at', payload -> 'due_at',
                                    'minutes', payload -> 'minutes', 'business_hours', payload -> 'business_hours',
                                    'breach', payload -> 'breach', 'on_breach', payload -> 'on_breach')
 WHERE kind = 'sla.breached';
UPDATE lead_events
   SET kind = CASE kind WHEN 'assignment.reassigned' THEN 'lead.reassigned'
                        WHEN 'assignment.escalated' THEN 'lead.escalated'
                        ELSE 'lead.queued' END,
       actor = CASE WHEN payload ->> 'by' = 'api' THEN 'api' ELSE 'system' END,
       payload = jsonb_strip_nulls(jsonb_build_object(
           'cause', CASE WHEN payload ->> 'by' = 'api' THEN 'reassign'
                         WHEN payload ? 'escalate_to' THEN 'escalation' ELSE 'sla_breach' END,
           'owner', payload -> 'to', 'pool', payload -> 'pool', 'queue', payload -> 'queue',
           'reason', coalesce(payload -> 'why', payload -> 'reason'), 'previous_owner', payload -> 'from',
           'escalate_to', payload -> 'escalate_to', 'note', payload -> 'note',
           'skipped', coalesce(payload -> 'skipped', '[]'::jsonb)))
 WHERE kind IN ('assignment.reassigned', 'assignment.escalated', 'assignment.fallback');
UPDATE lead_events
   SET kind = 'lead.assigned',
       payload = jsonb_build_object('cause', 'stage_rose', 'owner', payload -> 'owner', 'reason', payload -> 'reason')
 WHERE kind = 'lead.routed';

-- Leads stored before the log have decisions and intake assignments but no events for them:
-- write them now, at the time they happened (history orders by time, then sequence).
INSERT INTO lead_events (lead_id, kind, received_at, occurred_at, payload)
SELECT d.lead_id, 'lead.scored', d.decided_at, d.decided_at,
       jsonb_build_object(
           'cause', CASE WHEN e.kind = 'lead.received' THEN 'received' ELSE 'activity' END,
           'decision_id', d.id, 'score', d.score, 'stage', d.stage,
           'groups', (SELECT coalesce(jsonb_object_agg(g.key, g.value -> 'score'), '{}'::jsonb)
                        FROM jsonb_each(d.groups) AS g),
           'qualification_rule', d.qualification_rule, 'ruleset_version', d.ruleset_version,
           'ruleset_sha256', d.ruleset_sha256,
           'matched', (SELECT coalesce(jsonb_agg(DISTINCT m ->> 'rule'), '[]'::jsonb) FROM jsonb_array_elements(d.matched) AS m))
  FROM decisions AS d JOIN lead_events AS e ON e.id = d.event_id
 ORDER BY d.id;
INSERT INTO lead_events (lead_id, kind, received_at, occurred_at, payload)
SELECT a.lead_id, CASE WHEN a.owner_id IS NULL THEN 'lead.queued' ELSE 'lead.assigned' END, a.created_at, a.created_at,
       jsonb_strip_nulls(jsonb_build_object(
           'cause', 'received', 'owner', a.owner_id, 'pool', a.pool_id, 'queue', a.queue, 'reason', a.reason,
           'rule', a.rule, 'strategy', d.explanation -> 'assignment' ->> 'strategy',
           'skipped', coalesce(d.explanation -> 'assignment' -> 'owners_skipped', '[]'::jsonb)))
  FROM assignments AS a JOIN decisions AS d ON d.id = a.decision_id JOIN lead_events AS e ON e.id = d.event_id
 WHERE e.kind = 'lead.received'
 ORDER BY a.id;

-- History and explain read one lead's events in order.
DROP INDEX lead_events_lead_idx;
CREATE INDEX lead_events_lead_idx ON lead_events (lead_id, received_at, id);

-- Append-only: an event, once written, never changes. (Deleting a lead deletes its events.)
CREATE FUNCTION lead_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lead events are append-only: event % cannot be changed', OLD.id;
END
$$;
CREATE TRIGGER lead_events_append_only BEFORE UPDATE ON lead_events
    FOR EACH ROW EXECUTE FUNCTION lead_events_append_only();

-- Queued leads that wait for an owner of their pool: the queue drain offers them again, oldest
-- first, when one frees capacity or comes on shift. A lead parked by its SLA (too many breaches,
-- or an escalation nobody could take) or that no routing rule took does not wait: a person moves it.
ALTER TABLE assignments ADD COLUMN waiting boolean NOT NULL DEFAULT false;
UPDATE assignments SET waiting = true
 WHERE ended_at IS NULL AND status = 'unassigned' AND pool_id IS NOT NULL
   AND reason NOT LIKE 'the SLA was breached%' AND reason NOT LIKE 'escalation target%';
CREATE INDEX assignments_waiting_idx ON assignments (created_at, id) WHERE ended_at IS NULL AND waiting;

-- Decay: a lead whose score holds decaying activity points is requalified when rescore_at comes.
ALTER TABLE leads ADD COLUMN rescore_at timestamptz;
CREATE INDEX leads_rescore_idx ON leads (rescore_at) WHERE rescore_at IS NOT NULL;
UPDATE leads AS l SET rescore_at = now()
 WHERE l.status <> 'closed'
   AND EXISTS (SELECT 1 FROM lead_events AS e WHERE e.lead_id = l.id AND e.kind = 'activity.recorded');
