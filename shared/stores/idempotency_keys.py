"""The `idempotency_keys` table: a tenant's `Idempotency-Key` and the jobs its first request
made (kept at least 24 h), so the same key and body answers the same jobs again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from herald.shared.infra.db import locks
from herald.shared.infra.db.pool import Row, json_rows

Conn = psycopg.AsyncConnection[Row]


async def find_locked_many(conn: Conn, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
    """The rows of these (tenant, key) pairs, by pair; concurrent requests holding one of
    the keys wait for each other here (transaction-scoped locks until the caller's commit)."""
    await locks.for_transaction_many(conn, [f"{tenant}|{key}" for tenant, key in keys])
    cur = await conn.execute(
        "SELECT tenant_id, key, request_hash, job_ids, multi, post_id FROM idempotency_keys"
        " WHERE (tenant_id, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([t for t, _ in keys], [k for _, k in keys]),
    )
    return {(r["tenant_id"], r["key"]): r for r in await cur.fetchall()}


async def insert_many(conn: Conn, rows: list[dict[str, Any]]) -> None:
    """New keys, each naming `tenant_id`, `key`, `request_hash`, `post_id`, `job_ids`,
    `multi`: one statement."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, post_id, job_ids, multi)"
        " SELECT * FROM json_to_recordset(%s::json) AS r(tenant_id text, key text,"
        " request_hash text, post_id uuid, job_ids uuid[], multi boolean)",
        (json_rows(rows),),
    )


async def prune(conn: Conn, before: datetime, limit: int) -> int:
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM idempotency_keys WHERE created_at < %s LIMIT %s))",
        (before, limit),
    )
    return cur.rowcount
