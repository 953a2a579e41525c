"""Migration 0004 numbers existing connections and every new one (decision 0010)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from herald.shared.infra.db.migrate import migrate
from tests.conftest import Namespace
from tests.support.helpers import older_schema

INSERT = "INSERT INTO connections (id, tenant_id, platform, name) VALUES (%s, 't', 'sandbox', %s)"


def test_existing_and_new_connections_get_consecutive_placements(
    ns: Namespace, tmp_path: Path
) -> None:
    schema = ns.db_schema + "_place"
    url = ns.base.database_url
    before = [uuid.uuid4() for _ in range(3)]
    with older_schema(url, schema, tmp_path, last=3):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("INSERT INTO tenants (id) VALUES ('t')")
            for i, cid in enumerate(before):
                conn.execute(INSERT, (cid, f"old {i}"))
        assert 4 in [m.version for m in migrate(url, schema)]
        after = uuid.uuid4()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(INSERT, (after, "new"))
            found = conn.execute("SELECT id::text, placement FROM connections").fetchall()
    rows = {uuid.UUID(cid): placement for cid, placement in found}
    assert sorted(rows[c] for c in before) == [1, 2, 3]
    assert rows[after] == 4
