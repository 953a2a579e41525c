"""Dead letters: Postgres rows (the source for the API and redrive) mirrored to publish.dlq
through the outbox, in the same transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from herald.shared.domain.outcomes import DeadLetterReason
from herald.shared.errors import DomainError, InvalidMessage
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Database, Row, without_nul
from herald.shared.infra.names import Names
from herald.shared.messages.dlq import dlq_event
from herald.shared.stores import outbox

log = logging.getLogger(__name__)


async def insert(
    conn: psycopg.AsyncConnection[Row],
    names: Names,
    *,
    reason: str,
    job_id: str | None,
    tenant_id: str | None,
    platform: str | None = None,
    connection_id: str | None = None,
    attempt: int | None = None,
    last_error: dict[str, Any] | None = None,
    raw: bytes | None = None,
    source_topic: str | None = None,
    request: dict[str, Any] | None = None,
    last_result: dict[str, Any] | None = None,
    attempt_summary: list[dict[str, Any]] | None = None,
    trace_id: str | None = None,
) -> str:
    dl_id = str(uuid.uuid4())
    last_error = without_nul(last_error)  # its text may quote what was refused
    await conn.execute(
        "INSERT INTO dead_letters (id, job_id, tenant_id, platform, connection_id, reason,"
        " attempt, last_error, raw, source_topic) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            dl_id,
            job_id,
            tenant_id,
            platform,
            connection_id,
            reason,
            attempt,
            Jsonb(last_error) if last_error is not None else None,
            raw,
            source_topic,
        ),
    )
    event = dlq_event(
        dead_letter_id=dl_id,
        reason=reason,
        job_id=job_id,
        tenant_id=tenant_id,
        error=last_error,
        raw=raw,
        source_topic=source_topic,
        request=request,
        last_result=last_result,
        attempt_summary=attempt_summary,
        trace_id=trace_id,
    )
    await outbox.add(conn, names, [event])
    log.warning(
        "dead-lettered", extra={"job_id": job_id, "reason": reason, "source_topic": source_topic}
    )
    return dl_id


async def record_invalid(
    db: Database,
    names: Names,
    *,
    source_topic: str,
    raw: bytes | None,
    error: InvalidMessage | DomainError,
    job_id: str | None = None,
    tenant_id: str | None = None,
) -> str:
    """A message that failed validation or was refused: kept with its raw bytes."""
    body = (
        error.to_body()["error"]
        if isinstance(error, DomainError)
        else {"code": "invalid_message", "message": str(error), "fields": error.fields}
    )
    async with db.transaction() as conn:
        dl_id = await insert(
            conn,
            names,
            reason=DeadLetterReason.INVALID_MESSAGE,
            job_id=job_id,
            tenant_id=tenant_id,
            last_error=body,
            raw=raw or b"",
            source_topic=source_topic,
        )
    # Counted after the commit (callers of `insert` count theirs after their own commit).
    metrics.DEAD_LETTERED.labels(DeadLetterReason.INVALID_MESSAGE.value).inc()
    return dl_id


async def prune(conn: psycopg.AsyncConnection[Row], before: datetime, limit: int) -> int:
    """Drop dead letters made before `before` (at most `limit`)."""
    cur = await conn.execute(
        "DELETE FROM dead_letters WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM dead_letters WHERE created_at < %s LIMIT %s))",
        (before, limit),
    )
    return cur.rowcount


# The filters of a listing or a redrive on `dead_letters d` (each optional), as a principal
# sees them: a tenant its own rows, never `invalid_message` ones (those are an admin's).
_FILTERS = (
    " (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s)"
    " AND (%(admin)s OR d.reason <> 'invalid_message')"
    " AND (%(platform)s::text IS NULL OR d.platform = %(platform)s)"
    " AND (%(reason)s::text IS NULL OR d.reason = %(reason)s)"
    " AND (%(conn)s::uuid IS NULL OR d.connection_id = %(conn)s)"
    " AND (%(since)s::timestamptz IS NULL OR d.created_at >= %(since)s)"
    " AND (%(until)s::timestamptz IS NULL OR d.created_at < %(until)s)"
    " AND (%(ids)s::uuid[] IS NULL OR d.job_id = ANY(%(ids)s::uuid[]))"
)


async def page(db: Database, params: dict[str, Any]) -> list[Row]:
    """Newest first, after the cursor; `redriven` includes those redriven already."""
    return await db.fetch(
        "SELECT d.id, d.job_id, d.tenant_id, d.platform, d.connection_id, d.reason, d.attempt,"
        " d.last_error, d.raw, d.created_at, d.redriven_at FROM dead_letters d WHERE"
        + _FILTERS
        + " AND (%(redriven)s OR d.redriven_at IS NULL)"
        " AND (%(after_ts)s::timestamptz IS NULL"
        "      OR (d.created_at, d.id) < (%(after_ts)s, %(after_id)s::uuid))"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT %(limit)s",
        params,
    )


async def replayable(db: Database, params: dict[str, Any]) -> list[str]:
    """The jobs of open dead letters matching the filters that are still DEAD_LETTERED,
    oldest first: never `invalid_message`; those whose post may be live only with
    `force`."""
    rows = await db.fetch(
        "SELECT j.id, min(d.created_at) AS first FROM dead_letters d JOIN jobs j ON j.id = d.job_id"
        " WHERE" + _FILTERS + " AND d.redriven_at IS NULL AND d.reason <> 'invalid_message'"
        " AND j.status = 'DEAD_LETTERED'"
        " AND (%(force)s OR (d.reason <> 'unconfirmed' AND NOT j.force_required))"
        " GROUP BY j.id ORDER BY first, j.id",
        params,
    )
    return [str(r["id"]) for r in rows]


async def mark_redriven(conn: psycopg.AsyncConnection[Row], job_ids: list[Any]) -> None:
    await conn.execute(
        "UPDATE dead_letters SET redriven_at = now() WHERE job_id = ANY(%s)"
        " AND redriven_at IS NULL",
        (job_ids,),
    )
