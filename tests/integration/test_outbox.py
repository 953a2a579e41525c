"""The transactional outbox against the real Postgres and Kafka: one row per `add`, relayed
in order, bounded by events, re-relayed after a crash, and old one-event rows still relayed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.db.pool import Database, Row
from herald.shared.infra.kafka.client import Producer, Record
from herald.shared.infra.names import DLQ, STATUS
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.status import status_event
from herald.shared.stores import outbox
from tests.conftest import Namespace, eventually
from tests.integration.publisher_support import TopicReader
from tests.support.helpers import older_schema

Sent = tuple[str, str | bytes | None, bytes]


class RecordingProducer(Producer):
    """Produces for real and remembers what it was asked to send, in order; with
    `crash_after_send` it raises once Kafka acknowledged (a relay dying before its commit)."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.sent: list[Sent] = []
        self.crash_after_send = False

    async def send_batch_async(self, records: Sequence[Record], *args: Any, **kwargs: Any) -> int:
        count = await super().send_batch_async(records, *args, **kwargs)
        self.sent.extend((r[0], r[1], r[2]) for r in records)
        if self.crash_after_send:
            raise RuntimeError("relay killed after Kafka acknowledged, before the commit")
        return count


@pytest.fixture
def producer(rt: Runtime) -> Iterator[RecordingProducer]:
    p = RecordingProducer(rt.settings.kafka_bootstrap)
    yield p
    p.close()


def _event(job_id: str, status: str, attempt: int = 1) -> tuple[str, str, dict[str, Any]]:
    job = {
        "id": job_id,
        "tenant_id": "acme",
        "post_id": str(uuid.uuid4()),
        "attempt_count": attempt,
        "trace_id": uuid.uuid4().hex,
        "provider_ids": {},
    }
    return status_event(job, status)


async def _add(rt: Runtime, items: list[tuple[str, str, dict[str, Any]]]) -> None:
    async with rt.db.transaction() as conn:
        await outbox.add(conn, rt.names, items)


async def _relay(db: Database, producer: Producer, batch: int = 5000) -> int:
    """One relay round; waits while another test run's relay holds the database-wide lock."""
    for _ in range(200):
        moved = await outbox.relay_once(db, producer, batch)
        if moved or not await _waiting(db):
            return moved
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox relay lock stayed taken")


async def _waiting(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) AS n FROM outbox")
    return int(row["n"]) if row else 0


def _statuses(records: list[Sent]) -> list[tuple[str, str]]:
    return [(str(key), orjson.loads(value)["status"]) for _topic, key, value in records]


