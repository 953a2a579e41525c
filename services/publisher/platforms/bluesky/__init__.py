"""Bluesky publisher: text, image and video posts (``app.bsky.feed.post`` records created
with ``com.atproto.repo.createRecord``), images uploaded first as blobs (``uploadBlob``), a
video through the video service (``video.py``).

Never twice: the record key is the job's own TID (``text.record_key``: the same for every
attempt of a job), so a second create of the job's post cannot make a second record (the
PDS refuses a taken key). A create that got no definite answer (timeout, dropped connection,
5xx, which is also what a taken key answers) is settled by reading the record back
(``getRecord`` by key): ours is there → published; absent → ``ambiguous``, and the next
attempt reads again before it creates. An attempt that follows an ambiguous one, or a claim
whose worker died, reads back before anything else.

The host is the connection's PDS (metadata ``pdsUrl``, default ``https://bsky.social``),
reached only on public https addresses (``herald.platforms.public_session``); media is
downloaded from public https hosts, at most 1,000,000 bytes an image, 100 MB a video.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from herald.platforms import (
    AttemptContext,
    Connection,
    MediaRefused,
    MediaUnavailable,
    Outcome,
    PublishOutcome,
    PublishRequest,
)
from herald.services.publisher.platforms.bluesky.plugin import (
    MAX_IMAGE_BYTES,
    pds_url,
    video_url,
)
from herald.services.publisher.platforms.bluesky.text import facets, record_key, too_long
from herald.services.publisher.platforms.bluesky.video import Video
from herald.services.publisher.platforms.bluesky.xrpc import Session, Xrpc
from herald.services.publisher.platforms.rest.calls import (
    Answer,
    Client,
    Failed,
    NoAnswer,
    refused_host,
)

POST = "app.bsky.feed.post"
CREATE = "com.atproto.repo.createRecord"


class BlueskyPublisher:
    name = "bluesky"
    posts_without_container = True  # one call posts (the key makes a repeat harmless)

    def __init__(self) -> None:
        self.client = Client()
        self.sessions: dict[str, Session] = {}

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        if not connection.access_token:
            return PublishOutcome(
                Outcome.AUTH_ERROR, error_message="connection has no app password"
            )
        for key, host in (("pdsUrl", pds_url), ("videoUrl", video_url)):
            refused = refused_host(host(connection.metadata), key)
            if refused is not None:
                return refused
        reason = too_long(request.caption)
        if reason is not None:
            return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=reason)
        xrpc = self._xrpc(connection, ctx)
        rkey = record_key(request.job_id, request.scheduled_at)
        doubt = ctx.may_be_live
        try:
            if doubt:
                found = await self._read_back(xrpc, rkey, request.caption)
                if found is not None:
                    return found
            record = await self._record(xrpc, request)
            if request.media_type == "VIDEO":
                video = Video(xrpc, video_url(connection.metadata), ctx)
                asset = request.media_asset_ids[0]
                record["embed"] = await video.embed(asset, f"{rkey}.mp4")
            repo = await xrpc.did()
            await ctx.confirm_claim()  # raises ClaimLost: nothing was sent
            body = {"repo": repo, "collection": POST, "rkey": rkey, "record": record}
            try:
                answer = await xrpc.call("POST", CREATE, json=body)
            except NoAnswer as lost:
                return await self._settle(xrpc, rkey, request.caption, lost.what)
            except Failed as failed:
                if failed.kind is not Outcome.RETRYABLE_ERROR:
                    raise
                return await self._settle(xrpc, rkey, request.caption, failed.message)
            return _published(answer, already=False)
        except Failed as failed:
            return failed.outcome(may_be_live=doubt)
        except NoAnswer as lost:  # before the create: nothing was posted by this attempt
            return PublishOutcome(
                Outcome.RETRYABLE_ERROR, error_message=lost.what, may_be_live=doubt
            )

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        """Only read: the job's record, by its key."""
        rkey = record_key(request.job_id, request.scheduled_at)
        try:
            found = await self._read_back(self._xrpc(connection, ctx), rkey, request.caption)
        except (Failed, NoAnswer) as exc:
            return PublishOutcome(Outcome.UNCONFIRMED, error_message=f"could not read: {exc}")
        if found is not None and found.outcome is Outcome.PUBLISHED:
            return found
        return PublishOutcome(Outcome.UNCONFIRMED, error_message=f"no record {rkey} on the PDS")

    async def close(self) -> None:
        await self.client.close()

    def _xrpc(self, connection: Connection, ctx: AttemptContext) -> Xrpc:
        return Xrpc(self.client, self.sessions, connection, ctx.call_timeout_seconds)

    async def _record(self, xrpc: Xrpc, request: PublishRequest) -> dict[str, Any]:
        text = request.caption
        record: dict[str, Any] = {
            "$type": POST,
            "text": text,
            "createdAt": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        spans = facets(text)
        if spans:
            record["facets"] = spans
        if request.media_asset_ids and request.media_type != "VIDEO":
            images = [await self._image(xrpc, url) for url in request.media_asset_ids]
            record["embed"] = {"$type": "app.bsky.embed.images", "images": images}
        return record

    async def _image(self, xrpc: Xrpc, url: str) -> dict[str, Any]:
        try:
            media = await xrpc.client.media(url, max_bytes=MAX_IMAGE_BYTES)
        except MediaRefused as exc:
            raise Failed(Outcome.PERMANENT_ERROR, f"image refused: {exc}") from None
        except MediaUnavailable as exc:
            raise Failed(Outcome.RETRYABLE_ERROR, f"image unavailable: {exc}") from None
        if not media.content_type.startswith("image/"):
            message = f"{url} is {media.content_type}, not an image"
            raise Failed(Outcome.PERMANENT_ERROR, message)
        answer = await xrpc.call(
            "POST",
            "com.atproto.repo.uploadBlob",
            data=media.data,
            headers={"Content-Type": media.content_type},
        )
        blob = answer.body.get("blob") if isinstance(answer.body, dict) else None
        if not isinstance(blob, dict):
            raise Failed(Outcome.RETRYABLE_ERROR, "uploadBlob answered no blob")
        # No alt text in a job: an empty alt is what the lexicon allows for "none given".
        return {"image": blob, "alt": ""}

    async def _read_back(self, xrpc: Xrpc, rkey: str, text: str) -> PublishOutcome | None:
        """The job's record: PUBLISHED when it is there, None when absent, PERMANENT when
        another record holds the key."""
        params = {"repo": await xrpc.did(), "collection": POST, "rkey": rkey}
        try:
            answer = await xrpc.call("GET", "com.atproto.repo.getRecord", params=params)
        except Failed as failed:
            if failed.answer is not None and failed.answer.field("error") == "RecordNotFound":
                return None
            raise
        value = answer.body.get("value") if isinstance(answer.body, dict) else None
        if not isinstance(value, dict) or value.get("text") != text:
            message = f"record key {rkey} holds another post; not posting over it"
            return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
        return _published(answer, already=True)

    async def _settle(self, xrpc: Xrpc, rkey: str, text: str, reason: str) -> PublishOutcome:
        try:
            found = await self._read_back(xrpc, rkey, text)
        except (Failed, NoAnswer) as exc:
            found, reason = None, f"{reason}; the read-back failed too ({exc})"
        if found is not None:
            return found
        message = f"createRecord: {reason}; record {rkey} not found: read again, then create"
        return PublishOutcome(Outcome.AMBIGUOUS, error_message=message, provider_ids={"rkey": rkey})


def _published(answer: Answer, *, already: bool) -> PublishOutcome:
    uri, cid = answer.field("uri"), answer.field("cid")
    return PublishOutcome(
        Outcome.PUBLISHED,
        provider_ids={"uri": uri, "cid": cid, "rkey": uri.rsplit("/", 1)[-1]},
        provider_response={"uri": uri, "cid": cid, "already_posted": already},
    )
