"""A key that is not an admin's always names a tenant (migration 0006)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from herald.shared.infra.crypto import api_key_digest
from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.db.pool import Database, connect_sync
from herald.shared.infra.runtime import Runtime
from herald.shared.stores.tenants import authenticate
from tests.conftest import Namespace
from tests.support.helpers import older_schema

pytestmark = pytest.mark.integration
INSERT = "INSERT INTO api_keys (id, tenant_id, is_admin, digest) VALUES (%s, %s, %s, %s)"


async def test_postgres_refuses_a_key_with_neither_a_tenant_nor_admin(rt: Runtime) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        await rt.db.execute(INSERT, (str(uuid.uuid4()), None, False, api_key_digest("hk_x")))
    await rt.db.execute(INSERT, (str(uuid.uuid4()), None, True, api_key_digest("hk_admin")))


async def test_the_migration_revokes_existing_keys_without_a_tenant(
    ns: Namespace, tmp_path: Path
) -> None:
    schema = ns.db_schema + "_keys"
    url = ns.base.database_url
    keys = {"tenantless": (None, False), "tenant": ("acme", False), "admin": (None, True)}
    with older_schema(url, schema, tmp_path, last=5):
        with connect_sync(url, schema) as conn:
            conn.execute("INSERT INTO tenants (id) VALUES ('acme')")
            for name, (tenant, admin) in keys.items():
                conn.execute(INSERT, (str(uuid.uuid4()), tenant, admin, api_key_digest(name)))
        assert 6 in [m.version for m in migrate(url, schema)]
        db = Database(url, schema, max_size=1)
        await db.open()
        try:
            assert await authenticate(db, "tenantless") is None
            tenant = await authenticate(db, "tenant")
            admin = await authenticate(db, "admin")
            assert tenant is not None and tenant.tenant_id == "acme" and not tenant.is_admin
            assert admin is not None and admin.is_admin
            row = await db.fetchone(
                "SELECT revoked_at FROM api_keys WHERE tenant_id IS NULL AND NOT is_admin"
            )
            assert row is not None and row["revoked_at"] is not None  # kept, revoked
        finally:
            await db.close()
