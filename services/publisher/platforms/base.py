"""The contract between the publisher and a platform client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from shared.domain.outcomes import PublishOutcome
from shared.domain.requests import Connection, PublishRequest


@dataclass
class AttemptContext:
    """What an attempt knows beyond the request, and how it records provider state durably.

    `stored_container_id` is the container an earlier attempt of this job created (read from
    Postgres); `remember_container` stores a new one durably *before* `media_publish` is
    called, so a later attempt can check it instead of posting again.
    `previous_outcome_ambiguous` is true when the last finished attempt's outcome is unknown.
    """

    worker: str
    stored_container_id: str | None
    previous_outcome_ambiguous: bool
    remember_container: Callable[[str], Awaitable[None]]
    poll_seconds: float
    call_timeout_seconds: float


class PlatformPublisher(Protocol):
    name: str

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
