"""The `idempotency_keys` table: a tenant's `Idempotency-Key` and the jobs its first request
made (kept at least 24 h), so the same key and body answers the same jobs again."""

from __future__ import annotations

from datetime import datetime

import psycopg

from herald.shared.infra.db import locks
from herald.shared.infra.db.pool import Row

Conn = psycopg.AsyncConnection[Row]


async def find_locked(conn: Conn, tenant_id: str, key: str) -> Row | None:
    """The key's row; concurrent requests with the same key wait for each other here (a
    transaction-scoped lock until the caller's commit)."""
    await locks.for_transaction(conn, f"{tenant_id}|{key}")
    cur = await conn.execute(
        "SELECT request_hash, job_ids, multi, post_id FROM idempotency_keys"
        " WHERE tenant_id = %s AND key = %s",
        (tenant_id, key),
    )
    return await cur.fetchone()


async def insert(
    conn: Conn,
    *,
    tenant_id: str,
    key: str,
    digest: str,
    post_id: str,
    job_ids: list[str],
    multi: bool,
) -> None:
    await conn.execute(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, post_id, job_ids, multi)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (tenant_id, key, digest, post_id, job_ids, multi),
    )


async def prune(conn: Conn, before: datetime, limit: int) -> int:
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM idempotency_keys WHERE created_at < %s LIMIT %s))",
        (before, limit),
    )
    return cur.rowcount
