"""The whole pipeline as processes, with a sandbox that fails often: every job reaches one
terminal state, nothing is published twice, retries respect the backoff, and
publish.status tells every transition."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from shared.events import now_utc, parse_time
from shared.names import STATUS
from shared.runtime import Runtime
from shared.tenancy import ADMIN
from tests.conftest import Namespace, eventually
from tests.support.helpers import ServiceProcess, aread_topic, sandbox_connections

N = 2000
FLAKY = {"retryable_rate": 0.30, "permanent_rate": 0.05, "ambiguous_rate": 0.05}


async def test_flaky_sandbox_pipeline_ends_every_job_once(
    ns: Namespace, rt: Runtime, tmp_path: Path
) -> None:
    settings = rt.settings
    connections = await sandbox_connections(rt, 20, metadata=FLAKY)
    env = ns.env()
    procs = [ServiceProcess(name, env, tmp_path, f"{name}{i}").start()
             for i, name in enumerate(["scheduler", "results", "publisher", "publisher"])]
    try:
        due = (now_utc() + timedelta(seconds=3)).isoformat()
        jobs = rt.jobs()
        for i in range(N):
            await jobs.schedule(ADMIN, {
                "platform": "sandbox", "connection_id": connections[i % 20],
                "media_asset_ids": ["https://cdn.example.com/x.jpg"], "scheduled_at": due,
            })
        await eventually(lambda: _all_terminal(rt), timeout=240, interval=1.0)
        assert all(p.alive() for p in procs), [p.log()[-3000:] for p in procs if not p.alive()]
        status_events = await aread_topic(settings.kafka_bootstrap, ns.topic_prefix + STATUS,
                                          expect=N * 3, timeout=60, quiet=3)
    finally:
        for p in procs:
            p.stop()

    rows = await rt.db.fetch("SELECT id, status, attempt_count FROM jobs")
    assert len(rows) == N
    final = {str(r["id"]): r["status"] for r in rows}
    assert set(final.values()) <= {"PUBLISHED", "DEAD_LETTERED"}
    assert "PUBLISHED" in final.values() and "DEAD_LETTERED" in final.values()

    posts: dict[str, int] = defaultdict(int)
    for p in await rt.db.fetch("SELECT job_id FROM sandbox_posts"):
        posts[str(p["job_id"])] += 1
    for job_id, status in final.items():
        expected = 1 if status == "PUBLISHED" else 0
        assert posts.get(job_id, 0) == expected, (job_id, status, posts.get(job_id))
    assert set(posts) <= set(final)

    # Each stored retry time lies within the backoff bounds.
    finished = {(str(a["job_id"]), a["attempt"]): a for a in
                await rt.db.fetch("SELECT job_id, attempt, finished_at, retry_after FROM attempts")}
    by_job: dict[str, list[dict[str, object]]] = defaultdict(list)
    for event in status_events:
        by_job[event["job_id"]].append(event)
    cap = settings.backoff_max_seconds
    retries = 0
    for event in status_events:
        if event["status"] != "RETRY_SCHEDULED" or event.get("reason") == "manual_retry":
            continue
        attempt = finished[(event["job_id"], event["attempt"])]
        wait = (parse_time(event["next_attempt_at"]) - attempt["finished_at"]).total_seconds()  # type: ignore[operator]
        limit = max(cap, attempt["retry_after"] or 0)
        assert -0.5 <= wait <= limit + 0.5, (event, attempt)
        retries += 1
    assert retries > 0

    # publish.status carries every transition, in order, ending in the final status.
    for job_id, events in by_job.items():
        statuses = [e["status"] for e in events]
        assert statuses[0] == "SCHEDULED" and statuses[-1] == final[job_id], statuses
        assert statuses.count("IN_PROGRESS") >= 1
    assert set(by_job) == set(final)


async def _all_terminal(rt: Runtime) -> bool:
    row = await rt.db.fetchone(
        "SELECT count(*) FILTER (WHERE status IN ('PUBLISHED', 'DEAD_LETTERED')) AS done,"
        " count(*) AS total FROM jobs"
    )
    return bool(row and row["total"] == N and row["done"] == N)
