"""One publishing attempt to a Facebook Page.

Never twice (the Pages API has no idempotency key):

- Photos are uploaded unpublished first and stored (``remember_children``, the first one
  as the container) before the feed post that attaches them; a retry attaches the *same*
  photos, and a photo already in a post is refused (100/1366051), so a second post of them
  cannot happen: that refusal means the earlier post went through.
- A Reel's video id is stored right after ``start``; the ``finish`` call publishes it; after
  a lost answer its status says whether the finish was received.
- A link post or a hosted video exists only once the one call answers: after a lost answer,
  a takeover or an ambiguous earlier attempt, the Page's feed is read for the job's post
  (its exact text, since its slot) before anything is posted; without a text to find, the
  attempt stays ambiguous rather than risk a second post.

``ctx.confirm_claim`` is called right before every irreversible call (``feed``, ``videos``,
``reels_finish``).
"""

from __future__ import annotations

import json
import logging

from herald.platforms import AttemptContext, Outcome, PublishOutcome, PublishRequest
from herald.services.publisher.platforms.facebook.errors import ALREADY_POSTED
from herald.services.publisher.platforms.facebook.media import (
    LINK,
    PHOTOS,
    REEL,
    Plan,
    PlanError,
    plan_post,
)
from herald.services.publisher.platforms.facebook.reads import (
    FoundPost,
    VideoStatus,
    find_post,
    findable,
    video_status,
)
from herald.services.publisher.platforms.meta.attempts import Budget
from herald.services.publisher.platforms.meta.calls import AGAIN, Caller, CallFailed, Kind

logger = logging.getLogger(__name__)
READS_AFTER_UNKNOWN = 3  # feed reads (with backoff) after a lost answer


class FeedUnreadable(Exception):
    """The feed read that had to say whether the post is live failed."""

    def __init__(self, failed: CallFailed) -> None:
        super().__init__(failed.message)
        self.failed = failed


