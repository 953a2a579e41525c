"""Threads publisher: text (with a link), image, video and carousel posts through the
two-step container flow (``/{user}/threads``, then ``/{user}/threads_publish``), within the
publishing quota (``threads_publishing_limit``) and the 500-character text limit.

A connection names its Threads user (metadata ``threadsUserId``) and holds a long-lived
Threads token (60 days; ``threads_tokens`` refreshes it). The host is the configured
``graph_url`` (``https://graph.threads.net/v1.0``); no connection names a URL. One attempt's
flow, and how it never posts twice, is in ``threads_attempt``; the error table in
``threads_errors``; the codes every Meta API shares and the HTTP caller in ``meta``.
"""

from __future__ import annotations

from herald.platforms import AttemptContext, Connection, Outcome, PublishOutcome, PublishRequest
from herald.services.publisher.platforms.meta.attempts import account_or_refusal
from herald.services.publisher.platforms.meta.calls import Caller, CallFailed
from herald.services.publisher.platforms.meta.session import Sessions
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.services.publisher.platforms.threads import reads
from herald.services.publisher.platforms.threads.attempt import Attempt
from herald.services.publisher.platforms.threads.errors import IRREVERSIBLE, classify


class ThreadsPublisher(Sessions):
    name = "threads"
    posts_without_container = False  # the post is a container, stored before it is published

    def __init__(
        self,
        graph_url: str,
        *,
        throttle: Throttle | None = None,
        poll_initial_seconds: float = 1.0,
        poll_max_interval_seconds: float = 10.0,
    ) -> None:
        super().__init__(throttle=throttle)
        self.graph_url = graph_url
        self.poll_initial_seconds = poll_initial_seconds
        self.poll_max_interval_seconds = poll_max_interval_seconds

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        user, refused = account_or_refusal(connection, "threadsUserId")
        if refused is not None:
            return refused
        paused = await self.paused(user, ctx)
        if paused is not None:
            return paused
        attempt = Attempt(
            self._caller(connection, user, ctx),
            request,
            user,
            ctx,
            poll_initial_seconds=self.poll_initial_seconds,
            poll_max_interval_seconds=self.poll_max_interval_seconds,
        )
        return await attempt.run()

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        """Only read: the stored container's status, then the user's threads."""
        user = str(connection.metadata.get("threadsUserId") or "")
        caller = self._caller(connection, user, ctx)
        cid = ctx.stored_container_id
        try:
            live = cid is not None and (await reads.status(caller, cid)).code == reads.PUBLISHED
            media = await reads.find_thread(caller, user, request)
        except CallFailed as failed:
            message = f"could not read Threads: {failed.message}"
            return PublishOutcome(Outcome.UNCONFIRMED, error_message=message)
        if live or media is not None:
            ids = {"container_id": cid or ""} | ({"media_id": media} if media else {})
            return PublishOutcome(
                Outcome.PUBLISHED, provider_ids={k: v for k, v in ids.items() if v}
            )
        message = "the job's post is not on Threads"
        return PublishOutcome(Outcome.UNCONFIRMED, error_message=message)

    def _caller(self, connection: Connection, user: str, ctx: AttemptContext) -> Caller:
        return self.caller(self.graph_url, connection, ctx, user, classify, IRREVERSIBLE)
