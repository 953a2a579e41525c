"""`herald stack up` gives Herald a plain Postgres role that owns its database: a new
stack creates it so, and an older stack's superuser role is demoted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.settings import Settings
from stack.config import BIND_HOST, StackConfig
from stack.postgres_server import Postgres

pytestmark = pytest.mark.integration


def superuser(settings: Settings) -> psycopg.Connection[tuple[object, ...]]:
    port = StackConfig.from_settings(settings).postgres.endpoint.port
    return psycopg.connect(
        host=BIND_HOST, port=port, user="postgres", dbname="postgres", autocommit=True
    )


@pytest.fixture
def role_name(base_settings: Settings) -> Iterator[str]:
    """A throwaway role and database of the same name on the test stack's server."""
    name = f"herald_role_{uuid.uuid4().hex[:8]}"
    yield name
    with superuser(base_settings) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.mark.parametrize("older_stack", [False, True], ids=["fresh", "older-superuser"])
def test_the_application_role_is_a_plain_owner_of_its_database(
    base_settings: Settings, role_name: str, older_stack: bool
) -> None:
    port = StackConfig.from_settings(base_settings).postgres.endpoint.port
    url = f"postgresql://{role_name}@{BIND_HOST}:{port}/{role_name}"
    settings = base_settings.model_copy(update={"database_url": url})
    if older_stack:  # what `herald stack up` created before
        with superuser(settings) as conn:
            role = sql.Identifier(role_name)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(role))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(role))  # owned by postgres
    for _ in range(2):  # idempotent
        Postgres(StackConfig.from_settings(settings)).after_ready()

    with superuser(settings) as conn:
        found = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin,"
            " (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = rolname)"
            " FROM pg_roles WHERE rolname = %s",
            (role_name,),
        ).fetchone()
    assert found == (False, False, False, True, role_name)
    # Herald's own work needs nothing more: its schemas, migrations, dropping them.
    assert migrate(url, "herald")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO herald.tenants (id) VALUES (%s)", ("acme",))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE ROLE intruder")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO PROGRAM 'true'")
        conn.execute("DROP SCHEMA herald CASCADE")
