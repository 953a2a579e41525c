"""Dead letters: Postgres rows (the source for the API and redrive) mirrored to publish.dlq
through the outbox, in the same transaction."""

from __future__ import annotations

import logging
import uuid
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
