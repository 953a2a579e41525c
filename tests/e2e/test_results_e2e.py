"""Issue 5's end-to-end acceptance: scheduler, publisher and results as processes, the
sandbox failing 30 % of attempts retryably, 5 % permanently and 5 % ambiguously."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from herald.services.results.policy import PolicyConfig, backoff_ceiling
from herald.shared.domain.jobs import JobStatus, can_transition
from herald.shared.infra.names import STATUS
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import instant_or_none
from tests.conftest import Namespace, eventually
from tests.support.helpers import (
    ServiceProcess,
    aread_topic,
    assert_none_in_progress,
    sandbox_connections,
)
from tests.support.results_pipeline import schedule_jobs, statuses

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
JOBS = 2000
FAILING = {"retryable_rate": 0.30, "permanent_rate": 0.05, "ambiguous_rate": 0.05}


async def test_2000_jobs_with_failures_all_end_terminal_and_posted_at_most_once(
    ns: Namespace, rt: Runtime, tmp_path: Path
) -> None:
    connections = await sandbox_connections(rt, 20, metadata=FAILING)
    env = ns.env()
    services = [
        ServiceProcess(name, env, tmp_path).start()
        for name in ("scheduler", "publisher", "results")
    ]
    try:
        ids = await schedule_jobs(rt, JOBS, connections=connections)

        async def settled() -> bool:
            found = await statuses(rt, ids)
            return set(found.values()) <= {"PUBLISHED", "DEAD_LETTERED"}

        await eventually(settled, timeout=600, interval=1.0)
        await assert_none_in_progress(rt)
        assert all(s.alive() for s in services), [s.log()[-2000:] for s in services]
        jobs = {
            str(r["id"]): r for r in await rt.db.fetch("SELECT id, status, attempt_count FROM jobs")
        }
        events = await aread_topic(
            rt.settings.kafka_bootstrap,
            rt.names.topic(STATUS),
            expect=sum(2 * r["attempt_count"] + 1 for r in jobs.values()),
            timeout=120,
            quiet=3,
        )
    finally:
        for s in services:
            s.stop()
    final = Counter(r["status"] for r in jobs.values())
    assert final["PUBLISHED"] + final["DEAD_LETTERED"] == JOBS and final["DEAD_LETTERED"] > 0

    posts = Counter(str(r["job_id"]) for r in await rt.db.fetch("SELECT job_id FROM sandbox_posts"))
    published = {j for j, r in jobs.items() if r["status"] == "PUBLISHED"}
    # The sandbox never deduplicates: a job id twice is a double post.
    assert [j for j, n in posts.items() if n > 1] == []
    assert set(posts) == published  # every post belongs to a PUBLISHED job, and vice versa

    attempts: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for a in await rt.db.fetch(
        "SELECT job_id, attempt, outcome, finished_at, retry_after FROM attempts"
    ):
        attempts[str(a["job_id"])][a["attempt"]] = a
    by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_job[e["job_id"]].append(e)
    config = PolicyConfig.from_settings(rt.settings)
    slack = timedelta(milliseconds=1)
    for job_id, row in jobs.items():
        seq = [e["status"] for e in by_job[job_id]]
        # publish.status carries every transition, in order, each one allowed.
        assert seq[0] == "SCHEDULED" and seq[-1] == row["status"], (job_id, seq)
        assert all(can_transition(JobStatus(a), JobStatus(b)) for a, b in pairwise(seq))
        assert seq.count("IN_PROGRESS") == row["attempt_count"], (job_id, seq)
        assert set(attempts[job_id]) == set(range(1, row["attempt_count"] + 1))
        for e in by_job[job_id]:
            if e["status"] != "RETRY_SCHEDULED":
                continue
            failed = attempts[job_id][e["attempt"]]
            delay = instant_or_none(e["next_attempt_at"]) - failed["finished_at"]  # type: ignore[operator]
            if failed["retry_after"] is not None:
                assert abs(delay.total_seconds() - failed["retry_after"]) < 1e-3
            else:
                ceiling = backoff_ceiling(e["attempt"], config)
                assert -slack <= delay <= timedelta(seconds=ceiling) + slack, (job_id, e)
