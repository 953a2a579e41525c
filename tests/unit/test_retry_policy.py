"""The retry policy, pure: every (state, outcome) pair and the backoff bounds."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from herald.services.results.policy import (
    STATUS_CHECK,
    Action,
    AttemptResult,
    JobState,
    PolicyConfig,
    backoff_ceiling,
    backoff_delay,
    decide,
)
from herald.shared.domain.jobs import JobStatus, can_transition
from herald.shared.domain.outcomes import NEEDS_REAUTH, DeadLetterReason, Outcome

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CONFIG = PolicyConfig(max_attempts=5, backoff_base_seconds=2.0, backoff_max_seconds=60.0)


def job(**changes: object) -> JobState:
    base = JobState(
        status=JobStatus.IN_PROGRESS,
        attempt_count=1,
        failed_attempts=0,
        publish_deadline=T0 + timedelta(days=2),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def result(outcome: Outcome, attempt: int = 1, retry_after: float | None = None) -> AttemptResult:
    return AttemptResult(attempt, outcome, T0, retry_after)


def top() -> float:
    return 0.999999


# ---- backoff -------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_from_the_base_and_stops_at_the_cap() -> None:
    assert [backoff_ceiling(n, CONFIG) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff_ceiling(10_000, CONFIG) == 60  # no overflow


def test_backoff_is_full_jitter_within_zero_and_the_ceiling() -> None:
    rng = random.Random(7)
    for n in range(1, 12):
        delays = [backoff_delay(n, CONFIG, rng.random) for _ in range(2000)]
        ceiling = backoff_ceiling(n, CONFIG)
        assert all(0 <= d <= ceiling for d in delays)
        # Full jitter spreads over the whole range, not just near the ceiling.
        assert min(delays) < ceiling * 0.05 and max(delays) > ceiling * 0.95
    assert backoff_delay(3, CONFIG, lambda: 0.0) == 0.0


# ---- retryable and ambiguous -----------------------------------------------------------------


@pytest.mark.parametrize("outcome", [Outcome.RETRYABLE_ERROR, Outcome.AMBIGUOUS])
def test_a_failure_within_the_budget_is_retried_after_a_jittered_backoff(outcome: Outcome) -> None:
    state = job(attempt_count=3, failed_attempts=2)
    d = decide(state, result(outcome, attempt=3), CONFIG, lambda: 0.5)
    assert d.action is Action.RETRY and d.state.status is JobStatus.RETRY_SCHEDULED
    assert d.state.failed_attempts == 3
    assert d.state.next_attempt_at == T0 + timedelta(seconds=4.0)  # 0.5 * min(60, 2 * 2^2)
    assert d.reason == outcome.value and not d.state.check_only
    assert d.state.may_be_live is (outcome is Outcome.AMBIGUOUS)


def test_a_retryable_error_that_may_follow_a_post_keeps_the_doubt() -> None:
    # An attempt in doubt read nothing conclusive and failed before settling it (the X or
    # LinkedIn read-back, say): dropping the note let the next attempt post without a look.
    in_doubt = replace(result(Outcome.RETRYABLE_ERROR, attempt=3), may_be_live=True)
    d = decide(job(attempt_count=3, failed_attempts=2), in_doubt, CONFIG, lambda: 0.5)
    assert d.action is Action.RETRY and d.state.may_be_live and d.state.failed_attempts == 3
    spent = decide(job(attempt_count=5, failed_attempts=4), replace(in_doubt, attempt=5), CONFIG)
    assert spent.action is Action.RETRY and spent.state.check_only  # read, never `exhausted`


def test_a_final_answer_that_may_follow_a_post_needs_force() -> None:
    # A connection disabled while the post of a job taken over may be live: the dead letter
    # keeps the note, so only a forced retry (which looks first) brings it back.
    final = replace(result(Outcome.PERMANENT_ERROR), may_be_live=True)
    d = decide(job(), final, CONFIG)
    assert d.dead_letter is DeadLetterReason.PERMANENT_ERROR
    assert d.state.may_be_live and d.state.force_required
    plain = decide(job(), result(Outcome.PERMANENT_ERROR), CONFIG)
    assert not plain.state.may_be_live and not plain.state.force_required


def test_a_platform_retry_after_is_honoured_even_above_the_cap() -> None:
    d = decide(job(), result(Outcome.RETRYABLE_ERROR, retry_after=3600), CONFIG, top)
    assert d.state.next_attempt_at == T0 + timedelta(seconds=3600)


def test_retryable_error_ending_the_budget_is_exhausted() -> None:
    state = job(attempt_count=5, failed_attempts=4)
    d = decide(state, result(Outcome.RETRYABLE_ERROR, attempt=5), CONFIG)
    assert d.action is Action.DEAD_LETTER and d.dead_letter is DeadLetterReason.EXHAUSTED
    assert d.state.status is JobStatus.DEAD_LETTERED and d.state.failed_attempts == 5
    assert d.state.next_attempt_at is None and not d.state.force_required


def test_ambiguous_ending_the_budget_schedules_one_status_read_never_exhausted() -> None:
    state = job(attempt_count=5, failed_attempts=4)
    d = decide(state, result(Outcome.AMBIGUOUS, attempt=5), CONFIG)
    assert d.action is Action.RETRY and d.dead_letter is None
    assert d.state.status is JobStatus.RETRY_SCHEDULED and d.state.check_only
    assert d.state.next_attempt_at == T0  # due at once
    assert d.reason == STATUS_CHECK


def test_the_status_read_answers_published_or_unconfirmed() -> None:
    reading = job(attempt_count=6, failed_attempts=5, check_only=True, may_be_live=True)
    live = decide(reading, result(Outcome.PUBLISHED, attempt=6), CONFIG)
    assert live.action is Action.PUBLISH and not live.state.check_only
    unknown = decide(reading, result(Outcome.UNCONFIRMED, attempt=6), CONFIG)
    assert unknown.dead_letter is DeadLetterReason.UNCONFIRMED
    assert unknown.state.force_required and not unknown.state.check_only


def test_a_status_read_that_shows_no_post_is_exhausted_or_missed() -> None:
    # `retryable_error` from a status read: the platform shows the post is not live.
    reading = job(attempt_count=6, failed_attempts=5, check_only=True, may_be_live=True)
    spent = decide(reading, result(Outcome.RETRYABLE_ERROR, attempt=6), CONFIG)
    assert spent.dead_letter is DeadLetterReason.EXHAUSTED and not spent.state.force_required
    assert not spent.state.may_be_live
    for_the_deadline = replace(reading, failed_attempts=2)
    late = decide(for_the_deadline, result(Outcome.RETRYABLE_ERROR, attempt=6), CONFIG)
    assert late.dead_letter is DeadLetterReason.MISSED


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.AMBIGUOUS,
        Outcome.PERMANENT_ERROR,
        Outcome.MISSED,
        Outcome.BLOCKED,
        Outcome.AUTH_ERROR,
        Outcome.PROCESSING,
    ],
)
def test_any_other_answer_to_a_status_read_is_unconfirmed(outcome: Outcome) -> None:
    reading = job(attempt_count=6, failed_attempts=5, check_only=True, may_be_live=True)
    d = decide(reading, result(outcome, attempt=6), CONFIG)
    assert d.dead_letter is DeadLetterReason.UNCONFIRMED and d.state.force_required


def test_a_rate_limited_status_read_is_repeated_within_the_deadline() -> None:
    reading = job(attempt_count=6, failed_attempts=5, check_only=True, may_be_live=True)
    d = decide(reading, result(Outcome.RATE_LIMITED, attempt=6, retry_after=30), CONFIG)
    assert d.action is Action.RETRY and d.state.check_only
    assert d.state.next_attempt_at == T0 + timedelta(seconds=30)
    late = replace(reading, publish_deadline=T0 + timedelta(seconds=10))
    d = decide(late, result(Outcome.RATE_LIMITED, attempt=6, retry_after=30), CONFIG)
    assert d.dead_letter is DeadLetterReason.UNCONFIRMED


def test_an_ambiguous_retry_that_would_fall_after_the_deadline_reads_the_status_now() -> None:
    state = job(publish_deadline=T0 + timedelta(seconds=1))
    d = decide(state, result(Outcome.AMBIGUOUS, retry_after=5), CONFIG)
    assert d.action is Action.RETRY and d.state.check_only and d.state.next_attempt_at == T0


def test_a_retryable_retry_after_the_deadline_is_still_scheduled() -> None:
    # The publisher answers `missed` for it without calling the platform (DESIGN.md).
    state = job(publish_deadline=T0 + timedelta(seconds=1))
    d = decide(state, result(Outcome.RETRYABLE_ERROR, retry_after=5), CONFIG)
    assert d.action is Action.RETRY and not d.state.check_only


# ---- rate limits ----------------------------------------------------------------------------


def test_rate_limited_requeues_without_using_the_budget() -> None:
    state = job(attempt_count=9, failed_attempts=4)
    d = decide(state, result(Outcome.RATE_LIMITED, attempt=9, retry_after=120), CONFIG)
    assert d.action is Action.RETRY and d.state.failed_attempts == 4
    assert d.state.next_attempt_at == T0 + timedelta(seconds=120)
    assert d.reason == "rate_limited"


def test_rate_limited_without_retry_after_backs_off_within_the_cap() -> None:
    d = decide(job(attempt_count=3), result(Outcome.RATE_LIMITED, attempt=3), CONFIG, top)
    assert d.state.next_attempt_at is not None
    assert T0 <= d.state.next_attempt_at <= T0 + timedelta(seconds=8)


def test_rate_limited_past_the_deadline_is_missed() -> None:
    state = job(publish_deadline=T0 + timedelta(seconds=60))
    d = decide(state, result(Outcome.RATE_LIMITED, retry_after=61), CONFIG)
    assert d.action is Action.DEAD_LETTER and d.dead_letter is DeadLetterReason.MISSED
    on_time = decide(state, result(Outcome.RATE_LIMITED, retry_after=60), CONFIG)
    assert on_time.action is Action.RETRY


def test_a_post_that_may_be_live_is_never_missed_it_is_read_instead() -> None:
    state = job(
        attempt_count=2,
        failed_attempts=1,
        may_be_live=True,
        publish_deadline=T0 + timedelta(seconds=60),
    )
    limited = decide(state, result(Outcome.RATE_LIMITED, attempt=2, retry_after=600), CONFIG)
    assert limited.action is Action.RETRY and limited.state.check_only
    missed = decide(state, result(Outcome.MISSED, attempt=2), CONFIG)
    assert missed.action is Action.RETRY and missed.state.check_only
    # ...and a rate limit keeps the doubt for the next attempt.
    ok = decide(state, result(Outcome.RATE_LIMITED, attempt=2, retry_after=1), CONFIG)
    assert ok.state.may_be_live and not ok.state.check_only


def test_a_wait_that_says_the_post_may_be_live_is_read_not_missed() -> None:
    state = job(publish_deadline=T0 + timedelta(seconds=60))
    limited = AttemptResult(1, Outcome.RATE_LIMITED, T0, 600, may_be_live=True)
    d = decide(state, limited, CONFIG)
    assert d.action is Action.RETRY and d.state.check_only and d.state.may_be_live
    on_time = decide(
        state, AttemptResult(1, Outcome.RATE_LIMITED, T0, 30, may_be_live=True), CONFIG
    )
    assert on_time.state.may_be_live and not on_time.state.check_only  # kept for later


# ---- processing ---------------------------------------------------------------------------------


def test_processing_is_rechecked_at_most_a_minute_later_without_using_the_budget() -> None:
    state = job(attempt_count=9, failed_attempts=4)
    d = decide(state, result(Outcome.PROCESSING, attempt=9), CONFIG, top)
    assert d.action is Action.RETRY and d.state.status is JobStatus.RETRY_SCHEDULED
    assert d.state.failed_attempts == 4 and d.reason == "processing"
    wide = PolicyConfig(max_attempts=5, backoff_base_seconds=2.0, backoff_max_seconds=600.0)
    d = decide(state, result(Outcome.PROCESSING, attempt=9), wide, top)
    assert d.state.next_attempt_at == T0 + timedelta(seconds=60)  # 600 s backoff: capped
    early = decide(job(), result(Outcome.PROCESSING), CONFIG, lambda: 0.5)
    assert early.state.next_attempt_at == T0 + timedelta(seconds=1)  # min(backoff, 60 s)


def test_processing_past_the_deadline_is_missed() -> None:
    state = job(publish_deadline=T0 + timedelta(seconds=10))
    d = decide(state, result(Outcome.PROCESSING, retry_after=30), CONFIG)
    assert d.dead_letter is DeadLetterReason.MISSED


# ---- immediate dead letters -------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.PERMANENT_ERROR,
        Outcome.BLOCKED,
        Outcome.UNCONFIRMED,
        Outcome.MISSED,
    ],
)
def test_final_outcomes_dead_letter_at_once_with_their_reason(outcome: Outcome) -> None:
    d = decide(job(), result(outcome), CONFIG)
    assert d.action is Action.DEAD_LETTER and d.state.status is JobStatus.DEAD_LETTERED
    assert d.dead_letter == DeadLetterReason(outcome.value) and d.reason == outcome.value
    assert d.state.force_required is (outcome is Outcome.UNCONFIRMED)


# ---- an auth failure holds ------------------------------------------------------------------


def test_an_auth_error_holds_the_job_until_its_deadline_without_spending_the_budget() -> None:
    state = job(failed_attempts=2)
    d = decide(state, result(Outcome.AUTH_ERROR), CONFIG)
    assert d.action is Action.RETRY and d.state.status is JobStatus.RETRY_SCHEDULED
    assert d.reason == NEEDS_REAUTH and d.dead_letter is None
    assert d.state.next_attempt_at == state.publish_deadline
    assert d.state.failed_attempts == 2 and not d.state.check_only
    # Held as many times as it takes: the budget never runs out on auth errors.
    for n in range(2, CONFIG.max_attempts + 4):
        dispatched = replace(d.state, status=JobStatus.IN_PROGRESS, attempt_count=n)
        d = decide(dispatched, result(Outcome.AUTH_ERROR, attempt=n), CONFIG)
    assert d.action is Action.RETRY and d.state.failed_attempts == 2


def test_an_auth_error_at_the_deadline_is_missed_or_read_when_the_post_may_be_live() -> None:
    late = job(publish_deadline=T0)
    assert decide(late, result(Outcome.AUTH_ERROR), CONFIG).dead_letter is DeadLetterReason.MISSED
    live = decide(replace(late, may_be_live=True), result(Outcome.AUTH_ERROR), CONFIG)
    assert live.action is Action.RETRY and live.state.check_only


# ---- published wins, stale and terminal ---------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        JobStatus.IN_PROGRESS,
        JobStatus.RETRY_SCHEDULED,
        JobStatus.DEAD_LETTERED,
        JobStatus.SCHEDULED,
    ],
)
def test_published_always_wins_even_from_a_stale_attempt(status: JobStatus) -> None:
    state = job(
        status=status,
        attempt_count=3,
        failed_attempts=2,
        next_attempt_at=T0 + timedelta(seconds=5),
        force_required=True,
    )
    d = decide(state, result(Outcome.PUBLISHED, attempt=1), CONFIG)
    assert d.action is Action.PUBLISH and d.state.status is JobStatus.PUBLISHED
    assert d.state.next_attempt_at is None and not d.state.force_required


@pytest.mark.parametrize("status", [JobStatus.PUBLISHED, JobStatus.CANCELLED])
@pytest.mark.parametrize("outcome", list(Outcome))
def test_terminal_jobs_only_record(status: JobStatus, outcome: Outcome) -> None:
    state = job(status=status)
    d = decide(state, result(outcome), CONFIG)
    assert d.action is Action.RECORD and d.state == state and d.reason == "terminal"


@pytest.mark.parametrize("outcome", [o for o in Outcome if o is not Outcome.PUBLISHED])
def test_a_stale_result_is_recorded_without_moving_the_job(outcome: Outcome) -> None:
    state = job(attempt_count=3, failed_attempts=1)
    d = decide(state, result(outcome, attempt=2), CONFIG)
    assert d.action is Action.RECORD and d.state == state and d.reason == "stale"


@pytest.mark.parametrize("status", [JobStatus.RETRY_SCHEDULED, JobStatus.DEAD_LETTERED])
def test_a_current_result_for_a_job_not_in_progress_moves_nothing(status: JobStatus) -> None:
    state = job(status=status)
    d = decide(state, result(Outcome.RETRYABLE_ERROR), CONFIG)
    assert d.action is Action.RECORD and d.reason == "not_in_progress"


def test_a_result_ahead_of_the_dispatched_attempt_moves_nothing() -> None:
    d = decide(job(attempt_count=1), result(Outcome.PERMANENT_ERROR, attempt=2), CONFIG)
    assert d.action is Action.RECORD and d.reason == "ahead"


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("outcome", list(Outcome))
@pytest.mark.parametrize("check_only", [False, True])
@pytest.mark.parametrize("failed", [0, 4, 5])
def test_every_decision_respects_the_state_machine(
    status: JobStatus, outcome: Outcome, check_only: bool, failed: int
) -> None:
    state = job(status=status, attempt_count=5, failed_attempts=failed, check_only=check_only)
    for attempt in (4, 5, 6):
        d = decide(state, result(outcome, attempt=attempt), CONFIG, random.random)
        if d.action is Action.RECORD:
            assert d.state == state
            continue
        assert can_transition(status, d.state.status)
        assert (d.action is Action.DEAD_LETTER) == (d.dead_letter is not None)
        if d.state.status is JobStatus.RETRY_SCHEDULED:
            assert d.state.next_attempt_at is not None and d.state.next_attempt_at >= T0
        else:
            assert d.state.next_attempt_at is None and not d.state.check_only
        if d.dead_letter is DeadLetterReason.EXHAUSTED:
            assert outcome is Outcome.RETRYABLE_ERROR  # never for a post that may be live
