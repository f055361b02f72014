-- Advisory locks (leadroute.store.locks).

-- name: lock_xact_shared
-- Hold advisory lock $1 shared until the transaction ends.
SELECT pg_advisory_xact_lock_shared($1);

-- name: lock_session
-- Hold advisory lock $1 exclusively for the session (waits up to lock_timeout).
SELECT pg_advisory_lock($1);

-- name: lock_try_session
-- Take advisory lock $1 for the session if it is free; whether it was taken.
SELECT pg_try_advisory_lock($1);

-- name: lock_session_release
-- Release session lock $1.
SELECT pg_advisory_unlock($1);

-- name: lock_timeout_set
-- How long this session's lock waits may last ('0': no limit).
SELECT set_config('lock_timeout', $1, false);

-- name: owners_exist
-- Whether any owner exists (the demo seed only fills an empty database).
SELECT EXISTS (SELECT 1 FROM owners);

-- name: ping
-- PostgreSQL answers.
SELECT 1;
