"""Scheduling against the real stack: jobs in Postgres, the Redis delayed queue, dispatch."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from herald.services.scheduler.dispatcher import Dispatcher
from herald.services.scheduler.reconciler import Reconciler
from herald.shared.domain.jobs import DISPATCH_LEAD_SECONDS
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.kafka.admin import load_topic_specs
from herald.shared.infra.names import REQUEST
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.messages.codec import instant_or_none, now_utc
from tests.conftest import Namespace, eventually
from tests.support.helpers import aread_topic, read_records, sandbox_connections

MEDIA = ["https://cdn.example.com/a.jpg"]
LEAD = timedelta(seconds=DISPATCH_LEAD_SECONDS)  # a job is dispatched at most this early


@asynccontextmanager
async def running(rt: Runtime, *, reconcile: bool = False) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(Dispatcher(rt).run(stop))]
    if reconcile:
        interval = rt.settings.reconcile_interval_seconds
        tasks.append(asyncio.create_task(Reconciler(rt, interval=interval).run(stop)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)


async def schedule_many(
    rt: Runtime, connections: list[str], count: int, in_seconds: float, **extra: object
) -> list[str]:
    at = (now_utc() + timedelta(seconds=in_seconds)).isoformat()
    jobs = rt.jobs()
    ids = []
    for i in range(count):
        result = await jobs.schedule(
            ADMIN,
            {
                "platform": "sandbox",
                "connection_id": connections[i % len(connections)],
                "media_asset_ids": MEDIA,
                "caption": f"post {i}",
                "scheduled_at": at,
                **extra,
            },
        )
        ids.append(result.body["id"])
    return ids


async def test_due_jobs_reach_publish_request_once_with_their_fields(
    rt: Runtime, settings: Settings
) -> None:
    connections = await sandbox_connections(rt, 3)
    ids = await schedule_many(rt, connections, 300, in_seconds=1.5)
    held = await rt.queue.held(ids)
    assert held == set(ids)  # persisted and queued before schedule() returned
    async with running(rt):
        values = await aread_topic(settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=300)
    counts = Counter(v["job_id"] for v in values)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    rows = {str(r["id"]): r for r in await rt.db.fetch("SELECT * FROM jobs")}
    for value in values:
        row = rows[value["job_id"]]
        assert value["attempt"] == 1 == row["attempt_count"]
        assert value["connection_id"] == str(row["connection_id"])
        assert value["media_asset_ids"] == MEDIA and value["caption"] == row["caption"]
        assert value["tenant_id"] == "default" and value["platform"] == "sandbox"
        # never dispatched before it was due
        assert instant_or_none(value["dispatched_at"]) >= row["scheduled_at"] - LEAD  # type: ignore[operator]
        assert row["status"] == "IN_PROGRESS"


async def test_the_dispatcher_wakes_on_its_own_timer_not_on_a_redis_timeout(
    rt: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis times out a blocked call only at its clock tick (100 ms by default): a dispatcher
    # sleeping there until the next due instant woke up to a tick late, every time. Here the
    # wake wait never answers at all: the job must still go out when it is due.
    release = asyncio.Event()

    async def never_answers(timeout: float) -> bool:
        await release.wait()
        return False

    monkeypatch.setattr(rt.queue, "wait_for_wake", never_answers)
    connections = await sandbox_connections(rt, 1)
    [job] = await schedule_many(rt, connections, 1, in_seconds=0.5)
    async with running(rt):
        values = await aread_topic(settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=1)
        release.set()
    assert [v["job_id"] for v in values] == [job]


async def test_a_job_is_dispatched_ahead_of_its_due_instant_by_at_most_the_lead(
    rt: Runtime, settings: Settings
) -> None:
    # The dispatch, Kafka and the publisher's claim happen before the due instant, so that
    # the call (which waits for it: test_publisher) is on time.
    connections = await sandbox_connections(rt, 1)
    [later] = await schedule_many(rt, connections, 1, in_seconds=DISPATCH_LEAD_SECONDS + 2.0)
    [soon] = await schedule_many(rt, connections, 1, in_seconds=DISPATCH_LEAD_SECONDS * 0.4)
    assert await Dispatcher(rt).dispatch_due()
    [value] = await aread_topic(settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=1)
    assert value["job_id"] == soon
    due = instant_or_none(value["due_at"])
    row = await rt.db.fetchone("SELECT scheduled_at FROM jobs WHERE id = %s", (soon,))
    assert row is not None and due == row["scheduled_at"]
    assert instant_or_none(value["dispatched_at"]) >= due - LEAD  # type: ignore[operator]
    assert await rt.queue.held([later]) == {later}  # further ahead: it waits in Redis


async def test_a_scheduler_clock_ahead_of_postgres_still_dispatches_what_it_claims(
    rt: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scheduler claims by its own clock; Postgres's runs a second behind here. The mark
    # checks each job against the due instants of the claim, not Postgres's clock: compared
    # with `now()`, the claimed job was refused, left Redis and waited for the reconciler.
    # A job moved later behind the queue's back is still refused.
    connections = await sandbox_connections(rt, 1)
    soon, moved = await schedule_many(rt, connections, 2, in_seconds=0.6)
    await rt.db.execute(
        "UPDATE jobs SET next_attempt_at = now() + interval '1 hour' WHERE id = %s", (moved,)
    )
    claim = rt.queue.claim

    async def claim_a_second_ahead(
        limit: int, lease: float, now: float | None = None, **kw: Any
    ) -> Any:
        return await claim(limit, lease, time.time() + 1.0, **kw)

    monkeypatch.setattr(rt.queue, "claim", claim_a_second_ahead)
    assert await Dispatcher(rt).dispatch_due()
    [value] = await aread_topic(settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=1)
    assert value["job_id"] == soon
    rows = await rt.db.fetch("SELECT id::text AS id, status FROM jobs")
    statuses = {r["id"]: r["status"] for r in rows}
    assert statuses == {soon: "IN_PROGRESS", moved: "SCHEDULED"}


async def test_a_job_that_cannot_be_sent_is_dead_lettered_alone(
    rt: Runtime, settings: Settings
) -> None:
    # A row no validation of today's would take (as an older version may have stored it):
    # the dispatcher cannot encode its request. The jobs due with it must not wait for it.
    connections = await sandbox_connections(rt, 2)
    ids = await schedule_many(rt, connections, 6, in_seconds=1.0)
    bad = ids[2]
    await rt.db.execute(
        "UPDATE jobs SET media_asset_ids = ARRAY['https://cdn.example.com/a.jpg' || chr(10)]"
        " WHERE id = %s",
        (bad,),
    )
    async with running(rt):
        values = await aread_topic(settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=5)
        await asyncio.sleep(1.0)  # (the bad job would be claimed again after its lease)
    assert sorted(v["job_id"] for v in values) == sorted(j for j in ids if j != bad)
    job = await rt.jobs().get(ADMIN, bad)
    assert job["status"] == "DEAD_LETTERED" and job["next_attempt_at"] is None
    assert "cannot be sent" in job["last_error"]["message"]
    [letter] = await rt.db.fetch("SELECT * FROM dead_letters")
    assert str(letter["job_id"]) == bad and letter["reason"] == "permanent_error"
    assert bad not in await rt.queue.held([bad])


async def test_cancelled_job_is_never_dispatched_and_reschedule_moves_it(
    rt: Runtime, settings: Settings
) -> None:
    connections = await sandbox_connections(rt, 1)
    cancelled, moved, kept = await schedule_many(rt, connections, 3, in_seconds=1.0)
    jobs = rt.jobs()
    await jobs.cancel(ADMIN, cancelled)
    new_time = now_utc() + timedelta(seconds=4)
    await jobs.reschedule(ADMIN, moved, {"scheduled_at": new_time.isoformat()})
    async with running(rt):
        early = await aread_topic(
            settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=1, timeout=3.5, quiet=0.5
        )
        assert [v["job_id"] for v in early] == [kept]
        values = await aread_topic(
            settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=2, timeout=30
        )
    assert Counter(v["job_id"] for v in values) == Counter({kept: 1, moved: 1})
    moved_value = next(v for v in values if v["job_id"] == moved)
    assert instant_or_none(moved_value["dispatched_at"]) >= new_time - LEAD  # type: ignore[operator]
    job = await jobs.get(ADMIN, cancelled)
    assert job["status"] == "CANCELLED"


async def test_reconciler_restores_jobs_after_redis_loses_its_data(
    ns: Namespace,
) -> None:
    # Redis horizon of 6 s: jobs due later wait in Postgres only and are paged in. No
    # publisher claims them here: a long lease keeps the reconciler from sending them again.
    rt = Runtime.build(ns.settings(redis_horizon_seconds=6.0, lease_seconds=120.0))
    await rt.open()
    try:
        connections = await sandbox_connections(rt, 4)
        soon = await schedule_many(rt, connections, 1000, in_seconds=4)
        later = await schedule_many(rt, connections, 50, in_seconds=9)
        assert await rt.queue.held(later) == set()  # beyond the horizon: Postgres only
        assert ns.drop_redis_keys() > 0  # this run's keys only: other tests share Redis
        assert await rt.queue.held(soon) == set()
        async with running(rt, reconcile=True):
            await eventually(lambda: _held_count(rt, soon, 1000), timeout=20)
            values = await aread_topic(
                rt.settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=1050, timeout=60
            )
        counts = Counter(v["job_id"] for v in values)
        assert set(counts) == set(soon) | set(later) and set(counts.values()) == {1}
        scheduled = {
            str(r["id"]): r["scheduled_at"]
            for r in await rt.db.fetch("SELECT id, scheduled_at FROM jobs")
        }
        for v in values:
            assert instant_or_none(v["dispatched_at"]) >= scheduled[v["job_id"]] - LEAD  # type: ignore[operator]
    finally:
        await rt.close()


async def test_a_job_redis_lacks_is_put_back_once_it_is_due_soon_and_far_ones_are_not_read(
    rt: Runtime,
) -> None:
    # A pass reads only the waiting jobs due within a few passes (the reconciler's look-ahead),
    # not every job of the Redis horizon: with many jobs scheduled days ahead, reading them all
    # every few seconds was most of an idle scheduler's CPU.
    reconciler = Reconciler(rt, interval=1.0)  # look-ahead: a few seconds
    connections = await sandbox_connections(rt, 1)
    [soon] = await schedule_many(rt, connections, 1, in_seconds=2)
    [later] = await schedule_many(rt, connections, 1, in_seconds=3600)
    await rt.queue.remove([soon, later])  # Redis lost them
    assert (await reconciler.reconcile_once())["restored"] == 1
    assert await rt.queue.held([soon, later]) == {soon}
    # An hour on, `later` is due soon too: the next pass puts it back before it is due.
    await rt.db.execute(
        "UPDATE jobs SET next_attempt_at = now() + interval '2 s' WHERE id = %s", (later,)
    )
    assert (await reconciler.reconcile_once())["restored"] == 1
    assert await rt.queue.held([soon, later]) == {soon, later}


async def test_a_pass_pages_through_a_backlog_and_leaves_what_a_dispatch_took_meanwhile(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backlog of due jobs is read a page at a time (here two ids a page); Redis is asked
    # which of a page's ids it lacks, and those are read again from Postgres before they go
    # back: one dispatched between the page's read and Redis's answer is not queued again.
    reconciler = Reconciler(rt, interval=1.0, page=2)
    connections = await sandbox_connections(rt, 1)
    ids = sorted(await schedule_many(rt, connections, 5, in_seconds=1))
    lost, taken = [ids[0], ids[2], ids[4]], ids[3]
    await rt.queue.remove(lost)
    asked = rt.queue.missing

    async def missing_after_a_dispatch(job_ids: list[str]) -> list[str]:
        if taken in job_ids:  # the dispatcher claims, marks and acks it meanwhile
            await rt.queue.remove([taken])
            await rt.db.execute(
                "UPDATE jobs SET status = 'IN_PROGRESS', dispatched_at = now() WHERE id = %s",
                (taken,),
            )
        return await asked(job_ids)

    monkeypatch.setattr(rt.queue, "missing", missing_after_a_dispatch)
    assert (await reconciler.reconcile_once())["restored"] == 3
    assert await rt.queue.held(ids) == set(ids) - {taken}


async def _held_count(rt: Runtime, ids: list[str], expected: int) -> bool:
    return len(await rt.queue.held(ids)) == expected or await _dispatched(rt, ids)


async def _dispatched(rt: Runtime, ids: list[str]) -> bool:
    row = await rt.db.fetchone(
        "SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND status <> 'SCHEDULED'", (ids,)
    )
    return bool(row and row["n"] > 0)


async def test_a_dispatch_no_publisher_holds_is_sent_again_once_its_lease_passed(
    ns: Namespace, caplog: pytest.LogCaptureFixture
) -> None:
    # The stuck-job sweep is an hour away: only the rule for a dispatch nobody holds can act.
    # No publisher ever claims these, so each lease that passes sends them once more: reading
    # ends a second after the fifth request, by when a job first sent a reconciler pass
    # (5 s) before the other may have been sent a third time.
    rt = Runtime.build(ns.settings(stuck_after_seconds=3600.0, lease_seconds=6.0))
    await rt.open()
    try:
        connections = await sandbox_connections(rt, 1)
        unclaimed, abandoned, held = await schedule_many(rt, connections, 3, in_seconds=0)
        await _claimed_by_a_vanished_publisher(rt, abandoned)
        await _claimed_by_a_live_publisher(rt, held)
        caplog.set_level(logging.WARNING, logger="herald.services.scheduler.reconciler")
        async with running(rt, reconcile=True):
            values = await aread_topic(
                rt.settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=5, quiet=1.0
            )
            redispatched = _redispatched(caplog)
        # One request never reached a publisher (as if the scheduler died before producing
        # it); another's publisher claimed it, then died after its offset was committed (its
        # lease ran out with no result). Once the lease passed both were dispatched again
        # with the same attempt. The job whose publisher keeps its claim alive waits for it
        # (and, past HERALD_STUCK_AFTER_SECONDS, for the stuck-job sweep).
        sent = Counter(v["job_id"] for v in values)
        assert sent[held] == 1 and 2 <= sent[unclaimed] <= 3 and 2 <= sent[abandoned] <= 3
        assert {v["attempt"] for v in values} == {1}
        assert set(redispatched) == {
            (unclaimed, "no publisher holds it"),
            (abandoned, "no publisher holds it"),
        }
    finally:
        await rt.close()


async def test_a_claim_kept_alive_without_a_result_is_sent_again_by_the_stuck_sweep(
    ns: Namespace, caplog: pytest.LogCaptureFixture
) -> None:
    rt = Runtime.build(
        ns.settings(stuck_after_seconds=4.0, container_poll_seconds=0.5, call_timeout_seconds=0.5)
    )
    await rt.open()
    try:
        connections = await sandbox_connections(rt, 1)
        (job_id,) = await schedule_many(rt, connections, 1, in_seconds=0)
        await _claimed_by_a_live_publisher(rt, job_id)
        caplog.set_level(logging.WARNING, logger="herald.services.scheduler.reconciler")
        async with running(rt, reconcile=True):
            values = await aread_topic(
                rt.settings.kafka_bootstrap,
                rt.names.topic(REQUEST),
                expect=2,
                timeout=30,
                quiet=0.5,
            )
        # Its holder renews the claim but never answers: after HERALD_STUCK_AFTER_SECONDS it
        # was dispatched again,
        # keeping its attempt number.
        assert [v["job_id"] for v in values[:2]] == [job_id, job_id]
        assert {v["attempt"] for v in values} == {1}
        assert _redispatched(caplog)[0] == (job_id, "stuck")
    finally:
        await rt.close()


async def _claimed_by_a_vanished_publisher(rt: Runtime, job_id: str) -> None:
    """A claim of the job's first attempt, lease long gone, no result."""
    await rt.db.execute(
        "INSERT INTO publish_claims (job_id, attempt, worker, lease_until)"
        " VALUES (%s, 1, 'publisher-gone-1', now() - interval '1 minute')",
        (job_id,),
    )


