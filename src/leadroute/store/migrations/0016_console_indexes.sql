-- Indexes for the console's reads (issue 14 §1; leadroute.store.lead_search, store/sql/search.sql).
--
-- search_leads lists leads newest first, ORDER BY created_at DESC, id DESC with a keyset cursor
-- on (created_at, id): without an index on that order the default list (no filter) sorts every
-- lead to show 50. The owner filter (l.owner_id = $n) reads one owner's leads in the same order;
-- id DESC is in both indexes so the order is the index's own (no Sort, no Incremental Sort) and
-- the scan stops after one page.
CREATE INDEX leads_created_idx ON leads (created_at DESC, id DESC);
CREATE INDEX leads_owner_created_idx ON leads (owner_id, created_at DESC, id DESC);

-- lead_deliveries: every delivery of one lead's events (the lead page). The index of 0009 on
-- (endpoint_id, lead_id, event_seq) is partial (pending only) and starts with the endpoint.
CREATE INDEX outbound_deliveries_lead_all_idx ON outbound_deliveries (lead_id);
