"""The contract between the publisher and a platform client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from herald.shared.domain.outcomes import PublishOutcome
from herald.shared.domain.requests import Connection, PublishRequest


class ClaimLost(Exception):
    """This worker no longer holds the claim of its (job, attempt): its lease ran out and
    another worker may be working on it. The attempt stops at once and reports nothing."""


@dataclass
class AttemptContext:
    """What an attempt knows beyond the request, and how it records provider state durably.

    `stored_container_id` is the container an earlier attempt of this job created (read from
    Postgres); `remember_container` stores a new one durably as soon as it exists, so a later
    attempt checks it instead of creating another or posting again. `publish_sent` is true
    when the irreversible call was sent for the stored container and nothing settled its
    outcome since (the post may be live). `stored_children` and `remember_children` do the
    same for a carousel's items. `previous_outcome_ambiguous` is true when the last finished
    attempt's outcome is unknown, or an earlier one's was and only waits came since (the
    job's `last_error.may_be_live`: a `rate_limited` answer does not settle it).
    `claimed_before` is true when this very attempt was claimed earlier and left without a
    result (its worker crashed or lost its lease, perhaps after its call went through).
    A platform without a stored container must look the post up before posting in either
    case (the sandbox does: see its module).

    A worker acts only while it holds its claim: `remember_container` stores the container
    in the same statement that checks the claim (and extends its lease), and
    `confirm_claim` checks it right before an irreversible call (`media_publish`, a
    sandbox post), recording durably that the call is being sent. Both raise `ClaimLost`
    when the claim is gone. (A job without a container whose claim is less than a third of
    a lease old has nothing to record and is still this worker's: `confirm_claim` then
    returns at once, without a statement.)

    `settle` makes an outcome final as soon as it is known (Instagram: `media_publish`
    answered with a media id): whatever happens to the attempt afterwards (a slow read, the
    attempt's timeout), the worker reports that outcome.
    """

    worker: str
    stored_container_id: str | None
    previous_outcome_ambiguous: bool
    remember_container: Callable[[str], Awaitable[None]]
    confirm_claim: Callable[[], Awaitable[None]]
    poll_seconds: float
    call_timeout_seconds: float
    publish_sent: bool = False
    claimed_before: bool = False
    stored_children: tuple[str, ...] = ()
    remember_children: Callable[[Sequence[str]], Awaitable[None]] | None = None
    settled: PublishOutcome | None = None

    @property
    def may_be_live(self) -> bool:
        """An earlier call for this job may have posted: look before posting, and say so in
        any answer given without a call (a `rate_limited` wait), so that the next attempt
        looks too."""
        return self.previous_outcome_ambiguous or self.claimed_before or self.publish_sent

    def settle(self, outcome: PublishOutcome) -> None:
        self.settled = outcome


class PlatformPublisher(Protocol):
    name: str
    # True when a post can be live without a container stored first (one call posts): a
    # failed call then counts as `ambiguous`, never `retryable_error`.
    posts_without_container: bool

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome: ...

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        """Only read whether the post is live: PUBLISHED → `published`, else `unconfirmed`.
        Never publishes (used when the failure budget ends on an ambiguous outcome)."""
        ...

    async def close(self) -> None: ...