async def _claimed_by_a_live_publisher(rt: Runtime, job_id: str) -> None:
    """A claim of the job's first attempt whose holder keeps renewing it, no result."""
    await rt.db.execute(
        "INSERT INTO publish_claims (job_id, attempt, worker, lease_until)"
        " VALUES (%s, 1, 'publisher-alive-1', now() + interval '1 hour')",
        (job_id,),
    )


def _redispatched(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (str(getattr(r, "job_id", "")), str(getattr(r, "reason", "")))
        for r in caplog.records
        if r.getMessage() == "re-dispatching a job"
    ]


def _partitions_of(bootstrap: str, topic: str, expect: int) -> dict[str, set[int]]:
    """The partitions each connection's requests arrived on."""
    seen: dict[str, set[int]] = {}
    for partition, _, value in read_records(bootstrap, topic, expect=expect):
        seen.setdefault(value["connection_id"], set()).add(partition)
    return seen


async def test_connections_are_spread_evenly_over_the_request_partitions(
    rt: Runtime, settings: Settings
) -> None:
    connections = await sandbox_connections(rt, 24)
    await schedule_many(rt, connections, 96, in_seconds=1.0)
    async with running(rt):
        seen = await asyncio.to_thread(
            _partitions_of, settings.kafka_bootstrap, rt.names.topic(REQUEST), 96
        )
    placements = {
        str(r["id"]): r["placement"]
        for r in await rt.db.fetch("SELECT id, placement FROM connections")
    }
    [spec] = [s for s in load_topic_specs() if s.name == "publish.request"]
    partitions = spec.partitions
    assert set(seen) == set(connections)
    for connection, found in seen.items():
        assert found == {placements[connection] % partitions}  # one partition per account
    per_partition = Counter(p for found in seen.values() for p in found)
    assert set(per_partition) == set(range(partitions))
    assert set(per_partition.values()) == {24 // partitions}  # two accounts on each
