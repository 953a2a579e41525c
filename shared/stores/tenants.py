"""The `tenants` and `api_keys` tables. API keys are random tokens stored only as SHA-256
digests: checking one is a single indexed lookup, never a slow password hash."""

from __future__ import annotations

import uuid
from typing import Any

from herald.shared.domain.tenancy import Principal
from herald.shared.errors import NotFound
from herald.shared.infra.crypto import api_key_digest, new_api_key
from herald.shared.infra.db.pool import Database


async def ensure_tenant(db: Database, tenant_id: str) -> None:
    await ensure_tenants(db, [tenant_id])


async def ensure_tenants(db: Database | Any, tenant_ids: list[str]) -> None:
    """Create these tenants on first use (`db`: the pool, or a transaction's connection)."""
    await db.execute(
        "INSERT INTO tenants (id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
        (sorted(set(tenant_ids)),),
    )


async def create_api_key(
    db: Database, *, tenant_id: str | None, admin: bool, label: str = ""
) -> tuple[str, str]:
    """Returns (key id, key). The key itself is shown once and stored only as a digest."""
    if tenant_id is not None:
        await ensure_tenant(db, tenant_id)
    key = new_api_key()
    key_id = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO api_keys (id, tenant_id, is_admin, digest, label) VALUES (%s, %s, %s, %s, %s)",
        (key_id, None if admin else tenant_id, admin, api_key_digest(key), label),
    )
    return key_id, key


async def authenticate(db: Database, key: str) -> Principal | None:
    return (await authenticate_many(db, [key]))[0]


async def authenticate_many(db: Database, keys: list[str]) -> list[Principal | None]:
    """Each key's principal (None: unknown or revoked), in one statement: the API checks
    the keys of concurrent requests together."""
    digests = [api_key_digest(k) for k in keys]
    rows = await db.fetch(
        "SELECT digest, tenant_id, is_admin FROM api_keys"
        " WHERE digest = ANY(%s) AND revoked_at IS NULL",
        (digests,),
    )
    found = {
        r["digest"]: Principal(tenant_id=r["tenant_id"], is_admin=bool(r["is_admin"])) for r in rows
    }
    return [found.get(d) for d in digests]


async def list_api_keys(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, tenant_id, is_admin, label, created_at, revoked_at FROM api_keys"
        " ORDER BY created_at"
    )
    return [
        {
            "id": str(r["id"]),
            "tenant_id": r["tenant_id"],
            "admin": r["is_admin"],
            "label": r["label"],
            "created_at": r["created_at"],
            "revoked_at": r["revoked_at"],
        }
        for r in rows
    ]


async def revoke_api_key(db: Database, key_id: str) -> None:
    try:
        uuid.UUID(key_id)
    except ValueError as exc:
        raise NotFound(f"no API key {key_id}") from exc
    count = await db.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    if not count:
        raise NotFound(f"no active API key {key_id}")
