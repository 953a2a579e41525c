"""A LinkedIn video (Videos API): uploaded in the parts LinkedIn names, processed by LinkedIn,
then named by the post (``content.media.id``).

1. The video is downloaded (public https, ``MIN_VIDEO_BYTES`` to ``MAX_VIDEO_BYTES``,
   ``video/mp4``) and its MP4 header read: outside 3 s to 30 min is refused before upload.
2. ``POST /rest/videos?action=initializeUpload`` answers the video's urn, an upload token
   and one upload URL per part (4 MB each); each part's bytes are PUT to its URL and each
   answer's ``ETag`` kept. An upload URL refused (expired) gets one new upload at once.
3. ``POST /rest/videos?action=finalizeUpload`` with the ETags in order; the urn is stored on
   the Herald job at once (``remember_container``), before any wait.
4. ``GET /rest/videos/{urn}`` is polled for at most the attempt's poll time: ``AVAILABLE``
   is ready, ``PROCESSING_FAILED`` a permanent error, still processing is ``processing``
   (the job comes back later without spending an attempt). A later attempt reads the stored
   video first and uploads again only when LinkedIn does not know it or its upload never
   finished.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from herald.platforms import (
    AttemptContext,
    Media,
    MediaRefused,
    MediaUnavailable,
    Outcome,
    PublishOutcome,
)
from herald.services.publisher.platforms.linkedin.api import Api
from herald.services.publisher.platforms.linkedin.plugin import (
    MAX_VIDEO_BYTES,
    MAX_VIDEO_SECONDS,
    MIN_VIDEO_BYTES,
    MIN_VIDEO_SECONDS,
)
from herald.services.publisher.platforms.rest.mp4 import duration_seconds
from herald.services.publisher.platforms.rest.readback import Refused

READY, FAILED, WAITING = "AVAILABLE", "PROCESSING_FAILED", "WAITING_UPLOAD"
FIRST_POLL, MAX_POLL = 0.5, 5.0
PART_TIMEOUT = 60.0  # a 4 MB part on a slow link


class Video:
    def __init__(self, api: Api, author: str, ctx: AttemptContext) -> None:
        self.api, self.author, self.ctx = api, author, ctx

    async def urn(self, url: str) -> str:
        """The urn of the job's processed video; raises Refused (``processing`` while
        LinkedIn works on it)."""
        stored = self.ctx.stored_container_id
        if stored and stored.startswith("urn:li:video:"):
            status = await self._status(stored)
            if status is not None and status.get("status") != WAITING:
                return await self._wait(stored, status)
        urn = await self._upload(await self._download(url))
        await self.ctx.remember_container(urn)  # durably, before any wait
        return await self._wait(urn, None)

    async def _download(self, url: str) -> Media:
        try:
            media = await self.api.client.media(url, max_bytes=MAX_VIDEO_BYTES)
        except MediaRefused as exc:
            raise _refused(Outcome.PERMANENT_ERROR, f"LinkedIn video refused: {exc}") from None
        except MediaUnavailable as exc:
            raise _refused(Outcome.RETRYABLE_ERROR, f"video unavailable: {exc}") from None
        if media.content_type != "video/mp4":
            raise _refused(
                Outcome.PERMANENT_ERROR, f"{url} is {media.content_type}; LinkedIn takes MP4 videos"
            )
        if len(media.data) < MIN_VIDEO_BYTES:
            message = f"video is {len(media.data)} bytes; LinkedIn takes at least {MIN_VIDEO_BYTES}"
            raise _refused(Outcome.PERMANENT_ERROR, message)
        seconds = duration_seconds(media.data)
        if seconds is None:
            raise _refused(
                Outcome.PERMANENT_ERROR, f"{url} has no MP4 movie header; LinkedIn takes MP4 videos"
            )
        if not MIN_VIDEO_SECONDS <= seconds <= MAX_VIDEO_SECONDS:
            message = (
                f"video is {seconds:.1f} s; LinkedIn takes {MIN_VIDEO_SECONDS:.0f} s "
                f"to {MAX_VIDEO_SECONDS / 60:.0f} min"
            )
            raise _refused(Outcome.PERMANENT_ERROR, message)
        return media

    async def _upload(self, media: Media) -> str:
        for renewed in (False, True):
            body = {
                "initializeUploadRequest": {
                    "owner": self.author,
                    "fileSizeBytes": len(media.data),
                    "uploadCaptions": False,
                    "uploadThumbnail": False,
                }
            }
            answer = await self.api.call("POST", "/rest/videos?action=initializeUpload", json=body)
            value = answer.body.get("value") if isinstance(answer.body, dict) else None
            value = value if isinstance(value, dict) else {}
            urn, token = str(value.get("video") or ""), str(value.get("uploadToken") or "")
            parts = value.get("uploadInstructions")
            if not urn or not isinstance(parts, list) or not parts:
                raise _refused(Outcome.RETRYABLE_ERROR, "initializeUpload answered no upload")
            try:
                etags = [await self._part(media.data, part) for part in parts]
            except Refused as refused:
                if refused.outcome.error_code not in (403, 404):
                    raise
                if renewed:  # two fresh URLs refused: try again on a later attempt
                    why = f"video upload URLs refused twice: {refused.outcome.error_message}"
                    raise _refused(Outcome.RETRYABLE_ERROR, why) from None
                continue  # an upload URL expired: a new upload at once
            finalize = {
                "finalizeUploadRequest": {
                    "video": urn,
                    "uploadToken": token,
                    "uploadedPartIds": etags,
                }
            }
            await self.api.call("POST", "/rest/videos?action=finalizeUpload", json=finalize)
            return urn
        raise AssertionError("unreachable")

    async def _part(self, data: bytes, part: Any) -> str:
        if not isinstance(part, dict):
            raise _refused(Outcome.RETRYABLE_ERROR, "initializeUpload answered a bad part")
        url, first, last = part.get("uploadUrl"), part.get("firstByte"), part.get("lastByte")
        if not isinstance(url, str) or not isinstance(first, int) or not isinstance(last, int):
            raise _refused(Outcome.RETRYABLE_ERROR, "initializeUpload answered a bad part")
        chunk = data[first : last + 1]
        answer = await self.api.put(url, chunk, "application/octet-stream", timeout=PART_TIMEOUT)
        etag = {k.lower(): v for k, v in answer.headers.items()}.get("etag", "")
        if not etag:
            raise _refused(Outcome.RETRYABLE_ERROR, "a video part's upload answered no ETag")
        return etag

    async def _status(self, urn: str) -> dict[str, Any] | None:
        """The video's status, or None when LinkedIn does not know it."""
        try:
            path = f"/rest/videos/{quote(urn, safe='')}"
            answer = await self.api.call("GET", path, encoded=True)
        except Refused as refused:
            if refused.outcome.error_code == 404:
                return None
            raise
        return answer.body if isinstance(answer.body, dict) else {}

    async def _wait(self, urn: str, status: dict[str, Any] | None) -> str:
        deadline, delay = time.monotonic() + self.ctx.poll_seconds, FIRST_POLL
        while True:
            status = status or await self._status(urn) or {}
            state = status.get("status")
            if state == READY:
                return urn
            if state == FAILED:
                why = status.get("processingFailureReason") or "no reason given"
                raise _refused(Outcome.PERMANENT_ERROR, f"LinkedIn failed the video {urn}: {why}")
            if time.monotonic() + delay > deadline:
                raise _refused(Outcome.PROCESSING, f"video {urn} is {state}")
            await asyncio.sleep(delay)
            delay, status = min(delay * 2, MAX_POLL), None


def _refused(outcome: Outcome, message: str) -> Refused:
    return Refused(PublishOutcome(outcome, error_message=message))
