"""The retry policy: given a job's state and one attempt's result, decide the transition.

Pure: no I/O; randomness comes in as an argument. The one place that knows DESIGN.md's
"Guarantees" about retries, budgets, deadlines and dead letters (see
`docs/decisions/0003-results-and-retry-policy.md`).

- `published` always wins: any job not yet PUBLISHED (or CANCELLED) becomes PUBLISHED.
- Results for PUBLISHED / CANCELLED jobs, stale results (an older attempt) and results for a
  job that is not IN_PROGRESS are recorded but move nothing.
- `retryable_error` / `ambiguous` use the failure budget and come back after a backoff
  (full jitter, capped; a platform's retry-after wins, even above the cap). When the budget
  ends: `exhausted`, except after `ambiguous`, where one last status read (`check_only`)
  decides: published → PUBLISHED, not live (`retryable_error`) → `exhausted` (or `missed`
  when the read was for the deadline), anything else → `unconfirmed`.
- `rate_limited` and `processing` (the platform still processes the stored media) come back
  without using the budget, `processing` every min(backoff, 60 s), unless the retry would
  fall after the publish deadline (then `missed`).
- `auth_error` holds: the connection needs a new token (the publisher marked it
  `needs_reauth`), so the job waits RETRY_SCHEDULED until its publish deadline without
  using the budget (`last_error.code` = `needs_reauth`). A new token releases it at once
  (the connection service); otherwise it is dispatched at its deadline and ends `missed`.
- `permanent_error`, `blocked`, `unconfirmed`, `missed` dead-letter at once.
- A post that may be live (an unresolved `ambiguous`, or a wait whose result says so) is
  never dead-lettered as `missed` or `exhausted`: the status read decides instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from herald.shared.domain.jobs import JobStatus, can_transition
from herald.shared.domain.outcomes import MAY_BE_LIVE, NEEDS_REAUTH, DeadLetterReason, Outcome
from herald.shared.infra.settings import Settings

Rand = Callable[[], float]  # uniform in [0, 1)

STATUS_CHECK = "status_check"  # the publish.status reason of the last status read
PROCESSING_RECHECK_SECONDS = 60.0  # a container still processing is read at least this often


@dataclass(frozen=True)
class PolicyConfig:
    max_attempts: int = 5
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyConfig:
        return cls(
            settings.max_attempts, settings.backoff_base_seconds, settings.backoff_max_seconds
        )


@dataclass(frozen=True)
class JobState:
    """What the policy needs to know about a job (and what it changes)."""

    status: JobStatus
    attempt_count: int
    failed_attempts: int
    publish_deadline: datetime
    next_attempt_at: datetime | None = None
    check_only: bool = False
    force_required: bool = False
    may_be_live: bool = False  # an `ambiguous` outcome not yet resolved by a status read


@dataclass(frozen=True)
class AttemptResult:
    attempt: int
    outcome: Outcome
    finished_at: datetime
    retry_after_seconds: float | None = None
    may_be_live: bool = False  # the publisher says the post may be live (on a wait)


class Action(StrEnum):
    RECORD = "record"  # the attempt is recorded; the job does not move
    PUBLISH = "publish"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Decision:
    action: Action
    state: JobState  # the job after the decision (unchanged for RECORD)
    reason: str | None = None  # the publish.status reason; why nothing moved for RECORD
    dead_letter: DeadLetterReason | None = None

    @property
    def moved(self) -> bool:
        return self.action is not Action.RECORD


def backoff_ceiling(n: int, config: PolicyConfig) -> float:
    """The upper bound of the n-th (1-based) backoff: min(cap, base * 2^(n-1))."""
    exponent = min(max(n, 1) - 1, 64)  # 2^64 * base exceeds any sane cap
    return min(config.backoff_max_seconds, config.backoff_base_seconds * 2.0**exponent)


def backoff_delay(n: int, config: PolicyConfig, rand: Rand = random.random) -> float:
    """Full jitter: uniform in [0, backoff_ceiling(n)]."""
    return backoff_ceiling(n, config) * min(max(rand(), 0.0), 1.0)


def decide(
    job: JobState, result: AttemptResult, config: PolicyConfig, rand: Rand = random.random
) -> Decision:
    """The transition one result causes. Never raises for any (state, outcome) pair."""
    if job.status in (JobStatus.PUBLISHED, JobStatus.CANCELLED):
        return Decision(Action.RECORD, job, "terminal")
    if result.outcome is Outcome.PUBLISHED:
        live = replace(
            job,
            status=JobStatus.PUBLISHED,
            next_attempt_at=None,
            check_only=False,
            force_required=False,
            may_be_live=False,
        )
        return _move(job, Action.PUBLISH, live, Outcome.PUBLISHED.value)
    if result.attempt < job.attempt_count:
        return Decision(Action.RECORD, job, "stale")
    if result.attempt > job.attempt_count:
        return Decision(Action.RECORD, job, "ahead")  # never dispatched: not ours to act on
    if job.status is not JobStatus.IN_PROGRESS:
        return Decision(Action.RECORD, job, "not_in_progress")
    if job.check_only:
        return _after_status_read(job, result, config, rand)
    outcome = result.outcome
    if outcome in (Outcome.RETRYABLE_ERROR, Outcome.AMBIGUOUS):
        return _failed(job, result, config, rand)
    if outcome in (Outcome.RATE_LIMITED, Outcome.PROCESSING):
        return _wait(job, result, config, rand)
    if outcome is Outcome.AUTH_ERROR:
        return _hold(job, result)
    if outcome is Outcome.MISSED and job.may_be_live:
        return _status_read(job, result, job.failed_attempts)
    # permanent_error, blocked, unconfirmed, missed: the reason is the outcome. One given
    # without settling a doubt (the connection refused before any call) says so: the job
    # then keeps the note and needs `force`, as `unconfirmed` does.
    reason = DeadLetterReason(outcome.value)
    return _dead(job, reason, job.failed_attempts + 1, live=result.may_be_live)


def _failed(job: JobState, result: AttemptResult, config: PolicyConfig, rand: Rand) -> Decision:
    failed = job.failed_attempts + 1
    # `ambiguous`, or a `retryable_error` the publisher says may follow a post (an attempt
    # in doubt that failed before it could settle it): the post may be live.
    ambiguous = result.outcome is Outcome.AMBIGUOUS or result.may_be_live
    if failed >= config.max_attempts:
        if ambiguous:
            return _status_read(job, result, failed)
        return _dead(job, DeadLetterReason.EXHAUSTED, failed)
    at = result.finished_at + _delay(result, failed, config, rand)
    if ambiguous and at > job.publish_deadline:
        # That retry would be answered `missed` without a look at the platform; read now.
        return _status_read(job, result, failed)
    later = replace(
        job,
        status=JobStatus.RETRY_SCHEDULED,
        next_attempt_at=at,
        failed_attempts=failed,
        check_only=False,
        may_be_live=ambiguous,
    )
    return _move(job, Action.RETRY, later, result.outcome.value)


def _wait(job: JobState, result: AttemptResult, config: PolicyConfig, rand: Rand) -> Decision:
    """`rate_limited` or `processing`: come back later without using the budget."""
    delay = _delay(result, result.attempt, config, rand)
    if result.outcome is Outcome.PROCESSING:
        delay = min(delay, timedelta(seconds=PROCESSING_RECHECK_SECONDS))
    at = result.finished_at + delay
    job = replace(job, may_be_live=job.may_be_live or result.may_be_live)
    if at > job.publish_deadline:
        if job.may_be_live:
            return _status_read(job, result, job.failed_attempts)
        return _dead(job, DeadLetterReason.MISSED, job.failed_attempts)
    later = replace(job, status=JobStatus.RETRY_SCHEDULED, next_attempt_at=at, check_only=False)
    return _move(job, Action.RETRY, later, result.outcome.value)


def _hold(job: JobState, result: AttemptResult) -> Decision:
    """`auth_error`: wait for a new token until the publish deadline, the budget untouched."""
    if result.finished_at >= job.publish_deadline:
        if job.may_be_live:
            return _status_read(job, result, job.failed_attempts)
        return _dead(job, DeadLetterReason.MISSED, job.failed_attempts)
    held = replace(
        job,
        status=JobStatus.RETRY_SCHEDULED,
        next_attempt_at=job.publish_deadline,
        check_only=False,
        may_be_live=job.may_be_live or result.may_be_live,
    )
    return _move(job, Action.RETRY, held, NEEDS_REAUTH)


def _after_status_read(
    job: JobState, result: AttemptResult, config: PolicyConfig, rand: Rand
) -> Decision:
    """The answer of a `check_only` dispatch (`published` is handled before): a rate limit
    repeats the read (within the deadline); `retryable_error` means the platform shows the
    post is not live: `exhausted` when the budget is spent, else the read was for the
    deadline: `missed`; anything else is `unconfirmed`."""
    if result.outcome is Outcome.RATE_LIMITED:
        at = result.finished_at + _delay(result, result.attempt, config, rand)
        if at <= job.publish_deadline:
            again = replace(job, status=JobStatus.RETRY_SCHEDULED, next_attempt_at=at)
            return _move(job, Action.RETRY, again, STATUS_CHECK)
    if result.outcome is Outcome.RETRYABLE_ERROR:
        spent = job.failed_attempts >= config.max_attempts
        reason = DeadLetterReason.EXHAUSTED if spent else DeadLetterReason.MISSED
        return _dead(job, reason, job.failed_attempts)
    return _dead(job, DeadLetterReason.UNCONFIRMED, job.failed_attempts)


def _status_read(job: JobState, result: AttemptResult, failed: int) -> Decision:
    """One last dispatch that only reads whether the post is live, due at once."""
    read = replace(
        job,
        status=JobStatus.RETRY_SCHEDULED,
        next_attempt_at=result.finished_at,
        failed_attempts=failed,
        check_only=True,
        may_be_live=True,
    )
    return _move(job, Action.RETRY, read, STATUS_CHECK)


def unreadable_result(job: JobState) -> Decision:
    """A result of the job's current attempt that cannot be read (or names another tenant,
    platform or connection than its job): the job is not left waiting for an answer that
    will never come. It is dead-lettered as `unreadable_result`; the post may be live, so
    only a forced retry or redrive (which checks first) brings it back."""
    if job.status is not JobStatus.IN_PROGRESS:
        return Decision(Action.RECORD, job, "not_in_progress")
    return _dead(job, DeadLetterReason.UNREADABLE_RESULT, job.failed_attempts)


def _dead(job: JobState, reason: DeadLetterReason, failed: int, *, live: bool = False) -> Decision:
    live = live or reason in MAY_BE_LIVE
    dead = replace(
        job,
        status=JobStatus.DEAD_LETTERED,
        next_attempt_at=None,
        failed_attempts=failed,
        check_only=False,
        force_required=live,
        may_be_live=live,
    )
    return _move(job, Action.DEAD_LETTER, dead, reason.value, reason)


def _delay(result: AttemptResult, n: int, config: PolicyConfig, rand: Rand) -> timedelta:
    if result.retry_after_seconds is not None:
        return timedelta(seconds=max(result.retry_after_seconds, 0.0))
    return timedelta(seconds=backoff_delay(n, config, rand))


def _move(
    job: JobState,
    action: Action,
    new: JobState,
    reason: str,
    dead_letter: DeadLetterReason | None = None,
) -> Decision:
    if not can_transition(job.status, new.status):  # the state machine has the last word
        return Decision(Action.RECORD, job, "not_allowed")
    return Decision(action, new, reason, dead_letter)
