"""A publisher acts only while it holds its claim (real Kafka, Redis, Postgres): a lease
lost in the middle of a call, a claim another worker keeps alive, a result another worker
stored first, a claim taken over before our result was stored, and an attempt taken over
from a worker that died after posting."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from herald.services.publisher.claims import ClaimStore
from herald.services.publisher.platforms.sandbox import SandboxPublisher
from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import PublishRequest
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import now_utc
from herald.shared.messages.result import result_value
from herald.shared.platforms.contract import AttemptContext
from herald.shared.stores import claims
from tests.conftest import Namespace, eventually
from tests.integration.publisher_harness import WORKER, Harness, Logs, Spy, running
from tests.integration.publisher_support import dispatch, sandbox_connection, schedule

pytestmark = pytest.mark.integration
OTHER = "publisher-other-1"


async def _claim_of(rt: Runtime, job: str) -> dict[str, Any]:
    row = await rt.db.fetchone(
        "SELECT worker, result, lease_until > now() AS live FROM publish_claims"
        " WHERE job_id = %s AND attempt = 1",
        (job,),
    )
    assert row is not None
    return row


async def _take_over(rt: Runtime, job: str) -> None:
    """Another worker takes the claim of `job` over, with a live lease of its own."""
    await rt.db.execute(
        "UPDATE publish_claims SET worker = %s, lease_until = now() + interval '1 hour'"
        " WHERE job_id = %s",
        (OTHER, job),
    )


async def _quiet(harness: Harness, produced: int) -> list[dict[str, Any]]:
    """Every result once the request's offset is committed (then a moment for stragglers)."""
    await harness.all_committed(produced)
    await asyncio.sleep(0.5)
    return await harness.results.poll()


async def test_a_lease_lost_in_the_middle_of_a_call_stops_the_attempt(harness: Harness) -> None:
    rt = harness.rt
    [job] = await schedule(rt, [await sandbox_connection(rt)])
    stopped = asyncio.Event()

    async def stall_and_lose_the_claim(request: PublishRequest, ctx: AttemptContext) -> None:
        # This worker stalls; its lease lapses and another worker takes the claim over.
        await _take_over(rt, job)
        try:
            await asyncio.Event().wait()  # the call hangs until something stops it
        except asyncio.CancelledError:
            stopped.set()
            raise

    harness.spy.before = stall_and_lose_the_claim
    harness.send(await dispatch(rt, [job]))

    # The lease renewal (every third of a lease) finds the claim gone and stops the call,
    # long before the attempt's own time limit.
    await eventually(lambda: _logged(harness.logs, "claim renewal found the claim gone"))
    assert stopped.is_set()
    assert await _quiet(harness, 1) == []  # nothing reported: the new holder answers
    assert await harness.posts() == []
    claim = await _claim_of(rt, job)
    assert claim["worker"] == OTHER and claim["result"] is None
    assert not _logged_now(harness.logs, "platform call failed")


async def test_a_claim_another_worker_keeps_alive_is_waited_for_then_left(
    ns: Namespace, logs: Logs
) -> None:
    # Short timings: the wait for another worker's claim is an attempt plus two leases.
    rt = Runtime.build(
        ns.settings(lease_seconds=1.0, call_timeout_seconds=0.5, container_poll_seconds=0.5)
    )
    await rt.open()
    try:
        spy = Spy(SandboxPublisher(rt.db))
        async with running(rt, logs, {"sandbox": spy}, spy) as harness:
            [job] = await schedule(rt, [await sandbox_connection(rt)])
            [request] = await dispatch(rt, [job])
            await rt.db.execute(  # another worker is calling for this attempt right now
                "INSERT INTO publish_claims (job_id, attempt, worker, lease_until)"
                " VALUES (%s, 1, %s, now() + interval '1 hour')",
                (job, OTHER),
            )
            harness.send([request])

            await eventually(
                lambda: _logged(logs, "another worker still holds the claim"), timeout=60
            )
            assert await _quiet(harness, 1) == []
            assert spy.calls == [] and await harness.posts() == []
            claim = await _claim_of(rt, job)
            assert claim["worker"] == OTHER and claim["result"] is None and claim["live"]
    finally:
        await rt.close()


