"""How an Instagram attempt turns what Graph said into an outcome, and logs it.

`Reporter` holds what every outcome needs (the request, the account, the reads, the shared
throttle) and whether a post may be live without a settled answer (`doubt`): then a wait
(`rate_limited`, `processing`, or `auth_error`: a new token) says so (`may_be_live`), so the
job never ends `missed`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from herald.platforms import AttemptContext, Outcome, PublishOutcome, PublishRequest
from herald.services.publisher.platforms.instagram.client import GraphCallError, GraphClient
from herald.services.publisher.platforms.instagram.errors import (
    ErrorClass,
    subcode_from_status,
)
from herald.services.publisher.platforms.instagram.reads import (
    ERROR,
    EXPIRED,
    IN_PROGRESS,
    ContainerStatus,
    GraphReader,
)
from herald.services.publisher.platforms.meta.throttle import APP_WIDE, Throttle
from herald.shared.messages.codec import instant_or_none

logger = logging.getLogger("herald.services.publisher.platforms.instagram.attempt")

_WAITS = (Outcome.RATE_LIMITED, Outcome.PROCESSING, Outcome.AUTH_ERROR)


class Finish(Exception):
    """Ends an attempt with an outcome from deep inside the flow."""

    def __init__(self, outcome: PublishOutcome) -> None:
        super().__init__(outcome.outcome.value)
        self.outcome = outcome


def media_since(request: PublishRequest) -> datetime:
    """The account's media that may be this job's post were published after this."""
    return request.scheduled_at - timedelta(minutes=5)


class Reporter:
    def __init__(
        self,
        client: GraphClient,
        reader: GraphReader,
        request: PublishRequest,
        account_id: str,
        ctx: AttemptContext,
        throttle: Throttle,
    ) -> None:
        self.client = client
        self.reader = reader
        self.request = request
        self.account = account_id
        self.ctx = ctx
        self.throttle = throttle
        self.child_ids: list[str] = []
        # A media_publish for the current container may have landed, and no read said
        # otherwise yet (an earlier attempt's, or this one's unknown answer).
        stored = bool(ctx.stored_container_id)
        self.doubt = stored and (ctx.publish_sent or ctx.previous_outcome_ambiguous)

    def outcome(self, outcome: Outcome, cid: str | None = None, **fields: Any) -> PublishOutcome:
        ids = fields.pop("provider_ids", None) or self.ids(cid)
        may_be_live = self.doubt and outcome in _WAITS
        return PublishOutcome(outcome, provider_ids=ids, may_be_live=may_be_live, **fields)

    async def published(self, cid: str, media_id: str, body: dict[str, Any]) -> PublishOutcome:
        """media_publish answered with an id: final at once (`ctx.settle`), whatever the
        best-effort permalink read does."""
        self.log(logging.DEBUG, "published", container_id=cid, media_id=media_id)
        ids = self.ids(cid, media_id=media_id)
        response = {"media_publish": body}
        at = datetime.now(UTC)
        final = PublishOutcome(
            Outcome.PUBLISHED, provider_ids=ids, published_at=at, provider_response=response
        )
        self.ctx.settle(final)
        try:
            permalink = await self.reader.permalink(media_id)
        except GraphCallError as exc:
            self.log(logging.INFO, f"permalink unreadable: {exc.message}", media_id=media_id)
            permalink = ""
        if not permalink:
            return final
        final = PublishOutcome(
            Outcome.PUBLISHED,
            provider_ids={**ids, "permalink": permalink},
            published_at=at,
            provider_response=response,
        )
        self.ctx.settle(final)
        return final

    async def already_published(
        self, cid: str, status: ContainerStatus | None, media: dict[str, Any] | None = None
    ) -> PublishOutcome:
        """The post is live (the container reads PUBLISHED, or the account's media show it).
        The container does not name its media (reference §8.5): the media id comes from a
        unique caption match in the account's media, if any."""
        ids = self.ids(cid)
        published_at = datetime.now(UTC)
        if media is None and (self.request.media_type or "").upper() != "STORIES":
            try:
                media = await self.reader.find_media(
                    self.request.caption, media_since(self.request)
                )
            except GraphCallError as exc:
                self.log(logging.INFO, f"media list unreadable: {exc.message}")
        if media is not None:
            ids["media_id"] = str(media["id"])
            if isinstance(media.get("permalink"), str):
                ids["permalink"] = media["permalink"]
            published_at = instant_or_none(media.get("timestamp")) or published_at
        self.log(logging.INFO, "already published", container_id=cid, media_id=ids.get("media_id"))
        seen: dict[str, Any] = {"container": status.body} if status is not None else {}
        if media is not None:
            seen["media"] = media
        return PublishOutcome(
            Outcome.PUBLISHED, provider_ids=ids, published_at=published_at, provider_response=seen
        )

    def container_outcome(self, cid: str, status: ContainerStatus) -> PublishOutcome:
        """A container neither FINISHED nor PUBLISHED: nothing was published with it."""
        response = {"container": status.body}
        if status.code == ERROR:
            return self.outcome(
                Outcome.PERMANENT_ERROR,
                cid,
                error_subcode=subcode_from_status(status.text),
                error_message=f"container {cid} failed: {status.text or 'ERROR'}",
                provider_response=response,
            )
        if status.code == EXPIRED:
            kind, message = Outcome.RETRYABLE_ERROR, f"container {cid} expired; a new one follows"
        elif status.code == IN_PROGRESS:
            kind = Outcome.PROCESSING
            message = (
                f"container {cid} still IN_PROGRESS after {self.ctx.poll_seconds:g}s of polls;"
                " it is read again later"
            )
        else:
            kind, message = (
                Outcome.AMBIGUOUS,
                f"container {cid} has an unknown status {status.code!r}",
            )
        self.log(logging.INFO, message, container_id=cid)
        return self.outcome(kind, cid, error_message=message, provider_response=response)

    def ambiguous(self, cid: str, message: str) -> PublishOutcome:
        self.log(logging.WARNING, f"ambiguous: {message}", container_id=cid)
        return self.outcome(Outcome.AMBIGUOUS, cid, error_message=message)

    async def fail(
        self,
        exc: GraphCallError,
        container_id: str | None = None,
        outcome: Outcome | None = None,
        message: str | None = None,
    ) -> PublishOutcome:
        c = exc.classification
        code, subcode = (exc.error.code, exc.error.subcode) if exc.error else (None, None)
        retry_after = c.retry_after_seconds
        if c.error_class is ErrorClass.QUOTA:
            retry_after = await self.quota_wait()
        elif c.error_class is ErrorClass.RATE_LIMIT and retry_after:
            scope = APP_WIDE if code == 4 else self.account
            retry_after = await self.throttle.pause(scope, retry_after, self.account)
        final = outcome or c.outcome
        text = message or f"{exc.call.value}: {exc.message}"
        self.log(
            logging.WARNING,
            f"{final.value} ({c.rule}): {text}",
            container_id=container_id,
            error_code=code,
            error_subcode=subcode,
        )
        return self.outcome(
            final,
            container_id,
            error_code=code,
            error_subcode=subcode,
            error_message=text,
            retry_after_seconds=retry_after if final is Outcome.RATE_LIMITED else None,
            provider_response=exc.response(),
        )

    async def quota_wait(self) -> float | None:
        """Until the publishing quota's rolling window frees a post (the window as
        `content_publishing_limit` reports it). None when the quota cannot be read now: the
        results service backs off, and the next attempt reads the quota before it publishes
        (a day's wait for one failed read would strand the job)."""
        try:
            window = (await self.reader.publishing_limit()).window_seconds
        except GraphCallError:
            return None
        return await self.reader.quota_frees_in(window)

    def ids(self, cid: str | None, **more: str) -> dict[str, str]:
        ids = {"container_id": cid} if cid else {}
        if self.child_ids:
            ids["child_container_ids"] = ",".join(self.child_ids)
        return {**ids, **more}

    def log(self, level: int, message: str, **fields: Any) -> None:
        extra = {
            "job_id": self.request.job_id,
            "attempt": self.request.attempt,
            "platform": "instagram",
        }
        extra.update({k: v for k, v in fields.items() if v is not None})
        logger.log(level, "instagram: %s", self.client.scrub.text(message), extra=extra)
