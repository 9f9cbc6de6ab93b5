-- Runs once, as the superuser, when the PostgreSQL data volume is first initialised (compose.yaml
-- and deploy/swarm/stack.yaml put it into /docker-entrypoint-initdb.d).
--
-- Every service logs in as a role of its own, whose password comes from a secret file (psql reads
-- it: nothing secret is written here), with only the rights it needs:
--   api       owns the database `theodolite`: it applies the migrations and owns every table.
--   registry  connects to `theodolite` and reads and writes only its own tables (plugin_names,
--             plugin_versions, plugin_drops) and reads groups (plugin owners); it never migrates.
--   mlflow    owns the database `mlflow` (the tracking server's backend store).
--   prefect   owns the database `prefect` (flow and task runs of task graphs).
-- Workers have no database role at all: they reach the api, the broker, MLflow and Prefect.
\set ON_ERROR_STOP on

\set api_password `cat /run/secrets/postgres_api_password`
\set registry_password `cat /run/secrets/postgres_registry_password`
\set mlflow_password `cat /run/secrets/postgres_mlflow_password`
\set prefect_password `cat /run/secrets/postgres_prefect_password`

CREATE ROLE api LOGIN PASSWORD :'api_password';
CREATE ROLE registry LOGIN PASSWORD :'registry_password';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE ROLE prefect LOGIN PASSWORD :'prefect_password';

CREATE DATABASE theodolite OWNER api;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE prefect OWNER prefect;
-- Nobody but a database's owner (and whom it is granted to) connects to it.
REVOKE ALL ON DATABASE theodolite, mlflow, prefect FROM PUBLIC;
GRANT CONNECT ON DATABASE theodolite TO registry;

\connect theodolite
-- The schema belongs to the database owner (api); the registry may only look into it.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO registry;

-- The api's migrations create the registry's tables too (one migration history), after this
-- script has run: when they are created, the registry is granted exactly its rights on them.
CREATE FUNCTION grant_registry_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
    created record;
BEGIN
    FOR created IN
        SELECT object_identity FROM pg_event_trigger_ddl_commands()
        WHERE command_tag = 'CREATE TABLE'
    LOOP
        IF created.object_identity IN (
            'public.plugin_names', 'public.plugin_versions', 'public.plugin_drops'
        ) THEN
            EXECUTE format(
                'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO registry',
                created.object_identity
            );
        ELSIF created.object_identity = 'public.groups' THEN
            EXECUTE format('GRANT SELECT ON TABLE %s TO registry', created.object_identity);
        END IF;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER grant_registry_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION grant_registry_tables();