async def test_a_result_another_worker_stored_first_is_adopted(harness: Harness) -> None:
    rt = harness.rt
    [job] = await schedule(rt, [await sandbox_connection(rt)])

    async def taken_over_and_answered(request: PublishRequest, ctx: AttemptContext) -> None:
        # After our post, our lease lapsed; another worker took the claim over, found our
        # post with the status lookup and stored its answer before we could store ours.
        [post] = await harness.posts()
        found = PublishOutcome(
            Outcome.PUBLISHED,
            provider_ids={"sandbox_post_id": str(post["id"])},
            published_at=post["published_at"],
        )
        now = now_utc()
        theirs = result_value(request, found, worker=OTHER, started_at=now, finished_at=now)
        await rt.db.execute(
            "UPDATE publish_claims SET worker = %s, result = %s::jsonb WHERE job_id = %s",
            (OTHER, orjson.dumps(theirs).decode(), job),
        )

    harness.spy.after = taken_over_and_answered
    harness.send(await dispatch(rt, [job]))

    [result] = await harness.results_for(1)
    assert await _quiet(harness, 1) == [result]
    assert result["worker"] == OTHER and result["outcome"] == "published"
    [post] = await harness.posts()
    assert result["provider_ids"] == {"sandbox_post_id": str(post["id"])}
    stored = (await _claim_of(rt, job))["result"]
    assert stored == {k: v for k, v in result.items() if k != "schema_version"}


async def test_a_claim_taken_over_before_the_result_is_stored_reports_nothing(
    harness: Harness,
) -> None:
    rt = harness.rt
    [job] = await schedule(rt, [await sandbox_connection(rt)])

    async def taken_over(request: PublishRequest, ctx: AttemptContext) -> None:
        # After our post, our lease lapsed and another worker took the claim over; it has
        # not answered yet (its status lookup will find our post).
        await _take_over(rt, job)

    harness.spy.after = taken_over
    harness.send(await dispatch(rt, [job]))

    await eventually(lambda: _logged(harness.logs, "claim lost before the result was stored"))
    assert await _quiet(harness, 1) == []
    assert len(await harness.posts()) == 1
    claim = await _claim_of(rt, job)
    assert claim["worker"] == OTHER and claim["result"] is None  # left to its new holder


async def test_an_attempt_taken_over_from_a_dead_worker_looks_before_it_posts(
    harness: Harness,
) -> None:
    rt = harness.rt
    posted, not_posted = await schedule(
        rt, [await sandbox_connection(rt), await sandbox_connection(rt)]
    )
    requests = await dispatch(rt, [posted, not_posted])
    # A worker claimed both, posted the first one and was killed before storing a result.
    for job in (posted, not_posted):
        await rt.db.execute(
            "INSERT INTO publish_claims (job_id, attempt, worker, lease_until)"
            " VALUES (%s, 1, 'publisher-dead-9', now() - interval '1 second')",
            (job,),
        )
    earlier = await rt.db.fetchone(
        "INSERT INTO sandbox_posts (job_id, attempt, connection_id)"
        " SELECT id, 1, connection_id FROM jobs WHERE id = %s RETURNING id",
        (posted,),
    )
    assert earlier is not None
    harness.send(requests)

    results = {r["job_id"]: r for r in await harness.results_for(2)}
    assert {r["outcome"] for r in results.values()} == {"published"}
    assert results[posted]["provider_ids"] == {"sandbox_post_id": str(earlier["id"])}
    assert results[posted]["provider_response"]["already_posted"] is True
    posts = [str(p["job_id"]) for p in await harness.posts()]
    assert sorted(posts) == sorted([posted, not_posted])  # one post each
    assert (await _claim_of(rt, posted))["worker"] == WORKER


async def test_a_taken_over_attempt_the_rate_limit_refuses_says_the_post_may_be_live(
    harness: Harness,
) -> None:
    # The dead worker may have posted; the account's rate limit refuses its successor before
    # any call. That answer keeps the doubt (`may_be_live`): said "not live", the results
    # service retried as if nothing were posted and the next attempt posted without looking.
    rt = harness.rt
    account = await sandbox_connection(rt, rate_per_second=0.001)  # one token, then 1,000 s
    [first] = await schedule(rt, [account], caption="first")
    [taken] = await schedule(rt, [account], caption="taken over")
    requests = {r["job_id"]: r for r in await dispatch(rt, [first, taken])}
    harness.send([requests[first]])
    [spent] = await harness.results_for(1)
    assert spent["outcome"] == "published"  # it took the account's only token
    await rt.db.execute(
        "INSERT INTO publish_claims (job_id, attempt, worker, lease_until)"
        " VALUES (%s, 1, 'publisher-dead-9', now() - interval '1 second')",
        (taken,),
    )
    harness.send([requests[taken]])
    [refused] = [r for r in await harness.results_for(2) if r["job_id"] == taken]
    assert refused["outcome"] == "rate_limited"
    assert refused["may_be_live"] is True
    assert [str(p["job_id"]) for p in await harness.posts()] == [first]  # no call was made


