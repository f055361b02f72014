-- Mapping files of the inbound routes (issue 13, "CRM and form formats"): like rulesets, a
-- (name, version) names one content forever. The active version of a mapping is its row with the
-- latest activated_at: set when an instance loads a good file of that version.

CREATE TABLE inbound_mappings (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    version       integer NOT NULL CHECK (version >= 1),
    sha256        text NOT NULL,
    source        text NOT NULL,
    path          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text,
    activated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);
CREATE INDEX inbound_mappings_active_idx ON inbound_mappings (name, activated_at DESC);

-- A stored version never changes and is never deleted (TRUNCATE, used by tests, is not affected).
CREATE FUNCTION inbound_mappings_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'mapping % version % is stored and cannot be deleted', OLD.name, OLD.version;
    END IF;
    IF NEW.name <> OLD.name OR NEW.version <> OLD.version OR NEW.sha256 <> OLD.sha256
       OR NEW.source <> OLD.source THEN
        RAISE EXCEPTION 'mapping % version % cannot change; store the change as a new version',
            OLD.name, OLD.version;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER inbound_mappings_immutable BEFORE UPDATE OR DELETE ON inbound_mappings
    FOR EACH ROW EXECUTE FUNCTION inbound_mappings_immutable();
