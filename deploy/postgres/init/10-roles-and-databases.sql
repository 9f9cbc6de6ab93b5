-- Runs once, when the PostgreSQL data volume is first initialised
-- (mounted into /docker-entrypoint-initdb.d by compose.yaml).
-- theodolite: the system of record (the api migrates its tables at start-up).
-- mlflow: the MLflow tracking server's backend store.
-- prefect: the Prefect server's database (task graph flow and task runs).
CREATE DATABASE theodolite;
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