async def test_a_fresh_claim_posts_without_another_statement(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A claim taken moments ago is still ours (only a lapsed lease lets another worker take
    # it over), and a sandbox post has no container to stamp "sent" on: no statement stands
    # between the claim and the post.
    rt = harness.rt
    jobs = await schedule(rt, [await sandbox_connection(rt), await sandbox_connection(rt)])
    checks: list[tuple[str, bool]] = []
    real_hold = ClaimStore.hold

    async def hold(self: ClaimStore, job_id: str, attempt: int, *a: Any, **kw: Any) -> bool:
        checks.append((job_id, bool(kw.get("publishing"))))
        return await real_hold(self, job_id, attempt, *a, **kw)

    monkeypatch.setattr(ClaimStore, "hold", hold)
    harness.send(await dispatch(rt, jobs))
    results = await harness.results_for(2)
    assert {r["outcome"] for r in results} == {"published"}
    assert sorted(str(p["job_id"]) for p in await harness.posts()) == sorted(jobs)
    assert checks == []


async def test_a_claim_older_than_a_third_of_its_lease_is_checked_before_the_post(
    harness: Harness,
) -> None:
    rt = harness.rt
    [job] = await schedule(rt, [await sandbox_connection(rt)])
    stalled = rt.settings.lease_seconds / 3 + 0.3

    async def stall_then_lose_the_claim(request: PublishRequest, ctx: AttemptContext) -> None:
        # This worker stalls past a third of its lease; meanwhile (as if the lease had run
        # out) another worker takes the claim over. The post must not go out.
        await asyncio.sleep(stalled)
        await _take_over(rt, job)

    harness.spy.before = stall_then_lose_the_claim
    harness.send(await dispatch(rt, [job]))

    await harness.all_committed(1)
    assert await _quiet(harness, 1) == []
    assert await harness.posts() == []
    claim = await _claim_of(rt, job)
    assert claim["worker"] == OTHER and claim["result"] is None  # left to its new holder


async def _logged(logs: Logs, text: str) -> bool:
    return _logged_now(logs, text)


def _logged_now(logs: Logs, text: str) -> bool:
    return any(text in line for line in logs.lines)


async def test_a_lease_renewal_and_a_batch_of_results_over_the_same_claims_never_deadlock(
    rt: Runtime,
) -> None:
    """A renewal and a batch of results that both write claims a and b, each listing them in
    its own order, while a is locked by a third session: each locks in key order, so the
    second to come waits for a without holding b. (Before, the results locked b, the
    renewal then got a and waited for b: a deadlock that Postgres broke after a second by
    aborting one of them.)"""
    a, b = sorted(str(uuid.uuid4()) for _ in range(2))
    await rt.db.execute(
        "INSERT INTO publish_claims (job_id, attempt, worker, lease_until)"
        " VALUES (%s, 1, %s, now() + interval '1 min'), (%s, 1, %s, now() + interval '1 min')",
        (a, WORKER, b, WORKER),
    )

    async def waiting(sessions: int) -> bool:
        row = await rt.db.fetchone(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%%publish_claims%%' AND datname = current_database()"
        )
        return row is not None and row["n"] >= sessions

    async def store_results() -> set[tuple[str, int]]:
        async with rt.db.transaction() as conn:
            answers = claims.rows([(b, 1, {"outcome": "published"}), (a, 1, {"outcome": "x"})])
            return await claims.store_results(conn, WORKER, answers)

    async with rt.db.transaction() as third:
        await third.execute("SELECT 1 FROM publish_claims WHERE job_id = %s FOR UPDATE", (a,))
        renewal = asyncio.create_task(claims.renew(rt.db, WORKER, 60.0, [(a, 1), (b, 1)]))
        await eventually(lambda: waiting(1), timeout=10)
        storing = asyncio.create_task(store_results())
        await eventually(lambda: waiting(2), timeout=10)
    renewed, stored = await asyncio.gather(renewal, storing)
    assert renewed == stored == {(a, 1), (b, 1)}
    done = await rt.db.fetch(
        "SELECT result FROM publish_claims WHERE job_id = ANY(%s::uuid[])", ([a, b],)
    )
    assert all(r["result"] is not None for r in done)
