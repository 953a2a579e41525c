"""Test harness for the results service: jobs, scripted publisher answers, and the
in-process pipeline (dispatcher, outbox relay, results consumer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

from herald.services.results.consumer import ResultsConsumer
from herald.services.scheduler.dispatcher import Dispatcher
from herald.services.scheduler.main import relay_outbox
from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.db.pool import Row
from herald.shared.infra.kafka.batch_consumer import BatchConsumer
from herald.shared.infra.kafka.client import Message, Producer
from herald.shared.infra.names import REQUEST, RESULT
from herald.shared.infra.runtime import Runtime
from herald.shared.messages import codec
from herald.shared.messages.status import status_event
from herald.shared.stores import outbox
from herald.shared.stores.jobs import COLUMNS as JOB_COLUMNS
from tests.support.helpers import sandbox_connections

MEDIA = ["https://cdn.example.com/a.jpg"]
Answer = str | dict[str, Any]
Script = Callable[[dict[str, Any]], Answer | None]  # a request → an outcome (None: no answer)


async def schedule_jobs(
    rt: Runtime,
    count: int,
    *,
    connections: list[str] | None = None,
    deadline: datetime | None = None,
    tenant: str = "default",
) -> list[str]:
    conns = connections or await sandbox_connections(rt, 1, tenant=tenant)
    jobs = rt.jobs()
    ids = []
    for i in range(count):
        body: dict[str, Any] = {
            "platform": "sandbox",
            "connection_id": conns[i % len(conns)],
            "media_asset_ids": MEDIA,
            "caption": f"post {i}",
        }
        if deadline is not None:
            body["publish_deadline"] = deadline.isoformat()
        ids.append((await jobs.schedule(ADMIN, body)).body["id"])
    return ids


async def job(rt: Runtime, job_id: str) -> Row:
    row = await rt.db.fetchone(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,))
    assert row is not None
    return row


async def mark_in_progress(rt: Runtime, job_ids: list[str]) -> list[Row]:
    """What the dispatcher does to a job (next attempt number, IN_PROGRESS), minus Kafka."""
    async with rt.db.transaction() as conn:
        cur = await conn.execute(
            f"UPDATE jobs SET status = 'IN_PROGRESS', attempt_count = attempt_count + 1,"
            f" queued = false, dispatched_at = now()"
            f" WHERE id = ANY(%s) RETURNING {JOB_COLUMNS}",
            (job_ids,),
        )
        rows = await cur.fetchall()
        await outbox.add(conn, rt.names, [status_event(r, JobStatus.IN_PROGRESS) for r in rows])
    await rt.queue.remove(job_ids)
    return rows


def result_value(request: dict[str, Any], answer: Answer, **extra: Any) -> dict[str, Any]:
    """A publish.result for a request (or a job row's fields) and an outcome."""
    fields = {"outcome": answer} if isinstance(answer, str) else dict(answer)
    now = codec.now_utc()
    value: dict[str, Any] = {
        "schema_version": codec.SCHEMA_VERSION,
        "job_id": str(request.get("job_id") or request["id"]),
        "tenant_id": request["tenant_id"],
        "platform": request["platform"],
        "connection_id": str(request["connection_id"]),
        "attempt": int(request.get("attempt") or request["attempt_count"]),
        "worker": "fake-publisher",
        "started_at": codec.iso(now - timedelta(milliseconds=5)),
        "finished_at": codec.iso(now),
        "provider_ids": {},
        "trace_id": request.get("trace_id") or uuid.uuid4().hex,
    }
    if fields.get("outcome") == "published":
        value["provider_ids"] = {"media_id": f"m-{value['job_id'][:8]}"}
        value["published_at"] = value["finished_at"]
    value.update(fields)
    value.update(extra)
    return value


def produce_results(
    rt: Runtime, values: list[dict[str, Any]], producer: Producer | None = None
) -> None:
    topic = rt.names.topic(RESULT)
    (producer or rt.producer).send_batch(
        (topic, str(v.get("connection_id", "")), codec.encode(RESULT, dict(v))) for v in values
    )


def produce_raw(rt: Runtime, raws: list[bytes]) -> None:
    rt.producer.send_batch((rt.names.topic(RESULT), None, raw) for raw in raws)


class FakePublisher:
    """Answers each `publish.request` with the script's outcome, as the publisher would
    (one result per request; a redelivered request is answered again)."""

    def __init__(self, rt: Runtime, script: Script) -> None:
        self.rt = rt
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.answered: set[tuple[str, int]] = set()
        self.producer = Producer(rt.settings.kafka_bootstrap)

    def consumer(self) -> BatchConsumer:
        return BatchConsumer(
            self.rt.settings.kafka_bootstrap,
            self.rt.names.group("fake-publisher"),
            [self.rt.names.topic(REQUEST)],
            self.handle,
            batch_size=1000,
        )

    async def handle(self, messages: list[Message]) -> None:
        values = []
        for m in messages:
            request = codec.decode(REQUEST, m.value())
            self.requests.append(request)
            answer = self.script(request)
            if answer is not None:
                values.append(result_value(request, answer))
                self.answered.add((request["job_id"], request["attempt"]))
        if values:
            await asyncio.to_thread(produce_results, self.rt, values, self.producer)


@asynccontextmanager
async def pipeline(
    rt: Runtime,
    script: Script | None = None,
    *,
    dispatcher: bool = True,
    results: bool = True,
    consumer: ResultsConsumer | None = None,
) -> AsyncIterator[FakePublisher | None]:
    """Run the dispatcher, the outbox relay, the results consumer and a fake publisher."""
    stop = asyncio.Event()
    loops = [relay_outbox(rt, stop)]
    if dispatcher:
        loops.append(Dispatcher(rt, max_sleep=0.2).run(stop))
    if results:
        loops.append((consumer or ResultsConsumer(rt)).consumer().run(stop))
    fake = FakePublisher(rt, script) if script is not None else None
    if fake is not None:
        loops.append(fake.consumer().run(stop))
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        yield fake
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=20)
        for task in pending:
            task.cancel()
        for task in done | pending:
            with suppress(asyncio.CancelledError):
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]


async def statuses(rt: Runtime, job_ids: list[str]) -> dict[str, str]:
    rows = await rt.db.fetch("SELECT id, status FROM jobs WHERE id = ANY(%s)", (job_ids,))
    return {str(r["id"]): r["status"] for r in rows}


def all_final(wanted: set[str]) -> Callable[[dict[str, str]], bool]:
    return lambda found: bool(found) and set(found.values()) <= wanted
