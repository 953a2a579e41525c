"""Versioned SQL migrations, applied in order into HERALD_DB_SCHEMA and recorded."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from herald.shared.infra.paths import MIGRATIONS_DIR

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {folder}")
    return found


def migrate(url: str, schema: str, folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations; returns those applied (none on a second run)."""
    applied: list[Migration] = []
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        # One migrator at a time per schema.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"herald-migrate:{schema}",))
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for migration in discover(folder):
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.path.read_text())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                log.info(
                    "migration applied",
                    extra={"version": migration.version, "migration": migration.name},
                )
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"herald-migrate:{schema}",))
    return applied
