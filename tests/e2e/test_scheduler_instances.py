"""Scheduler instances as processes: exactly-once dispatch with three at once, and a
SIGKILLed instance's claimed batch dispatched by another after its lease expires."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.names import REQUEST
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.client import HeraldClient
from herald.shared.messages.codec import instant_or_none, now_utc
from tests.conftest import Namespace, eventually
from tests.support.helpers import ServiceProcess, aread_topic, sandbox_connections

MEDIA = ["https://cdn.example.com/a.jpg"]
# No publisher claims these requests: a lease this long keeps the reconciler from sending
# an unclaimed dispatch again while the test reads them.
UNCLAIMED_LEASE = {"lease_seconds": 120.0}


async def test_5000_jobs_through_api_and_topic_dispatched_once_by_three_schedulers(
    ns: Namespace, rt: Runtime, tmp_path: Path
) -> None:
    connections = await sandbox_connections(rt, 10, tenant="acme")
    due = now_utc() + timedelta(seconds=25)
    schedulers = [
        ServiceProcess("scheduler", ns.env(**UNCLAIMED_LEASE), tmp_path, f"scheduler{i}").start()
        for i in range(3)
    ]
    try:
        # Half through the job service (what the HTTP API calls)...
        jobs = rt.jobs()
        api_ids = []
        for i in range(2500):
            result = await jobs.schedule(
                ADMIN,
                {
                    "platform": "sandbox",
                    "connection_id": connections[i % 10],
                    "media_asset_ids": MEDIA,
                    "caption": f"api {i}",
                    "scheduled_at": due.isoformat(),
                },
            )
            api_ids.append(result.body["id"])
        # ...and half as commands on publish.schedule through the Python client.
        client = HeraldClient(ns.base.kafka_bootstrap, "acme", topic_prefix=ns.topic_prefix)
        topic_ids = [
            client.schedule(
                platform="sandbox",
                connection_id=connections[i % 10],
                media_asset_ids=MEDIA,
                caption=f"topic {i}",
                scheduled_at=due,
            )
            for i in range(2500)
        ]
        client.flush()
        values = await aread_topic(
            ns.base.kafka_bootstrap, ns.topic_prefix + REQUEST, expect=5000, timeout=150, quiet=3
        )
        assert all(s.alive() for s in schedulers), [s.log()[-2000:] for s in schedulers]
    finally:
        for s in schedulers:
            s.stop()
    counts = Counter(v["job_id"] for v in values)
    assert set(counts) == set(api_ids) | set(topic_ids)
    assert set(counts.values()) == {1}, [j for j, n in counts.items() if n > 1][:5]
    for v in values:
        assert instant_or_none(v["dispatched_at"]) >= due.replace(microsecond=0)  # type: ignore[operator]
        assert v["attempt"] == 1 and v["tenant_id"] == "acme"
    # the topic commands were persisted with their client-made ids
    row = await rt.db.fetchone("SELECT count(*) AS n FROM jobs WHERE id = ANY(%s)", (topic_ids,))
    assert row is not None and row["n"] == 2500


async def test_sigkilled_scheduler_batch_is_dispatched_by_another_after_its_lease(
    ns: Namespace, rt: Runtime, tmp_path: Path
) -> None:
    connections = await sandbox_connections(rt, 2)
    at = (now_utc() + timedelta(seconds=1)).isoformat()
    jobs = rt.jobs()
    ids = [
        (
            await jobs.schedule(
                ADMIN,
                {
                    "platform": "sandbox",
                    "connection_id": connections[i % 2],
                    "media_asset_ids": MEDIA,
                    "scheduled_at": at,
                },
            )
        ).body["id"]
        for i in range(200)
    ]
    # This instance claims the batch, then pauses (fault injection) and is SIGKILLed.
    doomed = ServiceProcess(
        "scheduler", ns.env(), tmp_path, "doomed", faults=["--pause-after-claim", "600"]
    ).start()
    try:
        await eventually(lambda: _in_flight(rt, ids), timeout=30)

        async def paused() -> bool:  # the line is written just after the claim returns
            return "pausing after claim" in doomed.log()

        await eventually(paused, timeout=10)
    finally:
        doomed.kill()
    killed_at = time.time()
    # The doomed instance's claims carry its own 3 s lease in Redis.
    survivor = ServiceProcess("scheduler", ns.env(**UNCLAIMED_LEASE), tmp_path, "survivor").start()
    try:
        values = await aread_topic(
            ns.base.kafka_bootstrap, ns.topic_prefix + REQUEST, expect=200, timeout=60, quiet=2
        )
    finally:
        survivor.stop()
    counts = Counter(v["job_id"] for v in values)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    # nothing went out before the dead instance's lease (3 s in tests) ran out
    first = min(instant_or_none(v["dispatched_at"]).timestamp() for v in values)  # type: ignore[union-attr]
    assert first >= killed_at - 1


async def _in_flight(rt: Runtime, ids: list[str]) -> bool:
    await asyncio.sleep(0)
    count = await rt.redis.zcard(rt.queue.inflight_key)
    return int(count) == len(ids)