async def test_one_add_is_one_row_and_its_events_are_relayed_in_order(
    rt: Runtime, producer: RecordingProducer
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    first = [_event(a, "SCHEDULED"), _event(b, "SCHEDULED"), _event(a, "IN_PROGRESS")]
    second = [_event(b, "IN_PROGRESS"), _event(a, "PUBLISHED"), _event(b, "DEAD_LETTERED")]
    await _add(rt, first)
    await _add(rt, second)
    await _add(rt, [])  # nothing to queue: no row
    assert await _waiting(rt.db) == 2

    assert await _relay(rt.db, producer) == 6
    assert await _waiting(rt.db) == 0
    assert _statuses(producer.sent) == [
        (a, "SCHEDULED"),
        (b, "SCHEDULED"),
        (a, "IN_PROGRESS"),
        (b, "IN_PROGRESS"),
        (a, "PUBLISHED"),
        (b, "DEAD_LETTERED"),
    ]
    assert {topic for topic, _k, _v in producer.sent} == {rt.names.topic(STATUS)}

    # and Kafka holds each job's events in that order
    reader = TopicReader(rt.settings.kafka_bootstrap, rt.names.topic(STATUS))
    try:
        values = await eventually(lambda: _at_least(reader, 6))
    finally:
        reader.close()
    by_job: dict[str, list[str]] = {}
    for v in values:
        by_job.setdefault(v["job_id"], []).append(v["status"])
    assert by_job == {
        a: ["SCHEDULED", "IN_PROGRESS", "PUBLISHED"],
        b: ["SCHEDULED", "IN_PROGRESS", "DEAD_LETTERED"],
    }


async def _at_least(reader: TopicReader, n: int) -> list[dict[str, Any]] | None:
    values = await reader.poll()
    return values if len(values) >= n else None


async def test_a_relay_batch_is_bounded_by_events_but_takes_at_least_one_row(
    rt: Runtime, producer: RecordingProducer
) -> None:
    job = str(uuid.uuid4())
    sizes = [3, 3, 1, 7, 2]
    expected = []
    for i, size in enumerate(sizes):
        items = [_event(job, "SCHEDULED", attempt=10 * i + j) for j in range(size)]
        expected += [(job, 10 * i + j) for j in range(size)]
        await _add(rt, items)

    moved = [await _relay(rt.db, producer, batch=5) for _ in range(5)]
    # 3 (3 + 3 > 5) | 3 + 1 | 7 alone (more than a batch, but a row is never split) | 2 | -
    assert moved == [3, 4, 7, 2, 0]
    assert [(str(k), orjson.loads(v)["attempt"]) for _t, k, v in producer.sent] == expected


async def test_a_crash_between_produce_and_commit_relays_the_events_again(
    rt: Runtime, producer: RecordingProducer
) -> None:
    jobs = [str(uuid.uuid4()) for _ in range(4)]
    await _add(rt, [_event(j, "SCHEDULED") for j in jobs])
    await _add(rt, [_event(j, "IN_PROGRESS") for j in jobs])

    producer.crash_after_send = True
    with pytest.raises(RuntimeError, match="relay killed"):
        await _relay(rt.db, producer)
    assert await _waiting(rt.db) == 2  # the deletion was rolled back: nothing lost
    crashed = _statuses(producer.sent)

    producer.crash_after_send = False
    producer.sent.clear()
    assert await _relay(rt.db, producer) == 8
    assert await _waiting(rt.db) == 0
    # the same events again, in the same order (at-least-once: Kafka holds both copies)
    assert _statuses(producer.sent) == crashed
    assert crashed == [(j, "SCHEDULED") for j in jobs] + [(j, "IN_PROGRESS") for j in jobs]
    assert await _relay(rt.db, producer) == 0


async def test_old_one_event_rows_are_still_relayed_in_id_order(
    rt: Runtime, producer: RecordingProducer
) -> None:
    job = str(uuid.uuid4())
    status = rt.names.topic(STATUS)

    def raw(status_name: str) -> bytes:
        return orjson.dumps({"job_id": job, "status": status_name})

    # rows written by a scheduler from before migration 0003, around a new one
    await rt.db.execute(
        "INSERT INTO outbox (topic, key, value) VALUES (%s, %s, %s)",
        (status, job, raw("SCHEDULED")),
    )
    await _add(rt, [_event(job, "IN_PROGRESS"), _event(job, "PUBLISHED")])
    await rt.db.execute(
        "INSERT INTO outbox (topic, key, value) VALUES (%s, %s, %s)",
        (rt.names.topic(DLQ), "", raw("DEAD")),
    )
    assert await _relay(rt.db, producer) == 4
    assert [(t, k, orjson.loads(v)["status"]) for t, k, v in producer.sent] == [
        (status, job, "SCHEDULED"),
        (status, job, "IN_PROGRESS"),
        (status, job, "PUBLISHED"),
        (rt.names.topic(DLQ), None, "DEAD"),  # an empty key is produced without a key
    ]
    assert await _waiting(rt.db) == 0


async def test_the_outbox_rejects_a_row_whose_arrays_do_not_line_up(rt: Runtime) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        await rt.db.execute(
            "INSERT INTO outbox (topics, keys, vals) VALUES (%s, %s, %s)",
            (["a", "b"], ["k"], [b"{}", b"{}"]),
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        await rt.db.execute(
            "INSERT INTO outbox (topic, key, value, topics, keys, vals)"
            " VALUES ('a', 'k', '\\x00', '{a}', '{k}', '{\\\\x00}')"
        )


async def test_migration_0003_keeps_the_rows_of_an_existing_outbox(
    ns: Namespace, tmp_path: Path, producer: RecordingProducer
) -> None:
    schema = ns.db_schema + "_old"
    url = ns.base.database_url
    topic = ns.settings().topic_prefix + STATUS
    with older_schema(url, schema, tmp_path, last=2):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            for i in range(3):
                conn.execute(
                    "INSERT INTO outbox (topic, key, value) VALUES (%s, %s, %s)",
                    (topic, f"job-{i}", orjson.dumps({"i": i})),
                )
        assert [m.version for m in migrate(url, schema)][:1] == [3]  # 0003, then any later
        db = Database(url, schema)
        await db.open(wait=True)
        try:
            rows: list[Row] = await db.fetch("SELECT count(*) AS n FROM outbox")
            assert rows[0]["n"] == 3
            assert await _relay(db, producer) == 3
            assert [(k, orjson.loads(v)["i"]) for _t, k, v in producer.sent] == [
                ("job-0", 0),
                ("job-1", 1),
                ("job-2", 2),
            ]
            assert await _waiting(db) == 0
        finally:
            await db.close()
