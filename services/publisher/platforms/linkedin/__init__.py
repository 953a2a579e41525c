"""LinkedIn publisher: text, image, multi-image and video posts for a member
(``urn:li:person``) or an organisation (``urn:li:organization``) through the versioned Posts
API (``POST /rest/posts``), images uploaded first (``POST /rest/images?action=initializeUpload``,
then one PUT of the file to the upload URL it answers), a video through the Videos API and
its processing (``video.py``).

Never twice (LinkedIn has no idempotency key): the image and video urns are stored
(``remember_children``) before the post; the post's urn comes back in ``x-restli-id``. A
create without a definite answer, and every attempt after one, reads the author's recent
posts (``GET /rest/posts?q=author``) for the job's commentary before anything is created
again (``rest.readback``). A 422 ``DUPLICATE_POST`` while in doubt names the post already
made: published. The connection's token is ``<access>|<refresh>`` (``rest.oauth2``).
"""

from __future__ import annotations

from herald.platforms import (
    AttemptContext,
    Connection,
    MediaRefused,
    MediaUnavailable,
    Outcome,
    PublishOutcome,
    PublishRequest,
)
from herald.services.publisher.platforms.linkedin.api import Api, duplicate_of, little
from herald.services.publisher.platforms.linkedin.plugin import MAX_IMAGE_BYTES
from herald.services.publisher.platforms.linkedin.video import Video
from herald.services.publisher.platforms.rest.calls import Client
from herald.services.publisher.platforms.rest.oauth2 import unpack
from herald.services.publisher.platforms.rest.readback import (
    Refused,
    Unknown,
    post_once,
)


class LinkedInPublisher:
    name = "linkedin"
    posts_without_container = True

    def __init__(self, api_url: str, version: str) -> None:
        self.api_url, self.version = api_url, version
        self.client = Client()

    def _api(self, connection: Connection, ctx: AttemptContext) -> Api:
        token, _ = unpack(connection.access_token)
        return Api(self.client, self.api_url, self.version, token, ctx.call_timeout_seconds)

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        author = str(connection.metadata.get("author") or "")
        if not connection.access_token or not author:
            return PublishOutcome(Outcome.AUTH_ERROR, error_message="connection not signed in")
        api = self._api(connection, ctx)
        commentary = little(request.caption)

        async def find() -> PublishOutcome | None:
            for post in await api.recent(author):
                if post.get("commentary") == commentary:
                    return _published(str(post.get("id") or ""), already=True)
            return None

        async def upload() -> list[str]:
            if request.media_type == "VIDEO":
                return [await Video(api, author, ctx).urn(request.media_asset_ids[0])]
            return [await self._image(api, author, url) for url in request.media_asset_ids]

        async def create(images: list[str]) -> PublishOutcome:
            body = _post(author, commentary, images)
            try:
                answer = await api.call("POST", "/rest/posts", json=body)
            except Refused as refused:
                urn = duplicate_of(refused)
                if urn is not None and ctx.may_be_live:
                    return _published(urn, already=True)
                raise
            urn = {k.lower(): v for k, v in answer.headers.items()}.get("x-restli-id", "")
            if not urn:
                found = await find()
                if found is not None:
                    return found
                return PublishOutcome(Outcome.AMBIGUOUS, error_message="201 without x-restli-id")
            return _published(urn, already=False)

        return await post_once(ctx, find=find, upload=upload, create=create)

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        """Only read: the author's recent posts, for the job's commentary."""
        api = self._api(connection, ctx)
        author = str(connection.metadata.get("author") or "")
        try:
            posts = await api.recent(author)
        except (Refused, Unknown) as exc:
            return PublishOutcome(Outcome.UNCONFIRMED, error_message=f"could not read: {exc}")
        for post in posts:
            if post.get("commentary") == little(request.caption):
                return _published(str(post.get("id") or ""), already=True)
        return PublishOutcome(Outcome.UNCONFIRMED, error_message="no post with the job's text")

    async def close(self) -> None:
        await self.client.close()

    async def _image(self, api: Api, author: str, url: str) -> str:
        try:
            media = await api.client.media(url, max_bytes=MAX_IMAGE_BYTES)
        except MediaRefused as exc:
            raise Refused(_failed(Outcome.PERMANENT_ERROR, f"media refused: {exc}")) from None
        except MediaUnavailable as exc:
            raise Refused(_failed(Outcome.RETRYABLE_ERROR, f"media unavailable: {exc}")) from None
        if media.content_type not in ("image/jpeg", "image/png", "image/gif"):
            message = f"{url} is {media.content_type}; LinkedIn takes JPEG, PNG or GIF images"
            raise Refused(_failed(Outcome.PERMANENT_ERROR, message))
        body = {"initializeUploadRequest": {"owner": author}}
        answer = await api.call("POST", "/rest/images?action=initializeUpload", json=body)
        value = answer.body.get("value") if isinstance(answer.body, dict) else None
        value = value if isinstance(value, dict) else {}
        upload, image = str(value.get("uploadUrl") or ""), str(value.get("image") or "")
        if not upload or not image:
            raise Refused(_failed(Outcome.RETRYABLE_ERROR, "initializeUpload answered no URL"))
        await api.put(upload, media.data, media.content_type)
        return image


def _post(author: str, commentary: str, images: list[str]) -> dict[str, object]:
    body: dict[str, object] = {
        "author": author,
        "commentary": commentary,
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
    }
    if len(images) == 1:
        body["content"] = {"media": {"id": images[0]}}
    elif images:
        body["content"] = {"multiImage": {"images": [{"id": i} for i in images]}}
    return body


def _published(urn: str, *, already: bool) -> PublishOutcome:
    return PublishOutcome(
        Outcome.PUBLISHED,
        provider_ids={"post_urn": urn} if urn else {},
        provider_response={
            "urn": urn,
            "url": f"https://www.linkedin.com/feed/update/{urn}",
            "already_posted": already,
        },
    )


def _failed(outcome: Outcome, message: str) -> PublishOutcome:
    return PublishOutcome(outcome, error_message=message)
