"""Mastodon publisher: text, image (1 to the instance's limit) and video posts on any
instance (metadata ``instanceUrl``), through ``POST /api/v1/statuses``, media uploaded first
(``POST /api/v2/media``; a 202 is polled on ``GET /api/v1/media/:id`` until processed).

Never twice: every status carries an ``Idempotency-Key`` derived from the job, so a resend
within the hour the instance keeps keys answers the first status instead of a second one;
a create without a definite answer (timeout, dropped connection, 5xx, 503 while the first
request still runs) is resent with the same key a few times within the attempt. An attempt
that follows an ambiguous one (or a dead worker's claim) first reads the account's recent
statuses for the job's text, because a key older than an hour is forgotten.

The instance's limits (``/api/v2/instance``: ``max_characters``, URLs counted as
``characters_reserved_per_url``, ``max_media_attachments``, media sizes) are read before
posting; 429 waits for ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp

from herald.platforms import (
    AttemptContext,
    Connection,
    MediaRefused,
    MediaUnavailable,
    Outcome,
    PublishOutcome,
    PublishRequest,
)
from herald.services.publisher.platforms.mastodon.calls import Api, Failed, Limits
from herald.services.publisher.platforms.rest.calls import Answer, Client, NoAnswer, refused_host

SAME_KEY_SENDS = 3
RESEND_PAUSE = 1.0
POLL_FIRST, POLL_MAX = 0.5, 5.0


def idempotency_key(job_id: str) -> str:
    return "herald-" + hashlib.sha256(f"herald-job:{job_id}".encode()).hexdigest()[:40]


class MastodonPublisher:
    name = "mastodon"
    posts_without_container = True

    def __init__(
        self,
        *,
        poll_initial_seconds: float = POLL_FIRST,
        poll_max_seconds: float = POLL_MAX,
        resend_pause_seconds: float = RESEND_PAUSE,
    ) -> None:
        self.poll_initial, self.poll_max = poll_initial_seconds, poll_max_seconds
        self.resend_pause = resend_pause_seconds
        self.client = Client()
        self.instances: dict[str, tuple[float, Limits]] = {}
        self.accounts: dict[str, str] = {}

    def _api(self, connection: Connection, ctx: AttemptContext) -> Api:
        timeout = ctx.call_timeout_seconds
        return Api(self.client, connection, timeout, self.instances, self.accounts)

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        if not connection.access_token:
            return PublishOutcome(Outcome.AUTH_ERROR, error_message="connection has no token")
        api = self._api(connection, ctx)
        refused = refused_host(api.base, "instanceUrl")
        if refused is not None:
            return refused
        doubt = ctx.may_be_live
        try:
            limits = await api.limits()
            refused = _over_limits(request, limits)
            if refused is not None:
                return refused
            if doubt:
                found = await api.find(request.caption, request.scheduled_at)
                if found is not None:
                    return _published(found, already=True)
            deadline = asyncio.get_running_loop().time() + ctx.poll_seconds
            media = [
                await self._upload(api, url, request, limits, deadline)
                for url in request.media_asset_ids
            ]
            await ctx.confirm_claim()  # raises ClaimLost: nothing was sent
            return await self._post(api, request, media)
        except Failed as failed:
            return failed.outcome(may_be_live=doubt)
        except NoAnswer as lost:  # before the post: this attempt posted nothing
            return PublishOutcome(
                Outcome.RETRYABLE_ERROR, error_message=lost.what, may_be_live=doubt
            )

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        """Only read: the account's recent statuses, for the job's text."""
        try:
            found = await self._api(connection, ctx).find(request.caption, request.scheduled_at)
        except (Failed, NoAnswer) as exc:
            return PublishOutcome(Outcome.UNCONFIRMED, error_message=f"could not read: {exc}")
        if found is None:
            return PublishOutcome(
                Outcome.UNCONFIRMED, error_message="no status with the job's text"
            )
        return _published(found, already=True)

    async def close(self) -> None:
        await self.client.close()

    async def _post(self, api: Api, request: PublishRequest, media: list[str]) -> PublishOutcome:
        body: dict[str, object] = {"status": request.caption, "visibility": "public"}
        if media:
            body["media_ids"] = media
        headers = {"Idempotency-Key": idempotency_key(request.job_id)}
        reason = ""
        for n in range(SAME_KEY_SENDS):
            if n:
                await asyncio.sleep(self.resend_pause * n)
            try:
                answer = await api.call(
                    "POST", "/api/v1/statuses", "status", json=body, headers=headers
                )
            except NoAnswer as lost:
                reason = lost.what
                continue
            except Failed as failed:
                if failed.not_ready or failed.kind is Outcome.RETRYABLE_ERROR:
                    reason = failed.message
                    continue
                if failed.kind is Outcome.PERMANENT_ERROR and failed.answer is not None:
                    failed.message += " (the instance refused the status)"
                raise
            return _published(answer.body, already=False)
        message = (
            f"status: {reason}; sent {SAME_KEY_SENDS} times with one key: read before posting again"
        )
        return PublishOutcome(Outcome.AMBIGUOUS, error_message=message)

    async def _upload(
        self, api: Api, url: str, request: PublishRequest, limits: Limits, deadline: float
    ) -> str:
        video = request.media_type == "VIDEO"
        cap = limits.video_bytes if video else limits.image_bytes
        try:
            media = await api.client.media(url, max_bytes=cap)
        except MediaRefused as exc:
            raise Failed(Outcome.PERMANENT_ERROR, f"media refused: {exc}") from None
        except MediaUnavailable as exc:
            raise Failed(Outcome.RETRYABLE_ERROR, f"media unavailable: {exc}") from None
        wanted = "video/" if video else "image/"
        if not media.content_type.startswith(wanted):
            raise Failed(Outcome.PERMANENT_ERROR, f"{url} is {media.content_type}, not {wanted}*")
        form = aiohttp.FormData()
        name = url.rsplit("/", 1)[-1] or "media"
        form.add_field("file", media.data, filename=name, content_type=media.content_type)
        answer = await api.call("POST", "/api/v2/media", "media", data=form)
        mid = answer.field("id")
        if not mid:
            raise Failed(Outcome.RETRYABLE_ERROR, "media answered no id")
        delay = self.poll_initial
        while answer.status != 200 or answer.body.get("url") is None:
            left = deadline - asyncio.get_running_loop().time()
            if delay > left:
                raise Failed(
                    Outcome.RETRYABLE_ERROR, f"media {mid} still processing; upload again later"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.poll_max)
            answer = await api.call("GET", f"/api/v1/media/{mid}", "media_read")
        return mid


def _over_limits(request: PublishRequest, limits: Limits) -> PublishOutcome | None:
    length = limits.length(request.caption)
    if length > limits.max_characters:
        message = (
            f"text is {length} characters (URLs count {limits.url_characters}); "
            f"the instance takes {limits.max_characters}"
        )
        return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
    if len(request.media_asset_ids) > limits.max_media:
        message = f"{len(request.media_asset_ids)} media; the instance takes {limits.max_media}"
        return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
    return None


def _published(status: object, *, already: bool) -> PublishOutcome:
    body = status if isinstance(status, dict) else {}
    sid, url = str(body.get("id") or ""), str(body.get("url") or "")
    return PublishOutcome(
        Outcome.PUBLISHED,
        provider_ids={"status_id": sid},
        provider_response={"id": sid, "url": url, "already_posted": already},
    )


__all__ = ["Answer", "MastodonPublisher", "idempotency_key"]
