"""An auth failure holds its jobs, it does not fail them: each job waits RETRY_SCHEDULED
(`last_error.code` = needs_reauth) without spending its budget and is not dispatched; a new
token releases it; past its deadline it ends `missed`. Real Postgres, Redis and Kafka; the
publisher is scripted (the publisher's own answer for a `needs_reauth` connection, an
`auth_error` without a platform call, is covered in test_publisher)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.names import STATUS
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import now_utc
from herald.shared.stores import connections
from tests.conftest import eventually
from tests.support.helpers import aread_topic, sandbox_connections
from tests.support.results_pipeline import job, pipeline, schedule_jobs, statuses

pytestmark = pytest.mark.integration
TOKEN = "t" * 40


async def held(rt: Runtime, ids: list[str]) -> bool:
    for job_id in ids:
        row = await job(rt, job_id)
        if row["status"] != "RETRY_SCHEDULED" or (row["last_error"] or {}).get("code") != (
            "needs_reauth"
        ):
            return False
    return True


async def attempts(rt: Runtime, job_id: str) -> int:
    rows = await rt.db.fetch("SELECT attempt FROM attempts WHERE job_id = %s", (job_id,))
    return len(rows)


async def test_auth_errors_hold_jobs_until_a_new_token_and_the_deadline_ends_them(
    rt: Runtime,
) -> None:
    [cid] = await sandbox_connections(rt, 1)
    waiting = await schedule_jobs(rt, 2, connections=[cid], deadline=now_utc() + timedelta(hours=1))
    [short] = await schedule_jobs(
        rt, 1, connections=[cid], deadline=now_utc() + timedelta(seconds=3)
    )
    answer = {"now": "auth_error"}
    # The platform refused the token: the publisher marks the connection, then answers.
    assert await connections.mark_needs_reauth(rt.db, cid, None)

    def script(request: dict[str, Any]) -> str:
        if now_utc().isoformat() >= request["publish_deadline"]:
            return "missed"  # what the publisher answers past the deadline, without a call
        return answer["now"]

    async with pipeline(rt, script):
        await eventually(lambda: held(rt, [*waiting, short]), timeout=60)
        for job_id in waiting:
            row = await job(rt, job_id)
            assert row["failed_attempts"] == 0  # no budget spent
            assert row["next_attempt_at"] == row["publish_deadline"]
            assert row["last_error"]["outcome"] == "auth_error"
        # The short one reaches its deadline and ends missed; the others are not
        # dispatched meanwhile (one attempt each, still held).
        await eventually(lambda: _status_is(rt, short, "DEAD_LETTERED"), timeout=60, interval=0.2)
        [letter] = await rt.db.fetch("SELECT reason FROM dead_letters WHERE job_id = %s", (short,))
        assert letter["reason"] == "missed"
        assert await held(rt, waiting)
        assert [await attempts(rt, j) for j in waiting] == [1, 1]

        # A new token releases them at once: they publish, still on their first budget.
        answer["now"] = "published"
        changed = await rt.connections().patch(ADMIN, cid, {"access_token": TOKEN})
        assert changed["status"] == "active"
        found = await eventually(lambda: _all(rt, waiting, "PUBLISHED"), timeout=60, interval=0.2)
        assert found
        # 6 events for each released job, 5 for the missed one.
        events = await aread_topic(
            rt.settings.kafka_bootstrap, rt.names.topic(STATUS), expect=17, timeout=30, quiet=1.0
        )
    for job_id in waiting:
        row = await job(rt, job_id)
        assert row["failed_attempts"] == 0 and row["attempt_count"] == 2
    reasons = [(e["status"], e["reason"]) for e in events if e["job_id"] == waiting[0]]
    assert ("RETRY_SCHEDULED", "needs_reauth") in reasons
    assert ("RETRY_SCHEDULED", "reauthorised") in reasons
    assert reasons[-1][0] == "PUBLISHED"


async def test_a_token_that_came_while_the_attempt_failed_releases_its_job_at_once(
    rt: Runtime,
) -> None:
    """The connection service released nothing (the job was IN_PROGRESS when the new token
    came), and the publisher did not mark the connection (its token had changed): the
    results service holds the job and, finding the connection active, releases it."""
    [cid] = await sandbox_connections(rt, 1)
    [job_id] = await schedule_jobs(
        rt, 1, connections=[cid], deadline=now_utc() + timedelta(hours=1)
    )
    answers = iter(["auth_error"])

    async with pipeline(rt, lambda request: next(answers, "published")):
        await eventually(lambda: _status_is(rt, job_id, "PUBLISHED"), timeout=60, interval=0.2)
    row = await job(rt, job_id)
    assert row["attempt_count"] == 2 and row["failed_attempts"] == 0


async def test_the_token_that_failed_marks_the_connection_a_newer_one_does_not(
    rt: Runtime,
) -> None:
    [cid] = await sandbox_connections(rt, 1)
    await rt.connections().patch(ADMIN, cid, {"access_token": TOKEN})
    [old] = await rt.db.fetch("SELECT token_ciphertext FROM connections WHERE id = %s", (cid,))
    await rt.connections().patch(ADMIN, cid, {"access_token": "n" * 40})
    assert not await connections.mark_needs_reauth(rt.db, cid, bytes(old["token_ciphertext"]))
    assert (await rt.connections().get(ADMIN, cid))["status"] == "active"
    [new] = await rt.db.fetch("SELECT token_ciphertext FROM connections WHERE id = %s", (cid,))
    assert await connections.mark_needs_reauth(rt.db, cid, bytes(new["token_ciphertext"]))
    assert (await rt.connections().get(ADMIN, cid))["status"] == "needs_reauth"


async def _status_is(rt: Runtime, job_id: str, status: str) -> bool:
    return (await statuses(rt, [job_id])).get(job_id) == status


async def _all(rt: Runtime, ids: list[str], status: str) -> bool:
    return set((await statuses(rt, ids)).values()) == {status}
