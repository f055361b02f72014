-- name: reconcile_owner_days
-- Every owner's local date at $1: which daily counts in Redis are today's.
SELECT id AS owner_id, (($1::timestamptz) AT TIME ZONE timezone)::date::text AS day FROM owners;
