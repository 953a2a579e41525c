"""An AttemptContext for platform tests without the publisher service: it records what was
stored (containers, children) and when, counted in the fake's irreversible calls, so a test
can assert that a container was stored before the post."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.platforms.contract import AttemptContext, ClaimLost


class Ctx:
    def __init__(
        self,
        posts_sent: Callable[[], int],
        *,
        stored: str | None = None,
        children: tuple[str, ...] = (),
        publish_sent: bool = False,
        ambiguous_before: bool = False,
        claimed_before: bool = False,
        poll_seconds: float = 2.0,
    ) -> None:
        self.posts_sent = posts_sent  # how many irreversible calls the fake received so far
        self.remembered: list[str] = []
        self.remembered_children: list[list[str]] = []
        self.stored_at: list[int] = []  # posts_sent() when each container was stored
        self.confirmed_at: list[int] = []  # posts_sent() at each confirm_claim
        self.claim_lost = False
        self.context = AttemptContext(
            worker="test",
            stored_container_id=stored,
            previous_outcome_ambiguous=ambiguous_before,
            remember_container=self._remember,
            confirm_claim=self._confirm,
            poll_seconds=poll_seconds,
            call_timeout_seconds=2.0,
            publish_sent=publish_sent,
            claimed_before=claimed_before,
            stored_children=children,
            remember_children=self._remember_children,
        )

    def next_attempt(self, *, poll_seconds: float = 2.0) -> Ctx:
        """The context the next attempt gets after this one ended ambiguous: what this one
        stored, and whether its irreversible call was sent."""
        stored = self.remembered[-1] if self.remembered else self.context.stored_container_id
        children = (
            tuple(self.remembered_children[-1])
            if self.remembered_children
            else self.context.stored_children
        )
        return Ctx(
            self.posts_sent,
            stored=stored,
            children=children,
            publish_sent=bool(self.confirmed_at) and stored is not None,
            ambiguous_before=True,
            poll_seconds=poll_seconds,
        )

    async def _confirm(self) -> None:
        if self.claim_lost:
            raise ClaimLost("taken over")
        self.confirmed_at.append(self.posts_sent())

    async def _remember(self, container_id: str) -> None:
        self.stored_at.append(self.posts_sent())
        self.remembered.append(container_id)

    async def _remember_children(self, ids: Sequence[str]) -> None:
        self.stored_at.append(self.posts_sent())
        self.remembered_children.append(list(ids))


def request(
    platform: str,
    assets: list[str],
    *,
    caption: str,
    media_type: str | None = None,
    attempt: int = 1,
) -> PublishRequest:
    now = datetime.now(UTC)
    return PublishRequest(
        job_id="job-1",
        tenant_id="t",
        post_id="p",
        platform=platform,
        connection_id="c",
        attempt=attempt,
        media_asset_ids=assets,
        caption=caption,
        media_type=media_type,
        scheduled_at=now,
        due_at=now,
        publish_deadline=now + timedelta(hours=48),
        trace_id="tr",
    )


def connection(platform: str, token: str, metadata: dict[str, str]) -> Connection:
    return Connection(
        id="c",
        tenant_id="t",
        platform=platform,
        name=platform,
        status="active",
        metadata=metadata,
        access_token=token,
    )
