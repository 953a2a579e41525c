"""The results service on the real stack: attempts, the retry policy's transitions, dead
letters, publish.status / publish.dlq, redelivery and bad input."""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from herald.services.results import records
from herald.services.results.consumer import ResultsConsumer
from herald.services.results.main import prune_once
from herald.services.results.policy import PolicyConfig, backoff_ceiling
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra import metrics
from herald.shared.infra.names import DLQ, STATUS
from herald.shared.infra.runtime import Runtime
from herald.shared.jobs import redrive
from herald.shared.messages.codec import instant_or_none, now_utc
from tests.conftest import Namespace, eventually
from tests.support.helpers import aread_topic, queued_at, sandbox_connections
from tests.support.results_pipeline import (
    job,
    mark_in_progress,
    pipeline,
    produce_raw,
    produce_results,
    result_value,
    schedule_jobs,
    statuses,
)

pytestmark = pytest.mark.integration


@asynccontextmanager
async def runtime(ns: Namespace, **overrides: Any) -> AsyncIterator[Runtime]:
    rt = Runtime.build(ns.settings(**overrides))
    await rt.open()
    try:
        yield rt
    finally:
        await rt.close()


async def topic_values(rt: Runtime, base: str, expect: int) -> list[dict[str, Any]]:
    return await aread_topic(
        rt.settings.kafka_bootstrap, rt.names.topic(base), expect=expect, timeout=60, quiet=1.0
    )


def at(text: str | None) -> datetime:
    parsed = instant_or_none(text)
    assert parsed is not None
    return parsed


