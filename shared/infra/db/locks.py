"""Named Postgres advisory locks: one process at a time for a task (the reconciler, the
pruning, the outbox relay) or one transaction at a time for a key (an idempotency key).
A name is hashed to the lock's key with `hashtext`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from herald.shared.infra.db.pool import Database, Row


@asynccontextmanager
async def held(db: Database, name: str) -> AsyncIterator[bool]:
    """Hold the lock `name` for the block if no other session holds it: yields True then,
    False (at once, without waiting) when another one does."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (name,))
        got = await cur.fetchone()
        if not got or not got["ok"]:
            yield False
            return
        try:
            yield True
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))


async def for_transaction(
    conn: psycopg.AsyncConnection[Row], name: str, *, wait: bool = True
) -> bool:
    """Take the lock `name` until the transaction ends: waits for it, or with `wait=False`
    answers False when another transaction holds it."""
    if wait:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        return True
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS ok", (name,))
    got = await cur.fetchone()
    return bool(got and got["ok"])


async def for_transaction_many(conn: psycopg.AsyncConnection[Row], names: list[str]) -> None:
    """Take the locks `names` until the transaction ends, in one statement and in one order
    (of their keys), so that two transactions taking overlapping sets never deadlock."""
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock(h)) FROM"
        " (SELECT DISTINCT hashtext(n) AS h FROM unnest(%s::text[]) AS n ORDER BY 1) AS k",
        (names,),
    )
