"""The dispatcher keeps the publishers' backlog within its window, sends the tenants' jobs in
turn, and the delayed queue's change of shape leaves no job of an earlier version behind
(decision 0023)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from herald.services.scheduler.dispatcher import Dispatcher
from herald.services.scheduler.reconciler import Reconciler
from herald.shared.infra.kafka.admin import load_topic_specs
from herald.shared.infra.names import PUBLISHER_GROUP, REQUEST
from herald.shared.infra.runtime import Runtime
from herald.shared.stores import jobs as stored_jobs
from tests.conftest import Namespace, eventually
from tests.support.helpers import read_records, sandbox_connections
from tests.support.kafka_lag import consume_and_commit
from tests.support.results_pipeline import mark_in_progress, schedule_jobs

WINDOW = 60


@asynccontextmanager
async def dispatching(rt: Runtime) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(rt, max_sleep=0.2).run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def _in_progress(rt: Runtime) -> int:
    row = await rt.db.fetchone("SELECT count(*) AS n FROM jobs WHERE status = 'IN_PROGRESS'")
    assert row is not None
    return int(row["n"])


async def _reaches(rt: Runtime, expected: int) -> bool:
    return await _in_progress(rt) == expected


def _publishers_take(rt: Runtime, count: int) -> int:
    """The publishers' group reads and commits `count` requests."""
    group, topic = rt.names.group(PUBLISHER_GROUP), rt.names.topic(REQUEST)
    return consume_and_commit(rt.settings.kafka_bootstrap, group, topic, count)


async def test_the_dispatcher_stops_at_its_window_and_resumes_as_publishers_take_requests(
    ns: Namespace,
) -> None:
    rt = Runtime.build(ns.settings(dispatch_window=WINDOW))
    await rt.open()
    try:
        ids = await schedule_jobs(rt, 200)
        async with dispatching(rt):
            await eventually(lambda: _reaches(rt, WINDOW))
            await asyncio.sleep(1.0)  # many claim rounds: none goes past the window
            assert await _in_progress(rt) == WINDOW
            assert await rt.queue.depth() == 200 - WINDOW  # the rest wait in Redis
            assert await asyncio.to_thread(_publishers_take, rt, 45) == 45
            await eventually(lambda: _reaches(rt, WINDOW + 45))
            await asyncio.sleep(0.5)
            assert await _in_progress(rt) == WINDOW + 45
            taken = 45
            while taken < len(ids):
                count = min(WINDOW, len(ids) - taken)
                taken += await asyncio.to_thread(_publishers_take, rt, count)
            await eventually(lambda: _reaches(rt, len(ids)))
        assert await rt.queue.depth() == 0
    finally:
        await rt.close()


def _by_partition(bootstrap: str, topic: str, count: int) -> dict[int, list[str]]:
    """The job ids of the first `count` records on `topic`, per partition in offset order."""
    found: dict[int, list[tuple[int, str]]] = {}
    for partition, offset, value in read_records(bootstrap, topic, expect=count):
        found.setdefault(partition, []).append((offset, str(value["job_id"])))
    return {p: [job for _, job in sorted(records)] for p, records in found.items()}


async def test_a_tenant_with_two_due_jobs_is_sent_ahead_of_another_tenants_hundred(
    rt: Runtime,
) -> None:
    [spec] = [s for s in load_topic_specs() if s.name == REQUEST]
    b_account = await sandbox_connections(rt, 1, tenant="tenant-b")
    # As many accounts as partitions, placed after B's: one shares B's partition.
    a_accounts = await sandbox_connections(rt, spec.partitions, tenant="tenant-a")
    a_jobs = await schedule_jobs(rt, 10 * spec.partitions, connections=a_accounts)
    b_jobs = await schedule_jobs(rt, 2, connections=b_account)
    claimed = await rt.queue.claim(1000, rt.settings.lease_seconds)
    assert {c.job_id for c in claimed} == {*a_jobs, *b_jobs}
    assert await Dispatcher(rt).dispatch(claimed) == len(claimed)

    partitions = await asyncio.to_thread(
        _by_partition, rt.settings.kafka_bootstrap, rt.names.topic(REQUEST), len(claimed)
    )
    [shared] = [jobs for jobs in partitions.values() if set(b_jobs) & set(jobs)]
    assert len(shared) == 12  # B's two and ten of A's
    # Sent in turn (A, B, A, B, then A's rest): at most A's first two go before B's last.
    assert shared.index(b_jobs[0]) < shared.index(b_jobs[1]) <= 3


async def test_batches_reach_kafka_in_the_order_they_were_claimed(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three loops claim three batches at once; the first claimed marks slowest. It still
    goes first: it holds the jobs due first (each tenant's first jobs, in a burst)."""
    ids = await schedule_jobs(rt, 30)  # one account, so one partition, due in this order
    first = set(ids[:10])
    mark = stored_jobs.mark_dispatched

    async def slow_for_the_first(conn: Any, job_ids: list[str], **kw: Any) -> Any:
        if first & set(job_ids):
            await asyncio.sleep(0.5)
        return await mark(conn, job_ids, **kw)

    monkeypatch.setattr(stored_jobs, "mark_dispatched", slow_for_the_first)
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(rt, batch_size=10, max_sleep=0.2).run(stop))
    try:
        [sent] = (
            await asyncio.to_thread(
                _by_partition, rt.settings.kafka_bootstrap, rt.names.topic(REQUEST), 30
            )
        ).values()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
    assert len(sent) == 30
    assert set(sent[:10]) == first


async def test_jobs_in_the_queue_of_earlier_versions_are_still_dispatched(rt: Runtime) -> None:
    queue = rt.queue
    waiting = await schedule_jobs(rt, 3)
    await queue.remove(waiting)  # as an earlier version left them: in its single sorted set
    await rt.redis.zadd(queue.legacy_key, {j: time.time() - 1 for j in waiting})
    # One an earlier version claimed and marked, then died: in flight without a tenant.
    [lost] = await schedule_jobs(rt, 1)
    await mark_in_progress(rt, [lost])
    await rt.db.execute(
        "UPDATE jobs SET dispatched_at = now() - interval '1 hour',"
        " next_attempt_at = now() - interval '1 hour' WHERE id = %s",
        (lost,),
    )
    await rt.redis.zadd(queue.inflight_key, {lost: time.time() - 5})
    await rt.redis.hset(queue.due_key, lost, str(time.time() - 3600))
    assert await queue.requeue_expired() == 1  # its lease ran out: it leaves in-flight

    report = await Reconciler(rt).reconcile_once()
    assert report["restored"] == 3 and report["unclaimed"] == 1
    assert report["legacy_dropped"] == 1 and not await rt.redis.exists(queue.legacy_key)
    claimed = await queue.claim(10, lease_seconds=30)
    assert sorted(c.job_id for c in claimed) == sorted([*waiting, lost])
    # The next round finds nothing more to do.
    await queue.ack([c.job_id for c in claimed])
    assert (await Reconciler(rt).reconcile_once())["legacy_dropped"] == 0
