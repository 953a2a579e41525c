"""The publish.schedule consumer: commands (schedule, cancel, reschedule, retry) applied;
bad ones dead-lettered; it goes on."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import orjson

from services.scheduler.ingress import CommandIngress
from services.scheduler.main import relay_outbox
from shared import events
from shared.client import HeraldClient
from shared.events import now_utc
from shared.kafka.client import Producer
from shared.names import DLQ, SCHEDULE
from shared.runtime import Runtime
from shared.tenancy import ADMIN
from tests.conftest import Namespace, eventually
from tests.support.helpers import aread_topic, sandbox_connections

MEDIA = ["https://cdn.example.com/a.jpg"]


async def test_commands_are_applied_and_bad_ones_go_to_the_dlq(ns: Namespace, rt: Runtime) -> None:
    (conn,) = await sandbox_connections(rt, 1, tenant="acme")
    (foreign,) = await sandbox_connections(rt, 1, tenant="other")
    client = HeraldClient(ns.base.kafka_bootstrap, "acme", topic_prefix=ns.topic_prefix)
    later = now_utc() + timedelta(hours=1)
    good = client.schedule(
        platform="sandbox",
        connection_id=conn,
        media_asset_ids=MEDIA,
        caption="hello",
        scheduled_at=later,
    )
    client.schedule(
        platform="sandbox",
        connection_id=conn,
        media_asset_ids=MEDIA,
        caption="hello",
        scheduled_at=later,
        job_id=good,
    )  # a retried command
    reused = client.schedule(
        platform="sandbox",
        connection_id=conn,
        media_asset_ids=MEDIA,
        caption="other body",
        scheduled_at=later,
        job_id=good,
    )
    refused = client.schedule(
        platform="sandbox", connection_id=foreign, media_asset_ids=MEDIA, scheduled_at=later
    )
    cancelled = client.schedule(
        platform="sandbox", connection_id=conn, media_asset_ids=MEDIA, scheduled_at=later
    )
    client.cancel(cancelled)
    client.flush()
    topic = ns.topic_prefix + SCHEDULE
    Producer(ns.base.kafka_bootstrap).send_batch(
        [(topic, "x", b"{not json"), (topic, "y", orjson.dumps({"schema_version": "1.0"}))]
    )
    last = client.schedule(
        platform="sandbox", connection_id=conn, media_asset_ids=MEDIA, scheduled_at=later
    )
    client.flush()

    stop = asyncio.Event()
    ingress = CommandIngress(rt, rt.jobs())
    tasks = [
        asyncio.create_task(ingress.consumer().run(stop)),
        asyncio.create_task(relay_outbox(rt, stop)),
    ]
    try:
        await eventually(lambda: _exists(rt, last), timeout=60)
        dlq = await aread_topic(
            ns.base.kafka_bootstrap, ns.topic_prefix + DLQ, expect=4, timeout=30
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    assert (await rt.jobs().get(ADMIN, good))["caption"] == "hello"
    assert (await rt.jobs().get(ADMIN, cancelled))["status"] == "CANCELLED"
    assert await rt.db.fetchone("SELECT 1 FROM jobs WHERE id = %s", (refused,)) is None
    assert reused == good
    assert {d["reason"] for d in dlq} == {"invalid_message"}
    by_job = {d["job_id"]: d for d in dlq}
    assert by_job[refused]["error"]["code"] == "validation_failed"
    assert "connection_id" in by_job[refused]["error"]["fields"]
    assert by_job[good]["error"]["code"] == "job_id_reused"
    raw = [d for d in dlq if d["job_id"] is None]
    assert len(raw) == 2 and all(d["raw_base64"] for d in raw)
    rows = await rt.db.fetch("SELECT reason, job_id FROM dead_letters")
    assert len(rows) == 4 and {r["reason"] for r in rows} == {"invalid_message"}


async def _exists(rt: Runtime, job_id: str) -> bool:
    return (
        await rt.db.fetchone("SELECT 1 FROM jobs WHERE id = %s", (uuid.UUID(job_id),)) is not None
    )


async def test_reschedule_and_retry_commands_are_applied_through_the_ingress(
    ns: Namespace, rt: Runtime
) -> None:
    (conn,) = await sandbox_connections(rt, 1, tenant="acme")
    client = HeraldClient(ns.base.kafka_bootstrap, "acme", topic_prefix=ns.topic_prefix)
    later = now_utc() + timedelta(hours=1)
    moved, exhausted, unconfirmed = (
        client.schedule(
            platform="sandbox",
            connection_id=conn,
            media_asset_ids=MEDIA,
            caption="before",
            scheduled_at=later,
        )
        for _ in range(3)
    )
    client.flush()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(CommandIngress(rt, rt.jobs()).consumer().run(stop)),
        asyncio.create_task(relay_outbox(rt, stop)),
    ]
    try:
        await eventually(lambda: _exists(rt, unconfirmed), timeout=60)
        # Two jobs dead-lettered as results leaves them: budget spent; outcome unknown.
        await rt.db.execute(
            "UPDATE jobs SET status = 'DEAD_LETTERED', next_attempt_at = NULL, queued = false,"
            " failed_attempts = 5, force_required = (id = %s) WHERE id = ANY(%s)",
            (unconfirmed, [exhausted, unconfirmed]),
        )
        await rt.queue.remove([exhausted, unconfirmed])
        new_time = now_utc() + timedelta(hours=2)
        client.reschedule(moved, scheduled_at=new_time, caption="after")
        client.retry(exhausted)
        client.retry(unconfirmed)  # refused: the post may be live, only `force` re-checks it
        client.flush()
        # The same command at the previous schema major, with force: applied.
        forced = {
            "schema_version": f"{events.CURRENT_MAJOR - 1}.4",
            "command": "retry",
            "job_id": unconfirmed,
            "tenant_id": "acme",
            "idempotency_key": f"retry:{unconfirmed}:forced",
            "trace_id": events.new_trace_id(),
            "force": True,
        }
        topic = ns.topic_prefix + SCHEDULE
        Producer(ns.base.kafka_bootstrap).send_batch([(topic, unconfirmed, orjson.dumps(forced))])

        async def applied() -> bool:
            found = {j: (await rt.jobs().get(ADMIN, j))["status"] for j in (moved, unconfirmed)}
            return found == {moved: "SCHEDULED", unconfirmed: "RETRY_SCHEDULED"} and (
                (await rt.jobs().get(ADMIN, moved))["caption"] == "after"
            )

        await eventually(applied, timeout=60)
        dlq = await aread_topic(ns.base.kafka_bootstrap, ns.topic_prefix + DLQ, expect=1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    job = await rt.jobs().get(ADMIN, moved)
    assert job["scheduled_at"] == events.iso(new_time) and job["caption"] == "after"
    for retried in (exhausted, unconfirmed):
        job = await rt.jobs().get(ADMIN, retried)
        assert job["status"] == "RETRY_SCHEDULED", job
        row = await rt.db.fetchone("SELECT failed_attempts FROM jobs WHERE id = %s", (retried,))
        assert row is not None and row["failed_attempts"] == 0  # a fresh budget
    assert await rt.queue.held([exhausted, unconfirmed]) == {exhausted, unconfirmed}
    assert [(d["job_id"], d["error"]["code"]) for d in dlq] == [(unconfirmed, "force_required")]
