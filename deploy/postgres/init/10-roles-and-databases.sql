-- The roles and databases of every service, created if missing, their grants re-applied.
-- Idempotent, run as the superuser in two ways (compose.yaml, deploy/swarm/stack.yaml):
--   * once by PostgreSQL itself, when the data volume is first initialised (the image runs what
--     lies in /docker-entrypoint-initdb.d);
--   * on every start by the one-shot `db-init`, so a volume made by an older release gets what a
--     newer one adds (the image's init scripts never run again on a volume that has data).
-- A second run changes nothing: what exists is kept (a role keeps its password: change one with
-- ALTER ROLE), grants are set again as they were.
--
-- Every service logs in as a role of its own, whose password comes from a secret file (psql reads
-- it: nothing secret is written here), with only the rights it needs:
--   api       owns the database `theodolite`: it applies the migrations and owns every table.
--   registry  connects to `theodolite` and reads and writes only its own tables (plugin_names,
--             plugin_versions, plugin_drops) and reads groups (plugin owners); it never migrates.
--   mlflow    owns the database `mlflow` (the tracking server's backend store).
--   prefect   owns the database `prefect` (flow and task runs of task graphs).
-- Workers have no database role at all: they reach the api, the broker, MLflow and Prefect.
--
-- Names and the secrets folder are psql variables with these defaults (`psql -v api_role=...`
-- changes one; the tests use names of their own).
\set ON_ERROR_STOP on

\if :{?secrets_dir} \else \set secrets_dir /run/secrets \endif
\if :{?api_role} \else \set api_role api \endif
\if :{?registry_role} \else \set registry_role registry \endif
\if :{?mlflow_role} \else \set mlflow_role mlflow \endif
\if :{?prefect_role} \else \set prefect_role prefect \endif
\if :{?theodolite_db} \else \set theodolite_db theodolite \endif
\if :{?mlflow_db} \else \set mlflow_db mlflow \endif
\if :{?prefect_db} \else \set prefect_db prefect \endif

\set api_password `cat :secrets_dir/postgres_api_password`
\set registry_password `cat :secrets_dir/postgres_registry_password`
\set mlflow_password `cat :secrets_dir/postgres_mlflow_password`
\set prefect_password `cat :secrets_dir/postgres_prefect_password`

-- CREATE ROLE and CREATE DATABASE have no IF NOT EXISTS: each is written only when missing and
-- run by \gexec (CREATE DATABASE may not run inside a function or a transaction block).
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', role, password)
FROM (VALUES (:'api_role', :'api_password'), (:'registry_role', :'registry_password'),
             (:'mlflow_role', :'mlflow_password'), (:'prefect_role', :'prefect_password'))
     AS wanted (role, password)
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) \gexec

SELECT format('CREATE DATABASE %I OWNER %I', db, owner)
FROM (VALUES (:'theodolite_db', :'api_role'), (:'mlflow_db', :'mlflow_role'),
             (:'prefect_db', :'prefect_role'))
     AS wanted (db, owner)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = db) \gexec

-- Nobody but a database's owner (and whom it is granted to) connects to it.
REVOKE ALL ON DATABASE :"theodolite_db", :"mlflow_db", :"prefect_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"theodolite_db" TO :"registry_role";

\connect :"theodolite_db"
-- The schema belongs to the database owner (api); the registry may only look into it.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"registry_role";

-- The registry's rights on its tables where the migrations made them already (an upgrade) ...
SELECT format(
    'GRANT %s ON TABLE public.%I TO %I',
    CASE WHEN tablename = 'groups' THEN 'SELECT' ELSE 'SELECT, INSERT, UPDATE, DELETE' END,
    tablename, :'registry_role'
)
FROM pg_tables
WHERE schemaname = 'public'
  AND tablename IN ('plugin_names', 'plugin_versions', 'plugin_drops', 'groups') \gexec

-- ... and as the api's migrations create them (one migration history makes the registry's
-- tables too, after this script has run): the registry is granted exactly its rights on them.
SELECT format($function$
CREATE OR REPLACE FUNCTION grant_registry_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
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
                'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %%s TO %%I',
                created.object_identity, %L
            );
        ELSIF created.object_identity = 'public.groups' THEN
            EXECUTE format('GRANT SELECT ON TABLE %%s TO %%I', created.object_identity, %L);
        END IF;
    END LOOP;
END
$$
$function$, :'registry_role', :'registry_role') \gexec

SELECT 'CREATE EVENT TRIGGER grant_registry_tables ON ddl_command_end'
       ' WHEN TAG IN (''CREATE TABLE'') EXECUTE FUNCTION grant_registry_tables()'
WHERE NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'grant_registry_tables') \gexec