def by_job(values: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in values:
        out[v["job_id"]].append(v)
    return out


async def wait_status(
    rt: Runtime, job_ids: list[str], wanted: set[str], timeout: float = 60
) -> dict[str, str]:
    async def check() -> dict[str, str] | None:
        found = await statuses(rt, job_ids)
        return found if len(found) == len(job_ids) and set(found.values()) <= wanted else None

    result: dict[str, str] = await eventually(check, timeout=timeout)
    return result


async def attempt_rows(rt: Runtime, job_id: str) -> list[dict[str, Any]]:
    return await rt.db.fetch("SELECT * FROM attempts WHERE job_id = %s ORDER BY attempt", (job_id,))


async def test_a_published_result_records_the_attempt_and_publishes_the_job(
    rt: Runtime,
) -> None:
    [job_id] = await schedule_jobs(rt, 1)
    [row] = await mark_in_progress(rt, [job_id])
    value = result_value(row, "published")
    lag_before = metrics.END_TO_END_LAG._sum.get()
    produce_results(rt, [value])
    async with pipeline(rt, dispatcher=False):
        await wait_status(rt, [job_id], {"PUBLISHED"})
        events = await topic_values(rt, STATUS, expect=3)
    done = await job(rt, job_id)
    assert done["published_at"] == at(value["published_at"])
    assert done["provider_ids"] == value["provider_ids"] and not done["queued"]
    [attempt] = await attempt_rows(rt, job_id)
    assert attempt["outcome"] == "published" and attempt["worker"] == "fake-publisher"
    assert [e["status"] for e in events] == ["SCHEDULED", "IN_PROGRESS", "PUBLISHED"]
    assert events[-1]["provider_ids"] == value["provider_ids"]
    assert events[-1]["published_at"] is not None and events[-1]["attempt"] == 1
    assert metrics.END_TO_END_LAG._sum.get() > lag_before


async def test_a_redelivered_result_changes_nothing(rt: Runtime) -> None:
    [conn] = await sandbox_connections(rt, 1)
    ids = await schedule_jobs(rt, 2, connections=[conn])
    rows = {str(r["id"]): r for r in await mark_in_progress(rt, ids)}
    failed = result_value(
        rows[ids[0]],
        {
            "outcome": "retryable_error",
            "error_code": 2,
            "error_message": "try later",
            "retry_after_seconds": 3600,
        },
    )
    # Same connection, same partition: the sentinel is consumed after the three copies.
    produce_results(rt, [failed, failed, failed, result_value(rows[ids[1]], "published")])
    async with pipeline(rt, dispatcher=False):
        await wait_status(rt, [ids[1]], {"PUBLISHED"})
        events = by_job(await topic_values(rt, STATUS, expect=6))
        # Again after the commit: nothing moves.
        report = await ResultsConsumer(rt).apply([orjson.dumps(failed)])
        assert report.duplicates == 1 and report.decisions == {}
    assert len(await attempt_rows(rt, ids[0])) == 1
    retry = await job(rt, ids[0])
    assert retry["status"] == "RETRY_SCHEDULED" and retry["failed_attempts"] == 1
    assert retry["next_attempt_at"] == at(failed["finished_at"]) + timedelta(hours=1)
    assert retry["last_error"]["code"] == 2 and retry["queued"]
    score = await queued_at(rt, ids[0])
    assert score == pytest.approx(retry["next_attempt_at"].timestamp(), abs=1e-3)
    assert [e["status"] for e in events[ids[0]]] == ["SCHEDULED", "IN_PROGRESS", "RETRY_SCHEDULED"]
    assert events[ids[0]][-1]["reason"] == "retryable_error"


async def test_duplicates_in_one_batch_count_once(rt: Runtime) -> None:
    [job_id] = await schedule_jobs(rt, 1)
    [row] = await mark_in_progress(rt, [job_id])
    raw = orjson.dumps(result_value(row, "permanent_error"))
    report = await ResultsConsumer(rt).apply([raw, raw, raw])
    assert report.duplicates == 2 and report.decisions == {"dead_letter": 1}
    rows = await rt.db.fetch("SELECT reason FROM dead_letters WHERE job_id = %s", (job_id,))
    assert [r["reason"] for r in rows] == ["permanent_error"]


async def test_one_batch_writes_its_attempts_and_jobs_as_computed(rt: Runtime) -> None:
    ids = await schedule_jobs(rt, 3)
    rows = {str(r["id"]): r for r in await mark_in_progress(rt, ids)}
    retry = result_value(
        rows[ids[0]],
        {
            "outcome": "retryable_error",
            "error_code": 2.0,  # schema-valid integer: stored as 2
            "error_message": "later",
            "retry_after_seconds": 1.5,
            "provider_response": {},
        },
    )
    later_copy = result_value(rows[ids[0]], "published")  # same attempt: the first copy wins
    published = result_value(
        rows[ids[1]], "published", provider_response={"id": "17841400000000000", "n": 2**62}
    )
    ahead = result_value(rows[ids[2]], "retryable_error", attempt=5)  # recorded, not moved
    report = await ResultsConsumer(rt, rand=lambda: 0.5).apply(
        [orjson.dumps(v) for v in (retry, later_copy, published, ahead)]
    )
    assert report.duplicates == 1 and report.invalid == 0
    assert report.decisions == {"retry": 1, "publish": 1, "record": 1}
    [a0] = await attempt_rows(rt, ids[0])
    assert (a0["outcome"], a0["error_code"], a0["error_subcode"]) == ("retryable_error", 2, None)
    assert a0["retry_after"] == 1.5 and a0["provider_response"] is None
    assert a0["provider_ids"] == {} and a0["finished_at"] == at(retry["finished_at"])
    [a1] = await attempt_rows(rt, ids[1])
    assert a1["provider_response"] == published["provider_response"]
    assert a1["provider_ids"] == published["provider_ids"] and a1["error_code"] is None
    assert [a["attempt"] for a in await attempt_rows(rt, ids[2])] == [5]
    moved = await job(rt, ids[0])
    assert moved["status"] == "RETRY_SCHEDULED" and moved["failed_attempts"] == 1
    assert moved["next_attempt_at"] == at(retry["finished_at"]) + timedelta(seconds=1.5)
    assert moved["queued"] and moved["published_at"] is None
    assert moved["last_error"] == {
        "outcome": "retryable_error",
        "attempt": 1,
        "code": 2,
        "subcode": None,
        "message": "later",
        "may_be_live": False,
    }
    done = await job(rt, ids[1])
    assert done["status"] == "PUBLISHED" and done["published_at"] == at(published["published_at"])
    assert done["provider_ids"] == published["provider_ids"] and not done["queued"]
    null_error = await rt.db.fetchone(
        "SELECT last_error IS NULL AS sql_null FROM jobs WHERE id = %s", (ids[1],)
    )
    assert null_error == {"sql_null": True}  # not a jsonb 'null'
    assert (await job(rt, ids[2]))["status"] == "IN_PROGRESS"


async def test_a_job_changed_under_its_lock_fails_the_whole_write(rt: Runtime) -> None:
    ids = await schedule_jobs(rt, 2)
    await mark_in_progress(rt, ids)
    with pytest.raises(RuntimeError, match="1 jobs changed under their locks"):
        async with rt.db.transaction() as conn:
            locked = await records.lock_jobs(conn, sorted(ids))
            for row in locked.values():
                row["status"], row["next_attempt_at"] = "PUBLISHED", None
            await records.update_jobs(
                conn, locked, {ids[0]: "IN_PROGRESS", ids[1]: "RETRY_SCHEDULED"}
            )
    assert await statuses(rt, ids) == {i: "IN_PROGRESS" for i in ids}


async def test_the_planner_hints_last_for_the_batch_transaction_only(rt: Runtime) -> None:
    [job_id] = await schedule_jobs(rt, 1)
    async with rt.db.transaction() as conn:
        assert list(await records.lock_jobs(conn, [job_id])) == [job_id]
        cur = await conn.execute("SELECT current_setting('enable_seqscan') AS s")
        assert await cur.fetchone() == {"s": "off"}
        cur = await conn.execute("SELECT current_setting('enable_hashjoin') AS s")
        assert await cur.fetchone() == {"s": "off"}
    async with rt.db.connection() as conn:
        cur = await conn.execute("SELECT current_setting('enable_seqscan') AS s")
        assert await cur.fetchone() == {"s": "on"}


async def test_retries_land_in_redis_within_the_backoff_bounds(rt: Runtime) -> None:
    ids = await schedule_jobs(rt, 40)
    rows = await mark_in_progress(rt, ids)
    values = []
    for i, row in enumerate(rows):
        if i < 20:
            values.append(result_value(row, "retryable_error"))
        elif i < 30:
            values.append(result_value(row, "rate_limited"))
        else:  # a platform's retry-after, far above the 0.5 s cap
            values.append(
                result_value(row, {"outcome": "rate_limited", "retry_after_seconds": 7200})
            )
    retries_before = metrics.RETRIES_SCHEDULED._value.get()
    produce_results(rt, values)
    async with pipeline(rt, dispatcher=False):
        await wait_status(rt, ids, {"RETRY_SCHEDULED"})
    config = PolicyConfig.from_settings(rt.settings)
    for value in values:
        row = await job(rt, value["job_id"])
        delay = (row["next_attempt_at"] - at(value["finished_at"])).total_seconds()
        if value.get("retry_after_seconds"):
            assert delay == pytest.approx(7200, abs=1e-3)
        else:
            assert 0 <= delay <= backoff_ceiling(1, config) <= config.backoff_max_seconds
        budget = 1 if value["outcome"] == "retryable_error" else 0
        assert row["failed_attempts"] == budget and row["queued"]
        score = await queued_at(rt, value["job_id"])
        assert score == pytest.approx(row["next_attempt_at"].timestamp(), abs=1e-3)
    assert metrics.RETRIES_SCHEDULED._value.get() - retries_before == 40


async def test_failures_are_retried_until_the_budget_is_exhausted(ns: Namespace) -> None:
    async with runtime(ns, max_attempts=3) as rt:
        ids = await schedule_jobs(rt, 5)
        async with pipeline(rt, lambda request: "retryable_error") as fake:
            await wait_status(rt, ids, {"DEAD_LETTERED"})
            status = by_job(await topic_values(rt, STATUS, expect=5 * 7))
            dlq = await topic_values(rt, DLQ, expect=5)
        assert fake is not None
        config = PolicyConfig.from_settings(rt.settings)
        for job_id in ids:
            row = await job(rt, job_id)
            assert row["attempt_count"] == 3 and row["failed_attempts"] == 3
            attempts = await attempt_rows(rt, job_id)
            assert [a["attempt"] for a in attempts] == [1, 2, 3]
            assert [e["status"] for e in status[job_id]] == [
                "SCHEDULED",
                "IN_PROGRESS",
                "RETRY_SCHEDULED",
                "IN_PROGRESS",
                "RETRY_SCHEDULED",
                "IN_PROGRESS",
                "DEAD_LETTERED",
            ]
            retries = [e for e in status[job_id] if e["status"] == "RETRY_SCHEDULED"]
            for n, (event, failed) in enumerate(zip(retries, attempts, strict=False), start=1):
                delay = at(event["next_attempt_at"]) - failed["finished_at"]
                assert 0 <= delay.total_seconds() <= backoff_ceiling(n, config)
            assert status[job_id][-1]["reason"] == "exhausted"
        letters = await rt.db.fetch("SELECT * FROM dead_letters ORDER BY created_at")
        assert sorted(str(d["job_id"]) for d in letters) == sorted(ids)
        assert {d["reason"] for d in letters} == {"exhausted"}
        assert {d["attempt"] for d in letters} == {3}
        assert sorted(v["job_id"] for v in dlq) == sorted(ids)
        for v in dlq:
            assert v["reason"] == "exhausted" and v["request"]["job_id"] == v["job_id"]
            assert v["last_result"]["attempt"] == 3
            assert [a["outcome"] for a in v["attempt_summary"]] == ["retryable_error"] * 3


async def test_an_ambiguous_end_of_budget_is_settled_by_one_status_read(
    ns: Namespace,
) -> None:
    async with runtime(ns, max_attempts=2) as rt:
        live, unknown = await schedule_jobs(rt, 2)

        def script(request: dict[str, Any]) -> str:
            if not request["check_only"]:
                return "ambiguous"
            return "published" if request["job_id"] == live else "unconfirmed"

        async with pipeline(rt, script) as fake:
            await wait_status(rt, [live, unknown], {"PUBLISHED", "DEAD_LETTERED"})
            status = by_job(await topic_values(rt, STATUS, expect=2 * 7))
        assert fake is not None
        seen = sorted((r["job_id"] == live, r["attempt"], r["check_only"]) for r in fake.requests)
        assert seen == [
            (False, 1, False),
            (False, 2, False),
            (False, 3, True),
            (True, 1, False),
            (True, 2, False),
            (True, 3, True),
        ]
        assert (await job(rt, live))["status"] == "PUBLISHED"
        dead = await job(rt, unknown)
        assert dead["status"] == "DEAD_LETTERED" and dead["force_required"]
        assert not dead["check_only"]  # a forced retry publishes (after its own check)
        [letter] = await rt.db.fetch("SELECT reason FROM dead_letters")
        assert letter["reason"] == "unconfirmed"
        assert [e["reason"] for e in status[live] if e["status"] == "RETRY_SCHEDULED"] == [
            "ambiguous",
            "status_check",
        ]
        assert status[unknown][-1]["status"] == "DEAD_LETTERED"
        assert status[unknown][-1]["reason"] == "unconfirmed"


async def test_final_outcomes_and_missed_deadlines_dead_letter_at_once(rt: Runtime) -> None:
    ids = await schedule_jobs(rt, 5, deadline=now_utc() + timedelta(minutes=5))
    rows = await mark_in_progress(rt, ids)
    answers: list[str | dict[str, Any]] = [  # (an auth_error holds: test_auth_hold)
        {"outcome": "permanent_error", "error_code": 100, "error_message": "bad media"},
        "blocked",
        "unconfirmed",
        "missed",
        {"outcome": "rate_limited", "retry_after_seconds": 3600},  # after the deadline
    ]
    values = [result_value(r, a) for r, a in zip(rows, answers, strict=True)]
    expected = {v["job_id"]: v["outcome"] for v in values}
    expected[values[-1]["job_id"]] = "missed"
    produce_results(rt, values)
    async with pipeline(rt, dispatcher=False):
        await wait_status(rt, ids, {"DEAD_LETTERED"})
        dlq = await topic_values(rt, DLQ, expect=5)
    letters = await rt.db.fetch("SELECT * FROM dead_letters")
    assert {str(d["job_id"]): d["reason"] for d in letters} == expected
    assert {v["job_id"]: v["reason"] for v in dlq} == expected
    for job_id, reason in expected.items():
        row = await job(rt, job_id)
        assert row["force_required"] is (reason == "unconfirmed")
        assert row["next_attempt_at"] is None and not row["queued"]
    permanent = next(v for v in dlq if v["reason"] == "permanent_error")
    assert permanent["error"]["code"] == 100 and permanent["error"]["message"] == "bad media"
    assert permanent["request"]["media_asset_ids"] and permanent["attempt_summary"]
    assert "access_token" not in orjson.dumps(dlq).decode()


async def test_published_wins_over_a_pending_retry_and_over_a_dead_letter(rt: Runtime) -> None:
    retrying, dead = await schedule_jobs(rt, 2)
    await mark_in_progress(rt, [retrying, dead])
    second = await mark_in_progress(rt, [retrying, dead])  # attempt 2 while 1's answer is late
    rows = {str(r["id"]): r for r in second}
    produce_results(
        rt,
        [
            result_value(
                rows[retrying], {"outcome": "retryable_error", "retry_after_seconds": 600}
            ),
            result_value(rows[dead], "permanent_error"),
        ],
    )
    async with pipeline(rt, dispatcher=False):
        await eventually(lambda: rt.queue.held([retrying]))
        await wait_status(rt, [dead], {"DEAD_LETTERED"})
        late = [result_value(rows[j], "published", attempt=1) for j in (retrying, dead)]
        produce_results(rt, late)
        await wait_status(rt, [retrying, dead], {"PUBLISHED"})
        status = by_job(await topic_values(rt, STATUS, expect=2 * 5))
    assert await rt.queue.held([retrying]) == set()  # the pending retry is dropped
    for job_id in (retrying, dead):
        row = await job(rt, job_id)
        assert row["attempt_count"] == 2 and row["next_attempt_at"] is None
        one, two = await attempt_rows(rt, job_id)
        assert (one["outcome"], two["outcome"]) == (
            "published",
            "retryable_error" if job_id == retrying else "permanent_error",
        )
        assert status[job_id][-1]["status"] == "PUBLISHED"
    # The dead letter stays as history but is no longer replayable.
    plan = await redrive.redrive(rt.jobs(), ADMIN, redrive.Filters(), dry_run=True, force=True)
    assert plan == {"count": 0, "job_ids": []}


async def test_stale_and_terminal_results_are_recorded_without_moving_the_job(
    rt: Runtime,
) -> None:
    [conn] = await sandbox_connections(rt, 1)
    moving, cancelled = await schedule_jobs(rt, 2, connections=[conn])
    await mark_in_progress(rt, [moving])
    [current] = await mark_in_progress(rt, [moving])  # attempt 2
    cancelled_row = await job(rt, cancelled)
    await rt.jobs().cancel(ADMIN, cancelled)
    produce_results(
        rt,
        [
            result_value(current, "permanent_error", attempt=1),  # stale
            result_value(cancelled_row, "published", attempt=1),  # terminal: CANCELLED
            result_value(current, "published"),  # attempt 2: moves
            result_value(current, "retryable_error", attempt=3),  # after PUBLISHED
        ],
    )
    async with pipeline(rt, dispatcher=False):
        await eventually(lambda: _count(rt, "SELECT count(*) AS n FROM attempts", 4))
    assert (await job(rt, moving))["status"] == "PUBLISHED"
    assert (await job(rt, cancelled))["status"] == "CANCELLED"
    outcomes = [a["outcome"] for a in await attempt_rows(rt, moving)]
    assert outcomes == ["permanent_error", "published", "retryable_error"]
    assert await rt.db.fetch("SELECT * FROM dead_letters") == []


async def _count(rt: Runtime, sql: str, wanted: int) -> bool:
    row = await rt.db.fetchone(sql)
    return row is not None and row["n"] >= wanted


async def test_invalid_results_are_dead_lettered_and_the_consumer_goes_on(rt: Runtime) -> None:
    [good, other] = await schedule_jobs(rt, 2)
    rows = {str(r["id"]): r for r in await mark_in_progress(rt, [good, other])}
    unknown_job = result_value(
        rows[other], "published", job_id="00000000-0000-4000-8000-0000000000aa"
    )
    wrong_tenant = result_value(rows[other], "published", tenant_id="someone-else")
    bad_outcome = result_value(rows[other], "published")
    bad_outcome["outcome"] = "exploded"
    future_major = result_value(rows[other], "published", schema_version="9.0")
    raws = [
        b"not json",
        b'{"schema_version": "1.0"}',
        b"\x00\xff",
        orjson.dumps(unknown_job),
        orjson.dumps(wrong_tenant),
        orjson.dumps(bad_outcome),
        orjson.dumps(future_major),
    ]
    produce_raw(rt, raws)
    produce_results(rt, [result_value(rows[good], "published")])
    async with pipeline(rt, dispatcher=False):
        await wait_status(rt, [good], {"PUBLISHED"})
        await eventually(lambda: _count(rt, "SELECT count(*) AS n FROM dead_letters", 7))
        dlq = await topic_values(rt, DLQ, expect=7)
    letters = await rt.db.fetch("SELECT * FROM dead_letters ORDER BY created_at")
    assert sorted(bytes(d["raw"]) for d in letters) == sorted(raws)
    assert {str(d["job_id"]) for d in letters if d["job_id"]} >= {unknown_job["job_id"]}
    assert sorted(base64.b64decode(v["raw_base64"]) for v in dlq) == sorted(raws)
    # The first unreadable answer to `other`'s attempt ends its wait (the post may be live);
    # the later ones find it dead-lettered already and are kept as invalid messages.
    [stranded] = [d for d in letters if d["reason"] == "unreadable_result"]
    assert str(stranded["job_id"]) == other
    assert {d["reason"] for d in letters if d is not stranded} == {"invalid_message"}
    row = await job(rt, other)
    assert row["status"] == "DEAD_LETTERED" and row["force_required"]
    assert row["last_error"]["outcome"] == "unreadable_result" and row["last_error"]["may_be_live"]
    assert await rt.db.fetch("SELECT * FROM attempts WHERE job_id = %s", (other,)) == []
    listed = await redrive.list_dead_letters(rt.db, ADMIN, redrive.Filters(), limit=10)
    assert all("raw_base64" in item for item in listed["items"])


async def test_a_value_postgres_refuses_is_set_aside_and_the_batch_goes_on(rt: Runtime) -> None:
    ids = await schedule_jobs(rt, 3)
    rows = await mark_in_progress(rt, ids)
    poison = result_value(rows[0], {"outcome": "permanent_error", "error_code": 2**40})
    report = await ResultsConsumer(rt).apply(
        [orjson.dumps(poison)] + [orjson.dumps(result_value(r, "published")) for r in rows[1:]]
    )
    assert report.invalid == 1 and report.decisions == {"publish": 2}
    assert await statuses(rt, ids) == {
        ids[0]: "DEAD_LETTERED",  # its answer is lost: it does not wait for it forever
        ids[1]: "PUBLISHED",
        ids[2]: "PUBLISHED",
    }
    [letter] = await rt.db.fetch("SELECT * FROM dead_letters")
    assert letter["reason"] == "unreadable_result" and str(letter["job_id"]) == ids[0]
    assert bytes(letter["raw"]) == orjson.dumps(poison)


async def test_an_unreadable_result_never_leaves_its_job_waiting(rt: Runtime) -> None:
    # A short token once rewrote every result's platform ("sandbo[redacted]"): the results
    # were dead-lettered and their jobs waited IN_PROGRESS forever, though the posts were live.
    waiting, stale = await schedule_jobs(rt, 2)
    rows = {str(r["id"]): r for r in await mark_in_progress(rt, [waiting, stale])}
    await mark_in_progress(rt, [stale])  # now on attempt 2
    garbled = result_value(rows[waiting], "published", platform="sandbo[redacted]")
    old_answer = result_value(rows[stale], "published", platform="sandbo[redacted]")
    report = await ResultsConsumer(rt).apply([orjson.dumps(garbled), orjson.dumps(old_answer)])
    assert report.invalid == 2
    assert await statuses(rt, [waiting, stale]) == {
        waiting: "DEAD_LETTERED",
        stale: "IN_PROGRESS",  # attempt 2 is still running: an answer to attempt 1 ends nothing
    }
    letters = {str(d["job_id"]): d for d in await rt.db.fetch("SELECT * FROM dead_letters")}
    assert letters[waiting]["reason"] == "unreadable_result"
    assert letters[stale]["reason"] == "invalid_message"
    # Visible to its tenant, redriven only with force (the post may be live).
    listed = await redrive.list_dead_letters(
        rt.db, ADMIN, redrive.Filters.parse(reason="unreadable_result"), limit=10
    )
    assert [item["job_id"] for item in listed["items"]] == [waiting]
    jobs = rt.jobs()
    filters = redrive.Filters.parse(reason="unreadable_result")
    skipped = await redrive.redrive(jobs, ADMIN, filters, dry_run=False, force=False)
    assert skipped == {"count": 0, "job_ids": []}
    forced = await redrive.redrive(jobs, ADMIN, filters, dry_run=False, force=True)
    assert forced["job_ids"] == [waiting]
    assert (await job(rt, waiting))["status"] == "RETRY_SCHEDULED"


async def test_nul_characters_are_dropped_not_fatal(rt: Runtime) -> None:
    [job_id] = await schedule_jobs(rt, 1)
    [row] = await mark_in_progress(rt, [job_id])
    value = result_value(
        row,
        {
            "outcome": "permanent_error",
            "error_message": "bad\x00byte",
            "provider_response": {"detail": "x\x00y"},
        },
    )
    report = await ResultsConsumer(rt).apply([orjson.dumps(value)])
    assert report.decisions == {"dead_letter": 1}
    [attempt] = await attempt_rows(rt, job_id)
    assert attempt["error_message"] == "badbyte"


async def test_pruning_drops_old_responses_dead_letters_and_idempotency_keys(
    rt: Runtime,
) -> None:
    [old_job, new_job] = await schedule_jobs(rt, 2)
    await mark_in_progress(rt, [old_job, new_job])
    long_ago = now_utc() - timedelta(days=rt.settings.retention_days + 1)
    for job_id, finished in ((old_job, long_ago), (new_job, now_utc())):
        await rt.db.execute(
            "INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome,"
            " provider_response) VALUES (%s, 1, 'w', %s, %s, 'permanent_error', '{\"a\": 1}')",
            (job_id, finished, finished),
        )
        await rt.db.execute(
            "INSERT INTO dead_letters (id, job_id, reason, created_at) VALUES"
            " (gen_random_uuid(), %s, 'permanent_error', %s)",
            (job_id, finished),
        )
    for key, created in (("old", now_utc() - timedelta(days=31)), ("new", now_utc())):
        await rt.db.execute(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash, post_id, job_ids,"
            " multi, created_at) VALUES ('default', %s, 'h', gen_random_uuid(), '{}', false, %s)",
            (key, created),
        )
    counts = await prune_once(rt)
    assert counts == {"attempt_responses": 1, "dead_letters": 1, "idempotency_keys": 1}
    kept = await rt.db.fetch("SELECT job_id, provider_response FROM attempts ORDER BY job_id")
    assert {str(r["job_id"]): r["provider_response"] for r in kept} == {
        old_job: None,
        new_job: {"a": 1},
    }
    assert [str(r["job_id"]) for r in await rt.db.fetch("SELECT job_id FROM dead_letters")] == [
        new_job
    ]
    assert [r["key"] for r in await rt.db.fetch("SELECT key FROM idempotency_keys")] == ["new"]
    assert await prune_once(rt) == {
        "attempt_responses": 0,
        "dead_letters": 0,
        "idempotency_keys": 0,
    }
