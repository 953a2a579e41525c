"""X publisher: text, image (1 to 4) and video posts through API v2 (``POST /2/tweets``), the
media uploaded first (``POST /2/media/upload`` for an image; ``initialize``, ``append``,
``finalize`` and the STATUS read for a video).

Never twice (X has no idempotency key): the media ids are stored (``remember_children``)
before the post. A create without a definite answer, and every attempt after one, reads
the account's recent posts (``GET /2/users/:id/tweets`` since shortly before the job was
due) for the job's text before anything is created again (``rest.readback``). A 403
"duplicate content" while in doubt is settled by that read too. The connection's token is
``<access>|<refresh>`` (``rest.oauth2``); access tokens last two hours and the token keeper
refreshes them (each refresh token is single-use and rotates).
"""

from __future__ import annotations

from datetime import timedelta

from herald.platforms import (
    AttemptContext,
    Connection,
    MediaRefused,
    MediaUnavailable,
    Outcome,
    PublishOutcome,
    PublishRequest,
)
from herald.services.publisher.platforms.rest.calls import Client
from herald.services.publisher.platforms.rest.oauth2 import unpack
from herald.services.publisher.platforms.rest.readback import (
    Refused,
    Unknown,
    post_once,
)
from herald.services.publisher.platforms.x.api import Api, is_duplicate
from herald.services.publisher.platforms.x.text import LIMIT, comparable, weighted_length

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_VIDEO_BYTES = 512 * 1024 * 1024
LOOK_BACK = timedelta(minutes=10)


class XPublisher:
    name = "x"
    posts_without_container = True

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.client = Client()

    def _api(self, connection: Connection, ctx: AttemptContext) -> Api:
        token, _ = unpack(connection.access_token)
        return Api(self.client, self.api_url, token, ctx.call_timeout_seconds)

    async def _find(self, api: Api, user: str, request: PublishRequest) -> PublishOutcome | None:
        since = (min(request.scheduled_at, request.due_at) - LOOK_BACK).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        wanted = comparable(request.caption)
        for post in await api.recent(user, since):
            if comparable(str(post.get("text") or "")) == wanted:
                return _published(str(post.get("id") or ""), already=True)
        return None

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        user = str(connection.metadata.get("userId") or "")
        if not connection.access_token or not user:
            return PublishOutcome(Outcome.AUTH_ERROR, error_message="connection not signed in")
        length = weighted_length(request.caption)
        if length > LIMIT:
            message = f"text is {length} weighted characters; X takes {LIMIT}"
            return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
        api = self._api(connection, ctx)

        async def find() -> PublishOutcome | None:
            return await self._find(api, user, request)

        async def upload() -> list[str]:
            video = request.media_type == "VIDEO"
            return [
                await self._media(api, url, video, ctx.poll_seconds)
                for url in request.media_asset_ids
            ]

        async def create(media: list[str]) -> PublishOutcome:
            body: dict[str, object] = {"text": request.caption}
            if media:
                body["media"] = {"media_ids": media}
            try:
                answer = await api.call("POST", "/2/tweets", json=body)
            except Refused as refused:
                if is_duplicate(refused) and ctx.may_be_live:
                    found = await find()
                    if found is not None:
                        return found
                raise
            data = answer.body.get("data") if isinstance(answer.body, dict) else None
            post = str(data.get("id") or "") if isinstance(data, dict) else ""
            if not post:
                found = await find()
                if found is not None:
                    return found
                return PublishOutcome(Outcome.AMBIGUOUS, error_message="201 without a post id")
            return _published(post, already=False)

        return await post_once(ctx, find=find, upload=upload, create=create)

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        """Only read: the account's recent posts, for the job's text."""
        user = str(connection.metadata.get("userId") or "")
        try:
            found = await self._find(self._api(connection, ctx), user, request)
        except (Refused, Unknown) as exc:
            return PublishOutcome(Outcome.UNCONFIRMED, error_message=f"could not read: {exc}")
        if found is None:
            return PublishOutcome(Outcome.UNCONFIRMED, error_message="no post with the job's text")
        return found

    async def close(self) -> None:
        await self.client.close()

    async def _media(self, api: Api, url: str, video: bool, budget: float) -> str:
        cap = MAX_VIDEO_BYTES if video else MAX_IMAGE_BYTES
        try:
            media = await api.client.media(url, max_bytes=cap)
        except MediaRefused as exc:
            raise Refused(_failed(Outcome.PERMANENT_ERROR, f"media refused: {exc}")) from None
        except MediaUnavailable as exc:
            raise Refused(_failed(Outcome.RETRYABLE_ERROR, f"media unavailable: {exc}")) from None
        wanted = "video/" if video else "image/"
        if not media.content_type.startswith(wanted):
            message = f"{url} is {media.content_type}, not {wanted}*"
            raise Refused(_failed(Outcome.PERMANENT_ERROR, message))
        return await api.upload(media, video=video, wait_seconds=budget)


def _published(post: str, *, already: bool) -> PublishOutcome:
    return PublishOutcome(
        Outcome.PUBLISHED,
        provider_ids={"post_id": post} if post else {},
        provider_response={
            "id": post,
            "url": f"https://x.com/i/web/status/{post}",
            "already_posted": already,
        },
    )


def _failed(outcome: Outcome, message: str) -> PublishOutcome:
    return PublishOutcome(outcome, error_message=message)
