"""A scheduler SIGKILLed between its IN_PROGRESS mark and its produce, and the run's Redis
keys lost with it: nothing but Postgres knows the jobs were dispatched, and no publisher
will ever see their requests. They are dispatched again with the same attempt once their
lease has passed (the stuck-job sweep is an hour away) and published exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from herald.shared.infra.names import REQUEST
from herald.shared.infra.runtime import Runtime
from tests.conftest import Namespace, eventually
from tests.support.helpers import ServiceProcess, aread_topic, sandbox_connections
from tests.support.results_pipeline import schedule_jobs, statuses

pytestmark = pytest.mark.chaos
JOBS = 40
NO_STUCK_SWEEP = {"stuck_after_seconds": 3600.0}


async def test_a_dispatch_killed_between_mark_and_produce_is_recovered_in_seconds(
    ns: Namespace, rt: Runtime, tmp_path: Path
) -> None:
    connections = await sandbox_connections(rt, 2)
    ids = await schedule_jobs(rt, JOBS, connections=connections)
    doomed = ServiceProcess(
        "scheduler",
        ns.env(**NO_STUCK_SWEEP),
        tmp_path,
        "doomed",
        faults=["--pause-after-mark", "600"],
    ).start()
    try:
        await eventually(lambda: _logged(doomed, "pausing after mark"), timeout=60)
    finally:
        doomed.kill()
    # Marked in Postgres, never produced; and Redis forgets the batch's lease.
    assert set((await statuses(rt, ids)).values()) == {"IN_PROGRESS"}
    assert ns.drop_redis_keys() > 0
    produced = await aread_topic(
        rt.settings.kafka_bootstrap, rt.names.topic(REQUEST), expect=1, timeout=3, quiet=0
    )
    assert produced == []

    env = ns.env(**NO_STUCK_SWEEP)
    services = [
        ServiceProcess(name, env, tmp_path).start()
        for name in ("scheduler", "publisher", "results")
    ]
    try:

        async def all_published() -> bool:
            return set((await statuses(rt, ids)).values()) == {"PUBLISHED"}

        await eventually(all_published, timeout=120, interval=0.5)
        assert all(s.alive() for s in services), [s.log()[-2000:] for s in services]
    finally:
        for s in services:
            s.stop()
    scheduler_log = services[0].log()
    assert "re-dispatching a job" in scheduler_log and "no publisher holds it" in scheduler_log
    posts = Counter(str(r["job_id"]) for r in await rt.db.fetch("SELECT job_id FROM sandbox_posts"))
    assert posts == Counter(dict.fromkeys(ids, 1))
    attempts = await rt.db.fetch("SELECT DISTINCT attempt FROM attempts")
    assert [r["attempt"] for r in attempts] == [1]  # dispatched again with the same attempt


async def _logged(service: ServiceProcess, text: str) -> bool:
    return text in service.log()
