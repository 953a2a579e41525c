"""Job statuses and the one place that decides which transitions are allowed."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from herald.shared.errors import Conflict

T = TypeVar("T")


class JobStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    RETRY_SCHEDULED = "RETRY_SCHEDULED"
    PUBLISHED = "PUBLISHED"
    CANCELLED = "CANCELLED"
    DEAD_LETTERED = "DEAD_LETTERED"


TERMINAL = frozenset({JobStatus.PUBLISHED, JobStatus.CANCELLED, JobStatus.DEAD_LETTERED})
WAITING = frozenset({JobStatus.SCHEDULED, JobStatus.RETRY_SCHEDULED})

# A job is dispatched up to this long before its due instant (its batch is claimed once the
# first is half that away), and the publisher that claims it waits for the instant before
# calling the platform: the dispatch, Kafka and the claim (about 10 ms for a lone job) happen
# ahead, so the call is on time (decision 0024).
DISPATCH_LEAD_SECONDS = 0.2


def next_attempt_shown(status: str, next_attempt_at: T | None) -> T | None:
    """The next attempt callers see: only while the job waits for it. An IN_PROGRESS row
    keeps its attempt's due instant for the reconciler (migration 0005)."""
    return next_attempt_at if status in WAITING else None


_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.SCHEDULED: frozenset(
        {JobStatus.IN_PROGRESS, JobStatus.CANCELLED, JobStatus.SCHEDULED, JobStatus.PUBLISHED}
    ),
    JobStatus.IN_PROGRESS: frozenset(
        {
            JobStatus.PUBLISHED,
            JobStatus.RETRY_SCHEDULED,
            JobStatus.DEAD_LETTERED,
            JobStatus.CANCELLED,
            JobStatus.IN_PROGRESS,
        }
    ),
    JobStatus.RETRY_SCHEDULED: frozenset(
        {
            JobStatus.IN_PROGRESS,
            JobStatus.CANCELLED,
            JobStatus.RETRY_SCHEDULED,
            JobStatus.PUBLISHED,
            JobStatus.DEAD_LETTERED,
        }
    ),
    # An operator's retry or redrive; a late `published` result always wins.
    JobStatus.DEAD_LETTERED: frozenset({JobStatus.RETRY_SCHEDULED, JobStatus.PUBLISHED}),
    JobStatus.PUBLISHED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    return new in _ALLOWED[current]


def check_transition(current: JobStatus, new: JobStatus) -> None:
    if not can_transition(current, new):
        raise Conflict(f"a {current.value} job cannot become {new.value}", code="invalid_state")


def allowed_sources(new: JobStatus) -> list[str]:
    """Statuses from which `new` may be reached (for guarded SQL updates)."""
    return [s.value for s, targets in _ALLOWED.items() if new in targets]
