-- Mapping file versions of the inbound routes (leadroute.inbound._store).

-- name: mapping_lock
-- Serialise the start-up sync of mapping versions across instances (until the transaction ends).
SELECT pg_advisory_xact_lock(x'1EAD0013'::int);

-- name: mapping_get
-- One stored version of a mapping.
SELECT id, name, version, sha256, source, path, created_at, created_by, activated_at
  FROM inbound_mappings WHERE name = $1 AND version = $2;

-- name: mapping_insert
-- A new version, active from now.
INSERT INTO inbound_mappings (name, version, sha256, source, path, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id;

-- name: mapping_activate
-- Make a stored version the active one of its mapping (unless it already is).
UPDATE inbound_mappings SET activated_at = now()
 WHERE id = $1
   AND id IS DISTINCT FROM (SELECT a.id FROM inbound_mappings a WHERE a.name = $2
                             ORDER BY a.activated_at DESC, a.id DESC LIMIT 1);

-- name: mapping_active
-- The active version of a mapping, if any was ever stored.
SELECT id, name, version, sha256, source, path, created_at, created_by, activated_at
  FROM inbound_mappings WHERE name = $1 ORDER BY activated_at DESC, id DESC LIMIT 1;

-- name: mapping_list
-- Every stored version, by name and newest version first, with whether it is the active one.
SELECT m.name, m.version, m.sha256, m.path, m.created_at, m.created_by, m.activated_at,
       m.id = (SELECT a.id FROM inbound_mappings a WHERE a.name = m.name
                ORDER BY a.activated_at DESC, a.id DESC LIMIT 1) AS active
  FROM inbound_mappings m ORDER BY m.name, m.version DESC;

-- name: mapping_next_version
-- The next free version number of a mapping.
SELECT coalesce(max(version), 0) + 1 FROM inbound_mappings WHERE name = $1;

-- name: inbound_lead_by_attribute
-- The lead whose attribute $1 holds $2 (the CRM id intake stored), newest first; a lead merged
-- away by dedupe answers the lead it was merged into.
SELECT coalesce(merged_into, id) AS id
  FROM leads WHERE normalized -> 'attributes' ->> $1 = $2
 ORDER BY created_at DESC LIMIT 1;

-- name: inbound_lead_by_email
-- The lead with the normalized email $1 (leads_email_created_idx), newest first, as above.
SELECT coalesce(merged_into, id) AS id
  FROM leads WHERE email = $1
 ORDER BY created_at DESC LIMIT 1;
