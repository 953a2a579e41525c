"""Attempt outcomes and dead-letter reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PUBLISHED = "published"
    RETRYABLE_ERROR = "retryable_error"
    RATE_LIMITED = "rate_limited"
    # The platform is still processing the stored media: re-checked later, no attempt spent.
    PROCESSING = "processing"
    PERMANENT_ERROR = "permanent_error"
    AUTH_ERROR = "auth_error"
    BLOCKED = "blocked"
    AMBIGUOUS = "ambiguous"
    UNCONFIRMED = "unconfirmed"
    MISSED = "missed"


# `last_error.code` of a job held while its connection needs a new token (and the reason of
# the status event that holds it): the job waits, RETRY_SCHEDULED, without spending its
# failure budget, until a new token releases it or its deadline passes.
NEEDS_REAUTH = "needs_reauth"
# The status event's reason when a new token releases held jobs.
REAUTHORISED = "reauthorised"


class DeadLetterReason(StrEnum):
    PERMANENT_ERROR = "permanent_error"
    AUTH_ERROR = "auth_error"  # no longer given: an auth failure holds its job (NEEDS_REAUTH)
    BLOCKED = "blocked"
    EXHAUSTED = "exhausted"
    MISSED = "missed"
    UNCONFIRMED = "unconfirmed"
    UNREADABLE_RESULT = "unreadable_result"  # the publisher's result could not be read
    INVALID_MESSAGE = "invalid_message"


# The answers after which the job is tried again (a wait, a new token, a transient error):
# an attempt that had reason to doubt (an earlier call may have posted) and answers one of
# them without settling that doubt says so (`PublishOutcome.may_be_live`), so that the next
# attempt looks before it posts and the deadline reads before it ends the job `missed`.
TRIED_AGAIN = frozenset(
    {Outcome.RATE_LIMITED, Outcome.PROCESSING, Outcome.AUTH_ERROR, Outcome.RETRYABLE_ERROR}
)

# The post may be live: retried or redriven only with `force`, after a status read.
MAY_BE_LIVE = frozenset({DeadLetterReason.UNCONFIRMED, DeadLetterReason.UNREADABLE_RESULT})


@dataclass(frozen=True)
class PublishOutcome:
    """What a platform publisher answers for one attempt."""

    outcome: Outcome
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str | None = None
    retry_after_seconds: float | None = None
    provider_ids: dict[str, str] = field(default_factory=dict)
    provider_response: dict[str, Any] | None = None
    published_at: datetime | None = None
    # The post may be live (an earlier irreversible call's outcome is still unknown), although
    # this outcome is a wait (`rate_limited`, `processing`): the job must not end `missed`.
    may_be_live: bool = False