class Attempt:
    def __init__(
        self,
        caller: Caller,
        request: PublishRequest,
        page: str,
        ctx: AttemptContext,
        *,
        poll_initial_seconds: float,
    ) -> None:
        self.caller, self.request, self.page, self.ctx = caller, request, page, ctx
        self.poll_initial_seconds = poll_initial_seconds
        self.doubt = ctx.may_be_live
        self.budget = Budget(ctx)

    async def run(self) -> PublishOutcome:
        try:
            plan = plan_post(self.request.media_asset_ids, self.request.media_type)
        except PlanError as exc:
            return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=str(exc))
        try:
            if plan.kind == REEL:
                return await self._reel(plan)
            if plan.kind == PHOTOS:
                return await self._photos(plan)
            return await self._single_call(plan)
        except FeedUnreadable as unreadable:
            failed = unreadable.failed
            if failed.kind is Kind.AUTH:
                # The token is refused: the job waits for a new one (an ambiguous answer would
                # read the feed again with the same token until the budget ran out), still in
                # doubt, so that the feed is read before posting.
                return failed.outcome(may_be_live=True)
            # The post may be live and the feed could not say: stay ambiguous, so that the
            # next attempt reads the feed again before posting.
            message = f"the post may be live; the feed could not be read: {failed.message}"
            return PublishOutcome(
                Outcome.AMBIGUOUS,
                error_message=message,
                retry_after_seconds=failed.retry_after,
                provider_response=failed.response(),
            )
        except CallFailed as failed:
            # Tried again later, the doubt stays: the feed lags behind a post, so an empty
            # read settled nothing; the next attempt looks first.
            return failed.outcome(may_be_live=self.doubt and failed.kind in AGAIN)

    # ---- photos ---------------------------------------------------------------------------

    async def _photos(self, plan: Plan) -> PublishOutcome:
        stored = list(self.ctx.stored_children)
        reuse = bool(self.ctx.stored_container_id) and len(stored) == len(plan.urls)
        if self.doubt:
            found = await self._find()
            if found is not None:
                return _published(found, already=True)
        photos = stored if reuse else await self._upload(plan)
        try:
            return await self._feed(photos)
        except CallFailed as failed:
            if failed.error is not None and failed.error.subcode == ALREADY_POSTED:
                # The photos are in a post already: an earlier attempt's post went through.
                try:
                    found = await self._find()
                except FeedUnreadable:
                    found = None  # live all the same; its id is only a nicety
                if found is not None:
                    return _published(found, already=True)
                ids = {"photo_ids": ",".join(photos)}
                return PublishOutcome(Outcome.PUBLISHED, provider_ids=ids)
            if reuse and failed.kind is Kind.PERMANENT:  # the stored photos expired: new ones
                return await self._feed(await self._upload(plan))
            raise

    async def _upload(self, plan: Plan) -> list[str]:
        ids = []
        for url in plan.urls:
            body = await self.caller.post(
                "photos", f"{self.page}/photos", {"url": url, "published": "false"}
            )
            ids.append(str(body["id"]))
        if self.ctx.remember_children is not None:
            await self.ctx.remember_children(ids)
        await self.ctx.remember_container(ids[0])  # durably, before the post
        return ids

    async def _feed(self, photos: list[str]) -> PublishOutcome:
        attached = {
            f"attached_media[{i}]": json.dumps({"media_fbid": p}) for i, p in enumerate(photos)
        }
        params = {"message": self.request.caption, **attached}
        return await self._irreversible("feed", "feed", params)

    # ---- link posts and hosted videos -----------------------------------------------------

    async def _single_call(self, plan: Plan) -> PublishOutcome:
        if self.doubt:
            if not findable(self.request):
                message = "an earlier call may have posted; a post without text cannot be found"
                return PublishOutcome(Outcome.AMBIGUOUS, error_message=message)
            found = await self._find()
            if found is not None:
                return _published(found, already=True)
        if plan.kind == LINK:
            params = {"message": self.request.caption, "link": plan.urls[0]}
            return await self._irreversible("feed", "feed", params)
        params = {"file_url": plan.urls[0], "description": self.request.caption}
        return await self._irreversible("videos", "videos", params)

    async def _irreversible(self, call: str, edge: str, params: dict[str, str]) -> PublishOutcome:
        await self.ctx.confirm_claim()  # raises ClaimLost: nothing irreversible happened
        try:
            body = await self.caller.post(call, f"{self.page}/{edge}", params)
        except CallFailed as failed:
            if failed.kind is not Kind.AMBIGUOUS:
                raise
            return await self._after_unknown(failed)
        post_id = str(body.get("id") or "")
        if not post_id:
            return await self._after_unknown(None)
        self.ctx.settle(_published(FoundPost(post_id, None), already=False))
        return _published(FoundPost(post_id, None), already=False)

    async def _after_unknown(self, failed: CallFailed | None) -> PublishOutcome:
        """The post may be live: read the feed (it lags behind writes) a few times."""
        reason = failed.message if failed is not None else "answered without an id"
        if findable(self.request):
            for n in range(READS_AFTER_UNKNOWN):
                found = await self._find()
                if found is not None:
                    return _published(found, already=True)
                if not await self.budget.pause(self.poll_initial_seconds * 2.0**n):
                    break
        message = f"{reason}; the post is not in the feed (yet): read again before posting"
        response = failed.response() if failed is not None else None
        return PublishOutcome(Outcome.AMBIGUOUS, error_message=message, provider_response=response)

    async def _find(self) -> FoundPost | None:
        """The job's post in the feed (only ever read when it may be live)."""
        if not findable(self.request):
            return None
        try:
            return await find_post(self.caller, self.page, self.request)
        except CallFailed as failed:
            raise FeedUnreadable(failed) from None

    # ---- Reels ----------------------------------------------------------------------------

    async def _reel(self, plan: Plan) -> PublishOutcome:
        video = self.ctx.stored_container_id
        if video:
            status = await video_status(self.caller, video)
            if status.finish_received or status.live:
                return await self._until_live(video, status)
            video = None  # never published (its upload failed or never ended): a new one
        if not video:
            started = await self.caller.post(
                "reels_start", f"{self.page}/video_reels", {"upload_phase": "start"}
            )
            video = str(started["video_id"])
            await self.ctx.remember_container(video)  # durably, before the upload and finish
            await self._upload_reel(video, plan.urls[0], str(started.get("upload_url") or ""))
        return await self._finish(video)

    async def _upload_reel(self, video: str, url: str, upload_url: str) -> None:
        """The upload host fetches the hosted file (header ``file_url``)."""
        if not upload_url.startswith(("https://", "http://")):
            message = f"reel {video}: start answered without an upload_url"
            raise CallFailed("reels_start", Kind.TRANSIENT, message)
        headers = {**self.caller.transport.oauth_header(), "file_url": url}
        await self.caller.post("reels_upload", "", {}, url=upload_url, headers=headers)

    async def _finish(self, video: str) -> PublishOutcome:
        params = {
            "upload_phase": "finish",
            "video_id": video,
            "video_state": "PUBLISHED",
            "description": self.request.caption,
        }
        await self.ctx.confirm_claim()
        try:
            await self.caller.post("reels_finish", f"{self.page}/video_reels", params)
        except CallFailed as failed:
            if failed.kind is not Kind.AMBIGUOUS:
                raise
            status = await video_status(self.caller, video)
            if not (status.finish_received or status.live):
                outcome = failed.outcome(provider_ids={"video_id": video})
                return outcome  # ambiguous: the next attempt reads the status first
        return await self._until_live(video, await video_status(self.caller, video))

    async def _until_live(self, video: str, status: VideoStatus) -> PublishOutcome:
        """A Reel whose finish was received: published once its status says so."""
        delay = self.poll_initial_seconds
        while not status.live and status.error is None:
            if not await self.budget.pause(delay):
                message = f"reel {video} still processing; read again later"
                return PublishOutcome(
                    Outcome.PROCESSING,
                    error_message=message,
                    provider_ids={"video_id": video},
                    provider_response=status.body,
                )
            delay *= 2
            status = await video_status(self.caller, video)
        if status.error is not None:
            return PublishOutcome(
                Outcome.PERMANENT_ERROR,
                error_message=f"reel {video} failed: {status.error}",
                provider_ids={"video_id": video},
                provider_response=status.body,
            )
        ids = {"video_id": video, "post_id": video}
        return PublishOutcome(Outcome.PUBLISHED, provider_ids=ids, provider_response=status.body)


def _published(found: FoundPost, *, already: bool) -> PublishOutcome:
    ids = {"post_id": found.id}
    response = {"post_id": found.id, "already_posted": already}
    if found.permalink:
        response["permalink"] = found.permalink
    return PublishOutcome(Outcome.PUBLISHED, provider_ids=ids, provider_response=response)
