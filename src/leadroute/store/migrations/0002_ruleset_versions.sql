-- Ruleset versions (issue 3, "Versions"): a version number names one content forever, and every
-- activation (start-up, API, CLI, watch, rollback) is a row; the active ruleset is the latest one.

ALTER TABLE rulesets
    ADD COLUMN status        text NOT NULL DEFAULT 'published',
    ADD COLUMN created_by    text,
    ADD COLUMN published_at  timestamptz,
    ADD COLUMN published_by  text;

UPDATE rulesets SET published_at = loaded_at;

-- Before this migration a version could be recorded twice with different content. Keep the newest
-- row of each version; older ones become 'legacy' (decisions still point at them, nothing loads them).
UPDATE rulesets AS old SET status = 'legacy'
 WHERE EXISTS (SELECT 1 FROM rulesets AS newer WHERE newer.version = old.version AND newer.id > old.id);

ALTER TABLE rulesets
    ADD CONSTRAINT rulesets_status_check CHECK (status IN ('draft', 'published', 'legacy'));

-- One content per version: uploading a changed file under an old version number is refused.
CREATE UNIQUE INDEX rulesets_version_key ON rulesets (version) WHERE status <> 'legacy';

-- Stored rulesets never change: version, checksum and source are fixed once written, and a
-- published version is neither unpublished nor deleted (TRUNCATE, used by tests, is not affected).
CREATE FUNCTION rulesets_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status = 'published' THEN
            RAISE EXCEPTION 'ruleset version % is published and cannot be deleted', OLD.version;
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.version <> OLD.version OR NEW.sha256 <> OLD.sha256 OR NEW.source <> OLD.source THEN
        RAISE EXCEPTION 'ruleset version % cannot change; store the change as a new version', OLD.version;
    END IF;
    IF OLD.status = 'published' AND NEW.status <> 'published' THEN
        RAISE EXCEPTION 'ruleset version % is published and stays published', OLD.version;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER rulesets_immutable BEFORE UPDATE OR DELETE ON rulesets
    FOR EACH ROW EXECUTE FUNCTION rulesets_immutable();

-- Every switch of the active ruleset. previous_id is the activation a rollback from this one
-- returns to: for an activation, the one it replaced; for a rollback, the one before the
-- activation it restored (so successive rollbacks walk back through history, not back and forth).
CREATE TABLE ruleset_activations (
    id            bigserial PRIMARY KEY,
    ruleset_id    bigint NOT NULL REFERENCES rulesets (id),
    action        text NOT NULL CHECK (action IN ('start', 'activate', 'rollback', 'watch')),
    actor         text,
    previous_id   bigint REFERENCES ruleset_activations (id),
    activated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ruleset_activations_ruleset_idx ON ruleset_activations (ruleset_id, id);
