"""Facebook Pages publisher: photo posts (one or several photos attached to a feed post),
link posts, hosted videos and Reels, published at Herald's slot (never Facebook's own
scheduler) with the Page's access token.

A connection names its Page (metadata ``pageId``) and holds a Page access token (derived
from a long-lived user token: it has no expiry date). The Graph host is the configured
``graph_url`` (version included); no connection names a URL. One attempt's flow, and how it
never posts twice, is in ``facebook_attempt``; the error table in ``facebook_errors``; the
codes every Meta API shares and the HTTP caller in ``meta``.
"""

from __future__ import annotations

from herald.platforms import AttemptContext, Connection, Outcome, PublishOutcome, PublishRequest
from herald.services.publisher.platforms.facebook.attempt import Attempt
from herald.services.publisher.platforms.facebook.errors import IRREVERSIBLE, classify
from herald.services.publisher.platforms.facebook.reads import find_post, video_status
from herald.services.publisher.platforms.meta.attempts import account_or_refusal
from herald.services.publisher.platforms.meta.calls import Caller, CallFailed
from herald.services.publisher.platforms.meta.session import Sessions
from herald.services.publisher.platforms.meta.throttle import Throttle


class FacebookPublisher(Sessions):
    name = "facebook"
    # A link post or a hosted video is live once its one call went through: a failed call
    # counts as `ambiguous`, and the next attempt reads the feed first.
    posts_without_container = True

    def __init__(
        self,
        graph_url: str,
        *,
        app_secret: str | None = None,
        throttle: Throttle | None = None,
        poll_initial_seconds: float = 1.0,
    ) -> None:
        super().__init__(app_secret, throttle)
        self.graph_url = graph_url
        self.poll_initial_seconds = poll_initial_seconds

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        page, refused = account_or_refusal(connection, "pageId")
        if refused is not None:
            return refused
        paused = await self.paused(page, ctx)
        if paused is not None:
            return paused
        caller = self._caller(connection, page, ctx)
        attempt = Attempt(
            caller, request, page, ctx, poll_initial_seconds=self.poll_initial_seconds
        )
        return await attempt.run()

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        """Only read: the stored Reel's status, else the job's post in the Page's feed."""
        page = str(connection.metadata.get("pageId") or "")
        caller = self._caller(connection, page, ctx)
        try:
            video = ctx.stored_container_id
            if video and request.media_type == "REELS":
                status = await video_status(caller, video)
                if status.live:
                    return PublishOutcome(Outcome.PUBLISHED, provider_ids={"video_id": video})
            elif request.caption.strip():
                found = await find_post(caller, page, request)
                if found is not None:
                    return PublishOutcome(Outcome.PUBLISHED, provider_ids={"post_id": found.id})
        except CallFailed as failed:
            message = f"could not read the Page: {failed.message}"
            return PublishOutcome(Outcome.UNCONFIRMED, error_message=message)
        message = "the job's post is not on the Page"
        return PublishOutcome(Outcome.UNCONFIRMED, error_message=message)

    def _caller(self, connection: Connection, page: str, ctx: AttemptContext) -> Caller:
        return self.caller(self.graph_url, connection, ctx, page, classify, IRREVERSIBLE)
