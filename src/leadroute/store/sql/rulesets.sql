-- Ruleset versions and activations (docs/rulesets-admin.md). Writers hold ruleset_lock first.

-- name: ruleset_lock
-- Serialize every ruleset write (store, activate, rollback) across the fleet, until commit.
SELECT pg_advisory_xact_lock(1262834946);

-- name: ruleset_by_version
-- The stored ruleset of a version (legacy duplicates from before versions were enforced excluded).
SELECT id, version, sha256, description, source, path, status, loaded_at, created_by,
       published_at, published_by
  FROM rulesets WHERE version = $1 AND status <> 'legacy';

-- name: ruleset_by_id
-- One stored ruleset by id.
SELECT id, version, sha256, description, source, path, status, loaded_at, created_by,
       published_at, published_by
  FROM rulesets WHERE id = $1;

-- name: ruleset_insert
-- Store a new version: $7 is 'draft' or 'published'.
INSERT INTO rulesets (version, sha256, description, source, path, status, created_by, published_at, published_by)
VALUES ($1, $2, $3, $4, $5, $7, $6,
        CASE WHEN $7 = 'published' THEN now() END, CASE WHEN $7 = 'published' THEN $6 END)
RETURNING id;

-- name: ruleset_publish
-- Mark a draft published (no-op for a published one).
UPDATE rulesets SET status = 'published', published_at = now(), published_by = $2
 WHERE id = $1 AND status = 'draft';

-- name: ruleset_max_version
-- The highest version stored (0 when none).
SELECT coalesce(max(version), 0) FROM rulesets;

-- name: ruleset_active
-- The latest activation and the ruleset it made active; no row before the first activation.
SELECT a.id AS activation_id, a.ruleset_id, a.previous_id, a.action, a.actor, a.activated_at,
       r.version, r.sha256
  FROM ruleset_activations a JOIN rulesets r ON r.id = a.ruleset_id
 ORDER BY a.id DESC LIMIT 1;

-- name: ruleset_activation_by_id
-- One activation and the version it made active.
SELECT a.id AS activation_id, a.ruleset_id, a.previous_id, a.action, a.actor, a.activated_at,
       r.version, r.sha256
  FROM ruleset_activations a JOIN rulesets r ON r.id = a.ruleset_id
 WHERE a.id = $1;

-- name: ruleset_activation_insert
-- Record an activation; returns its id and time.
INSERT INTO ruleset_activations (ruleset_id, action, actor, previous_id)
VALUES ($1, $2, $3, $4)
RETURNING id, activated_at;

-- name: ruleset_notify
-- Tell every instance (LISTEN leadroute_rulesets) that the active ruleset changed; sent at commit.
SELECT pg_notify('leadroute_rulesets', $1);

-- name: ruleset_list
-- Every stored version, newest first, with its first and last activation.
SELECT r.id, r.version, r.sha256, r.description, r.path, r.status, r.loaded_at, r.created_by,
       r.published_at, r.published_by,
       min(a.activated_at) AS first_activated_at, max(a.activated_at) AS last_activated_at
  FROM rulesets r LEFT JOIN ruleset_activations a ON a.ruleset_id = r.id
 WHERE r.status <> 'legacy'
 GROUP BY r.id
 ORDER BY r.version DESC;

-- name: ruleset_activations_of
-- The activation history of one ruleset, oldest first.
SELECT id, action, actor, activated_at FROM ruleset_activations WHERE ruleset_id = $1 ORDER BY id;
