"""The results service as a process, SIGKILLed mid-batch (once exactly between a batch's
Postgres commit and its Redis writes / offset commit, then at random points) and restarted:
no attempt row lost or doubled, no job left outside a terminal state, one terminal
publish.status event per job."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from herald.shared.infra.names import STATUS
from herald.shared.infra.runtime import Runtime
from tests.conftest import Namespace, eventually
from tests.support.helpers import ServiceProcess, aread_topic, sandbox_connections
from tests.support.results_pipeline import pipeline, schedule_jobs, statuses

pytestmark = [pytest.mark.chaos, pytest.mark.integration]
JOBS = 1500


def _roll(request: dict[str, Any]) -> float:
    digest = hashlib.sha256(f"{request['job_id']}:{request['attempt']}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def script(request: dict[str, Any]) -> str:
    """Deterministic per (job, attempt): failures of every kind, mostly successes later."""
    roll = _roll(request)
    if request["check_only"]:
        return "published" if roll < 0.5 else "unconfirmed"
    if request["attempt"] == 1:
        if roll < 0.35:
            return "retryable_error"
        if roll < 0.45:
            return "ambiguous"
        if roll < 0.50:
            return "permanent_error"
        if roll < 0.55:
            return "rate_limited"
        return "published"
    return "retryable_error" if roll < 0.4 else "published"


async def _attempts(rt: Runtime) -> int:
    row = await rt.db.fetchone("SELECT count(*) AS n FROM attempts")
    return int(row["n"]) if row else 0


async def test_results_sigkilled_mid_batch_loses_and_doubles_nothing(
    ns: Namespace, rt: Runtime, tmp_path: Path
) -> None:
    connections = await sandbox_connections(rt, 8)
    ids = await schedule_jobs(rt, JOBS, connections=connections)
    service = ServiceProcess(
        "results", ns.env(), tmp_path, "results-paused", faults=["--pause-after-commit", "600"]
    ).start()
    kills = 0
    try:
        async with pipeline(rt, script, results=False) as fake:
            assert fake is not None
            # 1. Killed after a batch committed in Postgres, before Redis and the offsets.
            await eventually(lambda: _attempts(rt), timeout=120)
            await eventually(lambda: _logged(service, "fault injection"), timeout=60)
            service.kill()
            kills += 1
            # 2. Killed at arbitrary points while results flow.
            for threshold in (JOBS // 2, JOBS):
                service = ServiceProcess("results", ns.env(), tmp_path, f"results{kills}").start()
                await eventually(lambda t=threshold: _at_least(rt, t), timeout=180)  # type: ignore[misc]
                service.kill()
                kills += 1
            service = ServiceProcess("results", ns.env(), tmp_path, "results-final").start()

            async def settled() -> bool:
                found = await statuses(rt, ids)
                return set(found.values()) <= {"PUBLISHED", "DEAD_LETTERED"}

            await eventually(settled, timeout=300, interval=0.5)
            # every status event of the last batches has left the outbox for Kafka
            await eventually(lambda: _outbox_drained(rt), timeout=60)
            answered = set(fake.answered)
        assert service.alive(), service.log()[-3000:]
    finally:
        service.stop()
    assert kills == 3

    rows = await rt.db.fetch("SELECT job_id, attempt FROM attempts")
    recorded = {(str(r["job_id"]), int(r["attempt"])) for r in rows}
    assert len(recorded) == len(rows)  # the primary key; no doubles
    assert recorded == answered  # every answer recorded once, nothing invented
    final = await statuses(rt, ids)
    counts = Counter(final.values())
    assert counts["PUBLISHED"] + counts["DEAD_LETTERED"] == JOBS and counts["DEAD_LETTERED"] > 0
    letters = await rt.db.fetch("SELECT job_id, count(*) AS n FROM dead_letters GROUP BY job_id")
    assert {str(r["job_id"]): r["n"] for r in letters} == {
        j: 1 for j, s in final.items() if s == "DEAD_LETTERED"
    }
    for job_id in ids:  # the attempt numbers have no gaps
        n = await rt.db.fetchone("SELECT attempt_count FROM jobs WHERE id = %s", (job_id,))
        assert n is not None
        assert {a for j, a in recorded if j == job_id} == set(range(1, n["attempt_count"] + 1))
    events = await aread_topic(
        rt.settings.kafka_bootstrap, rt.names.topic(STATUS), expect=JOBS * 3, timeout=120, quiet=2.0
    )
    terminal = Counter(e["job_id"] for e in events if e["status"] in ("PUBLISHED", "DEAD_LETTERED"))
    assert terminal == Counter(dict.fromkeys(ids, 1))


async def _at_least(rt: Runtime, n: int) -> bool:
    return await _attempts(rt) >= n


async def _logged(service: ServiceProcess, text: str) -> bool:
    return text in service.log()


async def _outbox_drained(rt: Runtime) -> bool:
    row = await rt.db.fetchone("SELECT count(*) AS n FROM outbox")
    return row is not None and row["n"] == 0
