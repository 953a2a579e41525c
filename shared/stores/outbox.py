"""Transactional outbox: events are written in the same transaction as the state change
and relayed to Kafka afterwards, so a crash never loses or invents a status event.

Each `add` call writes one `outbox` row holding all its events as parallel arrays
(`topics[i]`, `keys[i]`, `vals[i]`). The relay takes rows in id order (about `batch` events,
at least one row), produces their events in that order (a row's events in array order),
waits for Kafka's acknowledgements and only then commits the rows' deletion: a crash
before the commit leaves the rows for the next relay (at-least-once). One relay runs at a
time (advisory lock), so the events of one job keep their order. Rows in the older
one-event form (`topic`, `key`, `value`; migration 0001) are still relayed."""

from __future__ import annotations

import logging

import psycopg

from herald.shared.infra.db import locks
from herald.shared.infra.db.pool import Database, Row
from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.names import Names
from herald.shared.messages import codec
from herald.shared.messages.status import Event

log = logging.getLogger(__name__)
_RELAY_LOCK = "herald-outbox-relay"
_INSERT = "INSERT INTO outbox (topics, keys, vals) VALUES (%b, %b, %b)"
# The oldest rows whose events add up to at most %(events)s, and always the oldest row
# (a prefix in id order: `upto` only grows). A row has at least one event, so the first
# %(events)s rows are enough. Old one-event rows read as arrays of one.
_TAKE = """
DELETE FROM outbox WHERE id = ANY(ARRAY(
    SELECT id FROM (
        SELECT id, n, sum(n) OVER (ORDER BY id) AS upto
        FROM (
            SELECT id, coalesce(cardinality(topics), 1) AS n
            FROM outbox ORDER BY id LIMIT %(events)s
        ) AS oldest
    ) AS head
    WHERE upto <= %(events)s OR upto = n
))
RETURNING id,
    coalesce(topics, ARRAY[topic]) AS topics,
    coalesce(keys, ARRAY[key]) AS keys,
    coalesce(vals, ARRAY[value]) AS vals
"""


async def add(conn: psycopg.AsyncConnection[Row], names: Names, items: list[Event]) -> None:
    """Queue (base topic, key, value) events inside the caller's transaction: one row."""
    if not items:
        return
    topics: list[str] = []
    keys: list[str] = []
    vals: list[bytes] = []
    for topic, key, value in items:
        topics.append(names.topic(topic))
        keys.append(key)
        vals.append(codec.encode(topic, value))
    # Binary parameters: a text-format bytea[] would be hex-escaped value by value.
    await conn.execute(_INSERT, (topics, keys, vals))


async def relay_once(db: Database, producer: Producer, batch: int = 5000) -> int:
    """Move about `batch` events (whole rows, at least one) from the outbox to Kafka, in
    order; returns the number of events moved. One relay at a time keeps per-job order."""
    async with db.transaction() as conn:
        if not await locks.for_transaction(conn, _RELAY_LOCK, wait=False):
            return 0
        cur = await conn.execute(_TAKE, {"events": max(batch, 1)}, binary=True)
        rows = await cur.fetchall()
        if not rows:
            return 0
        rows.sort(key=lambda r: r["id"])
        records = [
            (topic, key or None, value)
            for r in rows
            for topic, key, value in zip(r["topics"], r["keys"], r["vals"], strict=True)
        ]
        # Raises unless Kafka acknowledged every record: the deletion is then rolled back.
        await producer.send_batch_async(records)
        return len(records)
