"""Dead-letter listing and redrive (shared.redrive) on the real stack."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
import pytest

from herald.services.results.consumer import ResultsConsumer
from herald.shared.domain.tenancy import ADMIN, Principal
from herald.shared.errors import ValidationFailed
from herald.shared.infra.runtime import Runtime
from herald.shared.jobs import redrive
from herald.shared.messages.codec import now_utc
from tests.conftest import eventually
from tests.support.helpers import sandbox_connections
from tests.support.results_pipeline import (
    job,
    mark_in_progress,
    pipeline,
    result_value,
    schedule_jobs,
    statuses,
)

pytestmark = pytest.mark.integration


async def dead_letter(rt: Runtime, job_ids: list[str], *outcomes: str) -> None:
    """Drive jobs through the results consumer: one dispatch per outcome."""
    consumer = ResultsConsumer(rt)
    for outcome in outcomes:
        rows = await mark_in_progress(rt, job_ids)
        await consumer.apply([orjson.dumps(result_value(r, outcome)) for r in rows])
    assert set((await statuses(rt, job_ids)).values()) <= {"DEAD_LETTERED"}


async def test_a_dry_run_lists_exactly_what_the_redrive_then_replays(rt: Runtime) -> None:
    permanent = await schedule_jobs(rt, 3)
    exhausted = await schedule_jobs(rt, 2)
    unconfirmed = await schedule_jobs(rt, 2)
    await dead_letter(rt, permanent, "permanent_error")
    await dead_letter(rt, exhausted, *["retryable_error"] * rt.settings.max_attempts)
    await dead_letter(rt, unconfirmed, "unconfirmed")
    everything = redrive.Filters()

    plan = await redrive.redrive(rt.jobs(), ADMIN, everything, dry_run=True, force=False)
    assert plan["count"] == 5 and sorted(plan["job_ids"]) == sorted(permanent + exhausted)
    assert (await statuses(rt, permanent))[permanent[0]] == "DEAD_LETTERED"  # nothing moved
    done = await redrive.redrive(rt.jobs(), ADMIN, everything, dry_run=False, force=False)
    assert done == plan
    for job_id in plan["job_ids"]:
        row = await job(rt, job_id)
        assert row["status"] == "RETRY_SCHEDULED" and row["failed_attempts"] == 0
        assert row["next_attempt_at"] <= now_utc() and row["queued"]
    assert await rt.queue.held(plan["job_ids"]) == set(plan["job_ids"])
    # Redriven letters leave the default listing; include_redriven shows them.
    listed = await redrive.list_dead_letters(rt.db, ADMIN, everything)
    assert sorted(i["job_id"] for i in listed["items"]) == sorted(unconfirmed)
    every = await redrive.list_dead_letters(rt.db, ADMIN, everything, include_redriven=True)
    assert len(every["items"]) == 7
    assert sum(i["redriven_at"] is not None for i in every["items"]) == 5
    assert await redrive.redrive(rt.jobs(), ADMIN, everything, dry_run=True, force=False) == {
        "count": 0,
        "job_ids": [],
    }

    # `unconfirmed` only with force; then the job may be published again (after a check).
    forced = await redrive.redrive(rt.jobs(), ADMIN, everything, dry_run=True, force=True)
    assert sorted(forced["job_ids"]) == sorted(unconfirmed)
    assert await redrive.redrive(rt.jobs(), ADMIN, everything, dry_run=False, force=True) == forced
    for job_id in unconfirmed:
        row = await job(rt, job_id)
        assert row["status"] == "RETRY_SCHEDULED" and not row["force_required"]


async def test_filters_tenancy_and_pages(rt: Runtime) -> None:
    acme1, acme2 = await sandbox_connections(rt, 2, tenant="acme")
    [globex] = await sandbox_connections(rt, 1, tenant="globex")
    a1 = await schedule_jobs(rt, 3, connections=[acme1])
    a2 = await schedule_jobs(rt, 2, connections=[acme2])
    g = await schedule_jobs(rt, 2, connections=[globex])
    await dead_letter(rt, a1, "permanent_error")
    await dead_letter(rt, a2 + g, "blocked")
    await ResultsConsumer(rt).apply([b"garbage"])  # an invalid_message row
    acme = Principal(tenant_id="acme", is_admin=False)

    async def ids(principal: Principal, **filters: Any) -> list[str | None]:
        page = await redrive.list_dead_letters(
            rt.db, principal, redrive.Filters.parse(**filters), limit=500
        )
        return sorted(i["job_id"] or "" for i in page["items"])

    assert await ids(acme) == sorted(a1 + a2)
    assert await ids(acme, reason="blocked") == sorted(a2)
    assert await ids(acme, connection_id=acme1) == sorted(a1)
    assert await ids(acme, reason="invalid_message") == []  # admins only
    assert await ids(ADMIN, job_ids=[g[0], a1[0]]) == sorted([g[0], a1[0]])
    assert len(await ids(ADMIN)) == 8
    [invalid] = (
        await redrive.list_dead_letters(
            rt.db, ADMIN, redrive.Filters.parse(reason="invalid_message")
        )
    )["items"]
    assert invalid["job_id"] is None and invalid["raw_base64"] == "Z2FyYmFnZQ=="
    later = (now_utc() + timedelta(minutes=1)).isoformat()
    assert await ids(ADMIN, since=later) == []
    assert len(await ids(ADMIN, until=later)) == 8
    assert len(await ids(ADMIN, platform="sandbox")) == 7  # not the invalid message

    # Pages: newest first, no overlap, nothing lost.
    seen: list[str] = []
    cursor = None
    while True:
        page = await redrive.list_dead_letters(
            rt.db, ADMIN, redrive.Filters(), limit=3, cursor=cursor
        )
        seen += [i["id"] for i in page["items"]]
        stamps = [i["created_at"] for i in page["items"]]
        assert stamps == sorted(stamps, reverse=True)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 8

    # A tenant's redrive never touches another tenant's jobs.
    done = await redrive.redrive(
        rt.jobs(), acme, redrive.Filters.parse(reason="blocked"), dry_run=False, force=False
    )
    assert sorted(done["job_ids"]) == sorted(a2)
    assert set((await statuses(rt, g)).values()) == {"DEAD_LETTERED"}


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"reason": "tired"}, "reason"),
        ({"since": "2026-05-01T10:00:00"}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"connection_id": "nope"}, "connection_id"),
        ({"job_ids": ["6b3f0b9e-8a52-4a5e-9d9a-1f7c1f0e2a11", "x"]}, "job_ids"),
        ({"since": "2026-05-02T00:00:00Z", "until": "2026-05-01T00:00:00Z"}, "until"),
    ],
)
def test_bad_filters_name_the_field(filters: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        redrive.Filters.parse(**filters)
    assert err.value.fields is not None and field in err.value.fields


def test_good_filters_parse() -> None:
    f = redrive.Filters.parse(
        reason="exhausted",
        since="2026-05-01T10:00:00+02:00",
        platform="",
        job_ids="6B3F0B9E-8A52-4A5E-9D9A-1F7C1F0E2A11",
    )
    assert f.reason == "exhausted" and f.platform is None
    assert f.since is not None and f.since.hour == 8
    assert f.job_ids == ("6b3f0b9e-8a52-4a5e-9d9a-1f7c1f0e2a11",)


async def test_a_redrive_of_500_dead_letters_publishes_each_once(rt: Runtime) -> None:
    connections = await sandbox_connections(rt, 5)
    ids = await schedule_jobs(rt, 520, connections=connections)  # across the 500-job chunks
    answers: Counter[str] = Counter()
    redriven = False

    def script(request: dict[str, Any]) -> str:
        outcome = "published" if redriven else "permanent_error"
        answers[f"{request['job_id']}:{outcome}"] += 1
        return outcome

    async with pipeline(rt, script):
        await eventually(lambda: _all(rt, ids, "DEAD_LETTERED"), timeout=120)
        plan = await redrive.redrive(rt.jobs(), ADMIN, redrive.Filters(), dry_run=True, force=False)
        assert plan["count"] == 520
        redriven = True
        done = await redrive.redrive(
            rt.jobs(), ADMIN, redrive.Filters(), dry_run=False, force=False, progress=True
        )
        assert done == plan
        await eventually(lambda: _all(rt, ids, "PUBLISHED"), timeout=120)
    published = await rt.db.fetch(
        "SELECT job_id, count(*) AS n FROM attempts WHERE outcome = 'published' GROUP BY job_id"
    )
    assert len(published) == 520 and {r["n"] for r in published} == {1}
    assert {k for k, n in answers.items() if k.endswith(":published") and n != 1} == set()


async def _all(rt: Runtime, ids: list[str], status: str) -> bool:
    found = await statuses(rt, ids)
    return len(found) == len(ids) and set(found.values()) == {status}
