"""The `connections` table: platform accounts, each token encrypted at rest (the ciphertext
is written and read here; only the connection service and the publisher decrypt it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from herald.shared.infra.db.pool import Database, Row

Conn = psycopg.AsyncConnection[Row]


@dataclass(frozen=True)
class TokenLife:
    """When a token was stored, when it expires and when it is refreshed (None: unknown,
    never)."""

    issued_at: datetime | None = None
    expires_at: datetime | None = None
    refresh_at: datetime | None = None


COLUMNS = (
    "id, tenant_id, platform, name, metadata, status, created_at, updated_at,"
    " token_issued_at, token_expires_at, token_refresh_at, token_refresh_error"
)


async def insert(
    db: Database,
    *,
    connection_id: str,
    tenant_id: str,
    platform: str,
    name: str,
    metadata: dict[str, Any],
    ciphertext: bytes | None,
    life: TokenLife | None = None,
) -> Row:
    life = life or TokenLife()
    row = await db.fetchone(
        f"INSERT INTO connections (id, tenant_id, platform, name, metadata, token_ciphertext,"
        f" token_issued_at, token_expires_at, token_refresh_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
        (
            connection_id,
            tenant_id,
            platform,
            name,
            Jsonb(metadata),
            ciphertext,
            life.issued_at,
            life.expires_at,
            life.refresh_at,
        ),
    )
    assert row is not None
    return row


async def get(db: Database, connection_id: str) -> Row | None:
    return await db.fetchone(f"SELECT {COLUMNS} FROM connections WHERE id = %s", (connection_id,))


async def page(db: Database, filters: dict[str, Any]) -> list[Row]:
    """Oldest first, after the cursor (`after_ts`, `after_id`), `limit` rows; `tenant` and
    `platform` optional."""
    return await db.fetch(
        f"SELECT {COLUMNS} FROM connections"
        " WHERE (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)"
        " AND (%(platform)s::text IS NULL OR platform = %(platform)s)"
        " AND (%(after_ts)s::timestamptz IS NULL"
        "      OR (created_at, id) > (%(after_ts)s, %(after_id)s::uuid))"
        " ORDER BY created_at, id LIMIT %(limit)s",
        filters,
    )


# When the token's life columns are written: with a new token, or for the token kept while
# the row still holds it.
_LIFE = "%(life)s AND (%(new_token)s OR token_issued_at = %(issued_at)s)"


async def update(
    db: Database,
    connection_id: str,
    *,
    name: str,
    metadata: dict[str, Any],
    status: str | None,
    ciphertext: bytes | None,
    life: TokenLife | None = None,
) -> Row:
    """Name and metadata; the status, the token and its `life` only when given (None leaves
    them). A `life` without a new token is the kept token's under new metadata: it is
    written only while the row still holds that token (its `issued_at`), so a token stored
    meanwhile keeps its own."""
    row = await db.fetchone(
        f"UPDATE connections SET name = %(name)s, metadata = %(metadata)s,"
        f" status = COALESCE(%(status)s, status),"
        f" token_ciphertext = COALESCE(%(ciphertext)s, token_ciphertext),"
        f" token_issued_at = CASE WHEN {_LIFE} THEN %(issued_at)s ELSE token_issued_at END,"
        f" token_expires_at = CASE WHEN {_LIFE} THEN %(expires_at)s ELSE token_expires_at END,"
        f" token_refresh_at = CASE WHEN {_LIFE} THEN %(refresh_at)s ELSE token_refresh_at END,"
        f" token_refresh_error = CASE WHEN {_LIFE} THEN NULL ELSE token_refresh_error END,"
        f" updated_at = now() WHERE id = %(id)s RETURNING {COLUMNS}",
        {
            "name": name,
            "metadata": Jsonb(metadata),
            "status": status,
            "ciphertext": ciphertext,
            "life": life is not None,
            "new_token": ciphertext is not None,
            "issued_at": life.issued_at if life else None,
            "expires_at": life.expires_at if life else None,
            "refresh_at": life.refresh_at if life else None,
            "id": connection_id,
        },
    )
    assert row is not None
    return row


async def disable(db: Database, connection_id: str) -> Row:
    row = await db.fetchone(
        f"UPDATE connections SET status = 'disabled', updated_at = now() WHERE id = %s"
        f" RETURNING {COLUMNS}",
        (connection_id,),
    )
    assert row is not None
    return row


async def mark_needs_reauth(db: Database, connection_id: str, ciphertext: bytes | None) -> bool:
    """The platform refused this token: `needs_reauth`, unless a new token replaced it
    since it was read (`ciphertext`: the token as read; None: the connection had none)."""
    changed = await db.execute(
        "UPDATE connections SET status = 'needs_reauth', updated_at = now()"
        " WHERE id = %s AND status = 'active'"
        " AND token_ciphertext IS NOT DISTINCT FROM %s",
        (connection_id, ciphertext),
    )
    return changed > 0


async def due_for_refresh(db: Database, limit: int) -> list[Row]:
    """Active connections whose token is due for a refresh, soonest first."""
    return await db.fetch(
        "SELECT id FROM connections WHERE token_refresh_at <= now() AND status = 'active'"
        " AND token_ciphertext IS NOT NULL ORDER BY token_refresh_at LIMIT %s",
        (limit,),
    )


async def refreshing(db: Database | Conn, connection_id: str) -> Row | None:
    """A connection as the token keeper reads it under its lock (the ciphertext included)."""
    sql = f"SELECT {COLUMNS}, token_ciphertext FROM connections WHERE id = %s"
    if isinstance(db, Database):
        return await db.fetchone(sql, (connection_id,))
    return await (await db.execute(sql, (connection_id,))).fetchone()


async def store_refreshed(
    db: Database, connection_id: str, old: bytes, new: bytes, life: TokenLife
) -> bool:
    """The refreshed token, only while the row still holds the one refreshed (a token
    stored meanwhile wins)."""
    changed = await db.execute(
        "UPDATE connections SET token_ciphertext = %s, token_issued_at = %s,"
        " token_expires_at = %s, token_refresh_at = %s, token_refresh_error = NULL,"
        " updated_at = now() WHERE id = %s AND token_ciphertext = %s",
        (new, life.issued_at, life.expires_at, life.refresh_at, connection_id, old),
    )
    return changed > 0


async def refresh_later(
    db: Database, connection_id: str, old: bytes, at: Any, error: str | None
) -> None:
    """No refresh now: the next try at `at` (None: never), and why (`error`)."""
    await db.execute(
        "UPDATE connections SET token_refresh_at = %s, token_refresh_error = %s"
        " WHERE id = %s AND token_ciphertext = %s",
        (at, error, connection_id, old),
    )


async def by_ids(db: Database, ids: list[str]) -> list[Row]:
    """What scheduling checks of a job's connections (ids that are not UUIDs find none)."""
    valid = []
    for value in ids:
        try:
            valid.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return await db.fetch(
        "SELECT id, tenant_id, platform, status FROM connections WHERE id = ANY(%s::uuid[])",
        (valid,),
    )


