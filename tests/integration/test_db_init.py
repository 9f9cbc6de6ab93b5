"""The roles-and-databases script (deploy/postgres/init), run by psql as compose's `db-init` runs
it, against this machine's PostgreSQL: it creates what is missing on a volume an older release
made, and a second run changes nothing. Roles and databases get names of their own per test and
are dropped after it."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.compose import POSTGRES_INIT

ROOT = Path(__file__).resolve().parents[2]
SERVER = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
ROLES = ("api", "registry", "mlflow", "prefect")
DATABASES = {"theodolite": "api", "mlflow": "mlflow", "prefect": "prefect"}


def psql(*args: str, database: str = "postgres") -> str:
    done = subprocess.run(
        ["psql", *SERVER, "-d", database, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


class Names:
    """One test's roles and databases: ``<prefix>_api`` and so on."""

    def __init__(self, secrets_dir: Path) -> None:
        self.prefix = f"dbinit_{uuid.uuid4().hex[:8]}"
        self.secrets_dir = secrets_dir

    def role(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def database(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def variables(self) -> list[str]:
        pairs = {"secrets_dir": str(self.secrets_dir)}
        pairs |= {f"{role}_role": self.role(role) for role in ROLES}
        pairs |= {f"{db}_db": self.database(db) for db in DATABASES}
        return [arg for key, value in pairs.items() for arg in ("-v", f"{key}={value}")]

    def run_script(self) -> None:
        psql(*self.variables(), "-f", str(ROOT / POSTGRES_INIT))

    def state(self) -> dict[str, str]:
        """What the script sets: roles (with their password hashes), databases, owners and
        access lists, the schema's and the registry tables' grants, the trigger and its function."""
        like = f"{self.prefix}\\_%"
        theodolite = self.database("theodolite")
        return {
            "roles": psql(
                "-c",
                "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolpassword"
                f" FROM pg_authid WHERE rolname LIKE '{like}' ORDER BY 1",
            ),
            "databases": psql(
                "-c",
                "SELECT datname, pg_get_userbyid(datdba), datacl FROM pg_database"
                f" WHERE datname LIKE '{like}' ORDER BY 1",
            ),
            "schema": psql("-c", "SELECT nspacl FROM pg_namespace WHERE nspname = 'public'", database=theodolite),
            "tables": psql(
                "-c", "SELECT relname, relacl FROM pg_class WHERE relkind = 'r'"
                " AND relnamespace = 'public'::regnamespace ORDER BY 1",
                database=theodolite,
            ),
            "trigger": psql(
                "-c", "SELECT evtname, evtevent, evttags, evtfoid::regproc, prosrc"
                " FROM pg_event_trigger JOIN pg_proc ON pg_proc.oid = evtfoid",
                database=theodolite,
            ),
        }  # fmt: skip


@pytest.fixture
def names(tmp_path: Path) -> Iterator[Names]:
    for role in ROLES:
        (tmp_path / f"postgres_{role}_password").write_text(f"secret-{role}-{uuid.uuid4().hex}\n")
    made = Names(tmp_path)
    try:
        yield made
    finally:
        for db in DATABASES:
            psql("-c", f'DROP DATABASE IF EXISTS "{made.database(db)}" WITH (FORCE)')
        for role in ROLES:
            psql("-c", f'DROP ROLE IF EXISTS "{made.role(role)}"')


def test_creates_every_role_and_database_and_a_second_run_changes_nothing(names: Names) -> None:
    names.run_script()
    first = names.state()
    roles = [line.split("|")[:2] for line in first["roles"].splitlines()]
    assert sorted(roles) == sorted([names.role(r), "t"] for r in ROLES)
    owners = {line.split("|")[0]: line.split("|")[1] for line in first["databases"].splitlines()}
    assert owners == {names.database(db): names.role(owner) for db, owner in DATABASES.items()}
    # Nobody else connects; the registry may connect to theodolite, and only there.
    acls = {
        line.split("|")[0]: line.split("|")[2].strip("{}").split(",")
        for line in first["databases"].splitlines()
    }
    for database, acl in acls.items():
        assert not [item for item in acl if item.startswith("=")], (database, acl)  # PUBLIC's
        grantees = {item.split("=")[0] for item in acl}
        expected = {names.role(DATABASES[database.removeprefix(f"{names.prefix}_")])}
        if database == names.database("theodolite"):
            expected.add(names.role("registry"))
        assert grantees == expected, (database, acl)
    theodolite_acl = acls[names.database("theodolite")]
    assert f"{names.role('registry')}=c/{names.role('api')}" in theodolite_acl  # CONNECT only

    names.run_script()
    assert names.state() == first


def test_an_older_volume_gets_what_is_missing_and_keeps_what_it_has(names: Names) -> None:
    """As an upgrade finds it: the api's role and database with the migrated registry tables,
    made before the registry had a role; no prefect role or database yet."""
    api, theodolite = names.role("api"), names.database("theodolite")
    psql("-c", f"CREATE ROLE \"{api}\" LOGIN PASSWORD 'from-the-old-release'")
    psql("-c", f'CREATE DATABASE "{theodolite}" OWNER "{api}"')
    psql(
        "-c", f'SET ROLE "{api}"',
        "-c", "CREATE TABLE plugin_names (name text PRIMARY KEY)",
        "-c", "CREATE TABLE groups (id int PRIMARY KEY)",
        "-c", "CREATE TABLE jobs (id int PRIMARY KEY)",
        database=theodolite,
    )  # fmt: skip
    old_password = psql("-c", f"SELECT rolpassword FROM pg_authid WHERE rolname = '{api}'")

    names.run_script()

    state = names.state()
    assert len(state["roles"].splitlines()) == len(ROLES)
    assert len(state["databases"].splitlines()) == len(DATABASES)
    # The existing role keeps its password (a role's password changes only by ALTER ROLE).
    assert psql("-c", f"SELECT rolpassword FROM pg_authid WHERE rolname = '{api}'") == old_password
    # The registry got its rights on the tables the old release had migrated, nothing else.
    registry = names.role("registry")
    grants = psql(
        "-c", "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)"
        f" FROM information_schema.role_table_grants WHERE grantee = '{registry}' GROUP BY 1 ORDER BY 1",
        database=theodolite,
    )  # fmt: skip
    assert grants.splitlines() == ["groups|SELECT", "plugin_names|DELETE,INSERT,SELECT,UPDATE"]

    # Tables the api's migrations make later are granted as they are created.
    psql(
        "-c", f'SET ROLE "{api}"', "-c", "CREATE TABLE plugin_versions (id int PRIMARY KEY)",
        database=theodolite,
    )  # fmt: skip
    granted = psql(
        "-c", f"SELECT has_table_privilege('{registry}', 'plugin_versions', 'INSERT'),"
        f" has_table_privilege('{registry}', 'jobs', 'SELECT')",
        database=theodolite,
    )  # fmt: skip
    assert granted.strip() == "t|f"
    before = names.state()
    names.run_script()
    assert names.state() == before
