"""The publisher's per-request decision (pure), the sandbox's draw, and the Coalescer."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald.services.publisher.decision import (
    AttemptRow,
    ClaimRow,
    JobState,
    Kind,
    deadline_outcome,
    decide,
)
from herald.services.publisher.platforms.sandbox import draw
from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import PublishRequest
from herald.shared.infra.batching import Coalescer
from herald.shared.messages import codec
from herald.shared.messages.request import decode_request

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
JOB = "0b8f5a52-6c1e-4c55-9a53-5f0c1f3f0001"
ME, OTHER = "publisher-a-1", "publisher-b-2"


def req(attempt: int = 1, *, check_only: bool = False, platform: str = "sandbox") -> PublishRequest:
    return decode_request(
        codec.encode(
            "publish.request",
            {
                "job_id": JOB,
                "tenant_id": "t",
                "post_id": JOB,
                "platform": platform,
                "connection_id": JOB,
                "attempt": attempt,
                "media_asset_ids": ["https://x/a.jpg"],
                "caption": "c",
                "media_type": None,
                "scheduled_at": "2026-03-01T11:00:00Z",
                "due_at": "2026-03-01T11:00:00Z",
                "publish_deadline": "2026-03-03T11:00:00Z",
                "dispatched_at": "2026-03-01T11:59:00Z",
                "trace_id": "tr",
                "check_only": check_only,
            },
        )
    )


def job(**changes: Any) -> JobState:
    base: dict[str, Any] = {
        "job_id": JOB,
        "status": "IN_PROGRESS",
        "publish_deadline": NOW + timedelta(days=1),
        "container_id": None,
        "published_at": None,
        "provider_ids": {},
        "connection_status": "active",
    }
    return JobState(**(base | changes))


def claim(
    attempt: int = 1,
    worker: str = OTHER,
    *,
    expired: bool = False,
    result: dict[str, Any] | None = None,
) -> ClaimRow:
    return ClaimRow(JOB, attempt, worker, expired, NOW + timedelta(seconds=5), result)


def run(
    request: PublishRequest,
    state: JobState | None,
    claims: list[ClaimRow] | None = None,
    attempts: list[AttemptRow] | None = None,
) -> Any:
    return decide(
        request,
        state,
        claims or [],
        attempts or [],
        worker=ME,
        now=NOW,
        platforms={"sandbox", "instagram"},
    )


def test_unknown_and_cancelled_jobs() -> None:
    assert run(req(), None).kind is Kind.UNKNOWN_JOB
    assert run(req(), job(status="CANCELLED")).kind is Kind.CANCELLED


def test_a_stored_result_is_reemitted_unchanged() -> None:
    stored = {"outcome": "retryable_error", "worker": OTHER}
    d = run(req(), job(), [claim(result=stored)])
    assert d.kind is Kind.REEMIT and d.result is stored and not d.claim


def test_a_live_claim_of_another_worker_is_waited_for() -> None:
    d = run(req(), job(), [claim()])
    assert d.kind is Kind.HELD and d.lease_until is not None and not d.claim


@pytest.mark.parametrize("holder", [claim(expired=True), claim(worker=ME)])
def test_an_expired_or_own_claim_is_taken(holder: ClaimRow) -> None:
    d = run(req(), job(container_id="c-1"), [holder])
    assert d.kind is Kind.CALL and d.claim and d.stored_container_id == "c-1"
    assert d.claimed_before  # its holder may have called already: look before posting


def test_a_fresh_claim_was_not_claimed_before() -> None:
    d = run(req(2), job(), [claim(1, result={"outcome": "retryable_error"})])
    assert d.kind is Kind.CALL and not d.claimed_before and not d.previous_ambiguous


def test_an_earlier_success_answers_published_without_a_call() -> None:
    published = {
        "outcome": "published",
        "provider_ids": {"media_id": "m1"},
        "published_at": "2026-03-01T11:30:00Z",
    }
    d = run(req(2), job(), [claim(1, result=published)])
    assert d.kind is Kind.ANSWER and d.claim and d.result is not None
    assert d.result["outcome"] == "published" and d.result["attempt"] == 2
    assert d.result["provider_ids"] == {"media_id": "m1"}
    assert d.result["published_at"] == "2026-03-01T11:30:00.000000Z"

    row = AttemptRow(JOB, 1, "published", {"sandbox_post_id": "9"}, NOW)
    d = run(req(2), job(), attempts=[row])
    assert d.kind is Kind.ANSWER and d.result is not None
    assert d.result["provider_ids"] == {"sandbox_post_id": "9"}

    d = run(req(3), job(status="PUBLISHED", provider_ids={"media_id": "m7"}, published_at=NOW))
    assert d.kind is Kind.ANSWER and d.result is not None
    assert d.result["provider_ids"] == {"media_id": "m7"}


def test_past_the_deadline_is_missed_unless_only_checking() -> None:
    late = job(publish_deadline=NOW - timedelta(seconds=1))
    d = run(req(), late)
    assert d.kind is Kind.ANSWER and d.result is not None and d.result["outcome"] == "missed"
    assert run(req(check_only=True), late).kind is Kind.CALL


def test_past_the_deadline_a_stored_container_is_read_before_giving_up() -> None:
    late = job(publish_deadline=NOW - timedelta(seconds=1), container_id="c1", publish_sent=True)
    d = run(req(), late)
    assert d.kind is Kind.CALL and d.deadline_read and d.claim
    assert d.stored_container_id == "c1" and d.publish_sent


@pytest.mark.parametrize("holder", [claim(expired=True), claim(worker=ME)])
def test_past_the_deadline_a_claim_taken_over_is_read_before_giving_up(holder: ClaimRow) -> None:
    # Its worker may have posted (in one call, no container) and died before answering:
    # `missed` without a look would say "not posted" of a post that may be live.
    late = job(publish_deadline=NOW - timedelta(seconds=1))
    d = run(req(), late, [holder])
    assert d.kind is Kind.CALL and d.deadline_read and d.claimed_before and d.claim


@pytest.mark.parametrize(
    ("read", "sent", "answer"),
    [
        (Outcome.PUBLISHED, True, Outcome.PUBLISHED),
        (Outcome.RETRYABLE_ERROR, True, Outcome.MISSED),  # the platform shows it is not live
        (Outcome.UNCONFIRMED, True, Outcome.UNCONFIRMED),
        (Outcome.UNCONFIRMED, False, Outcome.MISSED),  # never sent: it cannot be live
        (Outcome.RATE_LIMITED, True, Outcome.RATE_LIMITED),
    ],
)
def test_the_deadline_read_decides_between_published_missed_and_unconfirmed(
    read: Outcome, sent: bool, answer: Outcome
) -> None:
    out = deadline_outcome(PublishOutcome(read, provider_ids={"container_id": "c1"}), sent)
    assert out.outcome is answer and out.provider_ids == {"container_id": "c1"}
    assert out.may_be_live is (answer is Outcome.RATE_LIMITED)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (None, Outcome.PERMANENT_ERROR),
        ("disabled", Outcome.PERMANENT_ERROR),
        ("needs_reauth", Outcome.AUTH_ERROR),
    ],
)
def test_connection_states_answer_without_a_call(status: str | None, outcome: Outcome) -> None:
    d = run(req(), job(connection_status=status))
    assert d.kind is Kind.ANSWER and d.result is not None and d.result["outcome"] == outcome


@pytest.mark.parametrize(
    ("claims", "changes", "doubt"),
    [
        ([], {}, False),
        ([claim(expired=True)], {}, True),  # its worker may have posted, then died
        ([], {"publish_sent": True, "container_id": "c1"}, True),
        ([], {"may_be_live": True}, True),
    ],
)
@pytest.mark.parametrize(
    ("status", "outcome"), [("needs_reauth", "auth_error"), ("disabled", "permanent_error")]
)
def test_a_connection_refused_before_any_call_keeps_the_doubt(
    claims: list[ClaimRow], changes: dict[str, Any], doubt: bool, status: str, outcome: str
) -> None:
    # Answered without it, a takeover's doubt was lost: the attempt after the new sign-in
    # (or a retry once the connection is enabled) posted without looking, or the deadline
    # ended the job `missed` without a read.
    d = run(req(), job(connection_status=status, **changes), claims)
    assert d.kind is Kind.ANSWER and d.result is not None
    assert d.result["outcome"] == outcome and d.result["may_be_live"] is doubt


def test_an_unknown_platform_is_permanent() -> None:
    d = run(req(platform="myspace"), job())
    assert d.kind is Kind.ANSWER and d.result is not None
    assert d.result["outcome"] == "permanent_error"


def test_the_previous_attempt_being_ambiguous_is_passed_on() -> None:
    ambiguous = AttemptRow(JOB, 1, "ambiguous", {}, NOW)
    assert run(req(2), job(), attempts=[ambiguous]).previous_ambiguous
    later = [ambiguous, AttemptRow(JOB, 2, "retryable_error", {}, NOW)]
    assert not run(req(3), job(), attempts=later).previous_ambiguous
    assert run(
        req(3), job(), [claim(2, result={"outcome": "ambiguous"})], attempts=later[:1]
    ).previous_ambiguous


def test_a_throttled_deadline_read_keeps_the_doubt_it_came_with() -> None:
    # A taken-over attempt refused by the rate limit says the post may be live; past the
    # deadline that must not turn into "not live" (the results service would end it missed).
    throttled = PublishOutcome(Outcome.RATE_LIMITED, may_be_live=True)
    assert deadline_outcome(throttled, False).may_be_live
    assert not deadline_outcome(PublishOutcome(Outcome.RATE_LIMITED), False).may_be_live


def test_a_post_that_may_be_live_stays_in_doubt_through_a_wait() -> None:
    # Attempt 1 may have posted; attempt 2 was throttled before any call. The results
    # service keeps its note on the job (`last_error.may_be_live`), and attempt 3 looks before
    # posting: with only the last outcome (`rate_limited`) it would post a second time.
    waited = [AttemptRow(JOB, 1, "ambiguous", {}, NOW), AttemptRow(JOB, 2, "rate_limited", {}, NOW)]
    assert run(req(3), job(may_be_live=True), attempts=waited).previous_ambiguous
    assert not run(req(3), job(), attempts=waited).previous_ambiguous


def test_sandbox_draw_follows_the_rates() -> None:
    rng = random.Random(1)
    assert {draw({}, rng) for _ in range(200)} == {Outcome.PUBLISHED}
    assert {draw({"permanent_rate": 1}, rng) for _ in range(50)} == {Outcome.PERMANENT_ERROR}
    mix = [draw({"retryable_rate": 0.5, "ambiguous_rate": 0.5}, rng) for _ in range(400)]
    assert set(mix) == {Outcome.RETRYABLE_ERROR, Outcome.AMBIGUOUS}


async def test_coalescer_batches_concurrent_callers_and_shares_failures() -> None:
    batches: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0)
        if -1 in items:
            raise ValueError("bad item")
        return [i * 2 for i in items]

    c: Coalescer[int, int] = Coalescer(double, max_batch=4)
    assert await asyncio.gather(*(c.submit(i) for i in range(10))) == [i * 2 for i in range(10)]
    assert [len(b) for b in batches] == [4, 4, 2]
    results = await asyncio.gather(c.submit(1), c.submit(-1), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