async def of_jobs(conn: Conn, keys: str) -> Any:
    """The connections of these jobs, each once, with their ciphertext: the publisher's
    claim transaction (a cursor: pipelined)."""
    return await conn.execute(
        "SELECT id AS connection_id, tenant_id AS connection_tenant,"
        " platform AS connection_platform, name AS connection_name,"
        " status AS connection_status, metadata AS connection_metadata, token_ciphertext"
        " FROM connections WHERE id IN (SELECT connection_id FROM jobs"
        " WHERE id = ANY(%s::uuid[]))",
        (keys,),
    )


async def counts(db: Database) -> list[Row]:
    """Connections by platform and status (a gauge)."""
    return await db.fetch("SELECT platform, status, count(*) AS n FROM connections GROUP BY 1, 2")


async def tokens_after(db: Database, after: uuid.UUID, limit: int) -> list[Row]:
    """Connections with a token, by id after `after` (a rekey's pages)."""
    return await db.fetch(
        "SELECT id, token_ciphertext FROM connections"
        " WHERE id > %s AND token_ciphertext IS NOT NULL ORDER BY id LIMIT %s",
        (after, limit),
    )


async def replace_token(conn: Conn, connection_id: Any, old: Any, new: bytes) -> bool:
    """The token re-encrypted, only while the row still holds `old` (a token changed
    meanwhile is neither lost nor encrypted twice)."""
    cur = await conn.execute(
        "UPDATE connections SET token_ciphertext = %s WHERE id = %s AND token_ciphertext = %s",
        (new, connection_id, old),
    )
    return cur.rowcount > 0


async def token(db: Database | Conn, connection_id: Any) -> Any:
    """The token's ciphertext (None: no token, or no such connection)."""
    sql = "SELECT token_ciphertext FROM connections WHERE id = %s"
    if isinstance(db, Database):
        row = await db.fetchone(sql, (connection_id,))
    else:
        row = await (await db.execute(sql, (connection_id,))).fetchone()
    return row["token_ciphertext"] if row else None
