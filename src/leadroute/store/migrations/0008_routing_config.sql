-- The version of the routing configuration (owners, pools, pool members). Every instance caches
-- the configuration in memory and checks this version in the statement that takes the routing
-- lock, so a lead costs no reads of owners or pools unless they changed. Any change to those
-- tables bumps it in the changing transaction (statement triggers, so nothing can forget to):
-- the version is the writing transaction's id, unique forever, even across a TRUNCATE.
CREATE TABLE routing_config (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    version  bigint NOT NULL
);

CREATE FUNCTION routing_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO routing_config (id, version) VALUES (true, pg_current_xact_id()::text::bigint)
    ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
    RETURN NULL;
END
$$;

CREATE TRIGGER owners_routing_config AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON owners
    FOR EACH STATEMENT EXECUTE FUNCTION routing_config_changed();
CREATE TRIGGER pools_routing_config AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pools
    FOR EACH STATEMENT EXECUTE FUNCTION routing_config_changed();
CREATE TRIGGER pool_members_routing_config AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pool_members
    FOR EACH STATEMENT EXECUTE FUNCTION routing_config_changed();

INSERT INTO routing_config (id, version) VALUES (true, pg_current_xact_id()::text::bigint);
