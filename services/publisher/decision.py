"""What to do with one request, given what Postgres knows about its job (pure: no I/O).

The claim step (`claims.py`) locks the job row and reads the job, its connection, its claims
and its attempt rows in one transaction, then asks `decide` per request:

1. unknown job → dead letter (`invalid_message`);
2. `CANCELLED` → skip: no result, no call;
3. this (job, attempt) already has a stored result → re-emit it unchanged;
4. a live claim of another worker → wait for it (it answers, or its lease runs out);
5. the job is `PUBLISHED`, or an earlier attempt or claim answered `published` → a
   `published` result for this attempt with the stored provider ids, no call;
6. past the publish deadline (and not a check-only request) → `missed`, no call; but a job
   with a stored container, or whose attempt was claimed before (its worker may have
   posted before it died), is read first (`deadline_read`: the platform's `confirm`, whose
   answer `deadline_outcome` turns into `published`, `missed` or `unconfirmed`);
7. the connection is missing or disabled → `permanent_error`; `needs_reauth` →
   `auth_error`; an unknown platform → `permanent_error` (no call in each case; each says
   the post may be live when an earlier call may have posted);
8. otherwise call the platform, with the stored container id, whether the irreversible call
   was sent for it without a settled outcome (`publish_sent`), whether the last finished
   attempt was `ambiguous`, and whether this attempt was claimed before (its claim row
   exists without a result: the worker that held it crashed or lost its lease, maybe after
   its call went through, so the platform must look before it posts).

Results decided here (5, 6, 7) are stored with the claim in the same transaction, so every
delivery of the request answers the same.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import PublishRequest
from herald.shared.messages.codec import instant_or_none, iso
from herald.shared.messages.result import result_value


@dataclass(frozen=True)
class JobState:
    job_id: str
    status: str
    publish_deadline: datetime
    container_id: str | None
    published_at: datetime | None
    provider_ids: dict[str, str]
    connection_status: str | None  # None: the connection row does not exist
    publish_sent: bool = False  # the irreversible call was sent for `container_id`
    child_container_ids: str | None = None  # a carousel's items, comma-separated
    # The results service's note on the job (`last_error.may_be_live`): an earlier attempt
    # may have posted and nothing has settled it since, whatever answers came after it
    # (a `rate_limited` or `processing` wait keeps it).
    may_be_live: bool = False


@dataclass(frozen=True)
class ClaimRow:
    job_id: str
    attempt: int
    worker: str
    expired: bool
    lease_until: datetime
    result: dict[str, Any] | None


@dataclass(frozen=True)
class AttemptRow:
    job_id: str
    attempt: int
    outcome: str
    provider_ids: dict[str, str]
    finished_at: datetime | None


class Kind(StrEnum):
    UNKNOWN_JOB = "unknown_job"
    CANCELLED = "cancelled"
    REEMIT = "reemit"  # a stored result, emitted unchanged
    HELD = "held"  # another live worker holds the claim
    ANSWER = "answer"  # a result decided without a call (stored with the claim)
    CALL = "call"  # claimed: call the platform


@dataclass(frozen=True)
class Decision:
    kind: Kind
    result: dict[str, Any] | None = None
    claim: bool = False  # write the claim row (insert, take over, or refresh our own)
    lease_until: datetime | None = None
    stored_container_id: str | None = None
    stored_children: tuple[str, ...] = ()
    publish_sent: bool = False
    previous_ambiguous: bool = False
    deadline_read: bool = False  # past the deadline: only read whether the post is live
    claimed_before: bool = False
    notes: dict[str, Any] = field(default_factory=dict)


def decide(
    req: PublishRequest,
    job: JobState | None,
    claims: Iterable[ClaimRow],
    attempts: Iterable[AttemptRow],
    *,
    worker: str,
    now: datetime,
    platforms: Container[str],
) -> Decision:
    if job is None:
        return Decision(Kind.UNKNOWN_JOB)
    if job.status == JobStatus.CANCELLED:
        return Decision(Kind.CANCELLED)
    claims = list(claims)
    attempts = list(attempts)
    mine = next((c for c in claims if c.attempt == req.attempt), None)
    if mine is not None and mine.result is not None:
        return Decision(Kind.REEMIT, result=mine.result)

    def answer(outcome: PublishOutcome, **notes: Any) -> Decision:
        value = result_value(req, outcome, worker=worker, started_at=now, finished_at=now)
        return Decision(Kind.ANSWER, result=value, claim=True, notes=notes)

    if mine is not None and mine.worker != worker and not mine.expired:
        return Decision(Kind.HELD, lease_until=mine.lease_until)
    earlier = _earlier_success(job, claims, attempts, req.attempt)
    if earlier is not None:
        return answer(earlier, reason="already published")
    late = not req.check_only and job.publish_deadline <= now
    if late and not job.container_id and mine is None:
        message = f"past the publish deadline {iso(job.publish_deadline)}; not posted"
        return answer(PublishOutcome(Outcome.MISSED, error_message=message))
    previous_ambiguous = (
        job.may_be_live or _last_outcome(claims, attempts, req.attempt) == Outcome.AMBIGUOUS
    )
    refused = _refused(req, job, platforms)
    if refused is not None:
        # No call settles the doubt an earlier call left (a claim taken over, a "sent"
        # stamp): the answer keeps it, so that a job waiting for a new sign-in is never
        # ended `missed` without a read, and one ended for its connection is retried only
        # with `force`, looking before it posts.
        if previous_ambiguous or mine is not None or job.publish_sent:
            refused = replace(refused, may_be_live=True)
        return answer(refused)
    return Decision(
        Kind.CALL,
        claim=True,
        stored_container_id=job.container_id,
        stored_children=tuple(c for c in (job.child_container_ids or "").split(",") if c),
        publish_sent=job.publish_sent,
        previous_ambiguous=previous_ambiguous,
        deadline_read=late,
        claimed_before=mine is not None,
    )


def deadline_outcome(read: PublishOutcome, sent: bool) -> PublishOutcome:
    """The answer for a job past its deadline, from the platform's read (`confirm`); `sent`
    says whether the post may have been sent (the "sent" stamp of its container, or a
    claim taken over on a platform that posts in one call): live → `published`; shown not
    live, or never sent → `missed`; unknown after a send → `unconfirmed`; a throttled read
    stays `rate_limited` (the results service then reads again or ends the job, never as
    `missed` while the post may be live)."""
    if read.outcome is Outcome.PUBLISHED:
        return read
    if read.outcome is Outcome.RATE_LIMITED:  # no read made: the doubt it came with stays
        return replace(read, may_be_live=sent or read.may_be_live)
    if read.outcome is Outcome.UNCONFIRMED and sent:
        return read
    why = read.error_message or "the post is not live"
    message = f"past the publish deadline; not posted ({why})"
    return PublishOutcome(
        Outcome.MISSED,
        error_message=message,
        provider_ids=read.provider_ids,
        provider_response=read.provider_response,
    )


def failed_call_outcome(
    req: PublishRequest,
    decision: Decision,
    exc: Exception,
    *,
    may_be_live: bool,
    container_id: str | None,
) -> PublishOutcome:
    """The outcome of a platform call that raised or timed out with nothing settled: a
    read answers `unconfirmed`, a call that may have posted `ambiguous` (the results
    service settles it with a read), any other `retryable_error`."""
    what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    read_only = req.check_only or decision.deadline_read
    if read_only or may_be_live:
        return PublishOutcome(
            Outcome.UNCONFIRMED if read_only else Outcome.AMBIGUOUS,
            error_message=f"the platform call failed ({what}); the post may be live",
            provider_ids={"container_id": container_id} if container_id else {},
        )
    return PublishOutcome(
        Outcome.RETRYABLE_ERROR,
        error_message=f"the platform call failed ({what}) before anything was posted",
    )


def _earlier_success(
    job: JobState, claims: list[ClaimRow], attempts: list[AttemptRow], attempt: int
) -> PublishOutcome | None:
    claimed = next(
        (
            c.result
            for c in claims
            if c.attempt != attempt and c.result and c.result.get("outcome") == Outcome.PUBLISHED
        ),
        None,
    )
    row = next((a for a in attempts if a.outcome == Outcome.PUBLISHED), None)
    if job.status != JobStatus.PUBLISHED and claimed is None and row is None:
        return None
    ids: dict[str, str] = dict(job.provider_ids or {})
    published_at = job.published_at
    if claimed is not None:
        ids = ids or {str(k): str(v) for k, v in (claimed.get("provider_ids") or {}).items()}
        stamp = claimed.get("published_at")
        if published_at is None and isinstance(stamp, str):
            published_at = instant_or_none(stamp)
    if row is not None:
        ids = ids or dict(row.provider_ids)
        published_at = published_at or row.finished_at
    return PublishOutcome(Outcome.PUBLISHED, provider_ids=ids, published_at=published_at)


def _refused(
    req: PublishRequest, job: JobState, platforms: Container[str]
) -> PublishOutcome | None:
    if job.connection_status is None:
        message = "the connection does not exist"
        return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
    if job.connection_status == "disabled":
        message = "the connection is disabled"
        return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
    if job.connection_status == "needs_reauth":
        message = "the connection needs to be authorised again"
        return PublishOutcome(Outcome.AUTH_ERROR, error_message=message)
    if req.platform not in platforms:
        message = f"no publisher for platform {req.platform!r}"
        return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
    return None


def _last_outcome(claims: list[ClaimRow], attempts: list[AttemptRow], attempt: int) -> str | None:
    """The outcome of the latest finished attempt before `attempt`."""
    best: tuple[int, str] | None = None
    for a in attempts:
        if a.attempt < attempt and (best is None or a.attempt > best[0]):
            best = (a.attempt, a.outcome)
    for c in claims:
        if c.result and c.attempt < attempt and (best is None or c.attempt > best[0]):
            best = (c.attempt, str(c.result.get("outcome")))
    return best[1] if best else None
