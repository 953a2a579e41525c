"""Transactional outbox: events are written in the same transaction as the state change
and relayed to Kafka afterwards, so a crash never loses or invents a status event."""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from shared import events
from shared.db.pool import Database, Row
from shared.kafka.client import Producer
from shared.names import DLQ, STATUS, Names

log = logging.getLogger(__name__)
_RELAY_LOCK = "herald-outbox-relay"


async def add(
    conn: psycopg.AsyncConnection[Row], names: Names, items: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """Queue (base topic, key, value) events inside the caller's transaction."""
    if not items:
        return
    rows = [(names.topic(topic), key, events.encode(topic, value)) for topic, key, value in items]
    async with conn.cursor() as cur:
        await cur.executemany("INSERT INTO outbox (topic, key, value) VALUES (%s, %s, %s)", rows)


def status_event(
    job: Row,
    status: str,
    *,
    reason: str | None = None,
    time: Any = None,
) -> tuple[str, str, dict[str, Any]]:
    """A publish.status event for a job row (after its change)."""
    value = {
        "job_id": str(job["id"]),
        "tenant_id": job["tenant_id"],
        "post_id": str(job["post_id"]),
        "status": status,
        "attempt": int(job["attempt_count"]),
        "reason": reason,
        "provider_ids": job.get("provider_ids") or {},
        "next_attempt_at": events.iso(job.get("next_attempt_at")),
        "published_at": events.iso(job.get("published_at")),
        "time": events.iso(time or events.now_utc()),
        "trace_id": job["trace_id"],
    }
    return STATUS, str(job["id"]), value


def dlq_event(value: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return DLQ, str(value.get("job_id") or ""), value


async def relay_once(db: Database, producer: Producer, batch: int = 5000) -> int:
    """Move one batch from the outbox to Kafka; one relay at a time keeps per-job order."""
    async with db.transaction() as conn:
        cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", (_RELAY_LOCK,))
        locked = await cur.fetchone()
        if not locked or not next(iter(locked.values())):
            return 0
        cur = await conn.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT %s)"
            " RETURNING id, topic, key, value",
            (batch,),
        )
        rows = await cur.fetchall()
        if rows:
            rows.sort(key=lambda r: r["id"])
            await producer.send_batch_async(
                [(r["topic"], r["key"] or None, bytes(r["value"])) for r in rows]
            )
        return len(rows)
