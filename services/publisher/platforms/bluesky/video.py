"""A Bluesky video: uploaded to the video service, which processes it and stores the result
as a blob on the account's PDS; the post embeds that blob (``app.bsky.embed.video``).

1. ``app.bsky.video.getUploadLimits`` (a service token for the video service): an account
   out of its daily videos or bytes is ``rate_limited`` for an hour, nothing uploaded.
2. The video is downloaded (public https, at most ``MAX_VIDEO_BYTES``, ``video/*``) and its
   MP4 header read: longer than ``MAX_VIDEO_SECONDS`` is refused before the upload.
3. ``com.atproto.server.getServiceAuth`` (aud: the PDS's ``did:web``, lxm
   ``com.atproto.repo.uploadBlob``: the video service stores the blob with it), then
   ``app.bsky.video.uploadVideo``. A token refused as expired (``JwtExpired``) gets one new
   token and one more send. The same bytes sent again are answered 409 with the first job's id.
4. The processing job's id is stored on the Herald job at once (``remember_container``),
   then ``app.bsky.video.getJobStatus`` is polled for at most the attempt's poll time:
   ``JOB_STATE_COMPLETED`` gives the blob, ``JOB_STATE_FAILED`` is a permanent error, still
   running is ``processing`` (the job comes back later without spending an attempt). A
   later attempt reads the stored job first and uploads again only when the video service
   no longer knows it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlparse

from herald.platforms import AttemptContext, MediaRefused, MediaUnavailable, Outcome
from herald.services.publisher.platforms.bluesky.plugin import MAX_VIDEO_BYTES, MAX_VIDEO_SECONDS
from herald.services.publisher.platforms.bluesky.xrpc import Xrpc, failure
from herald.services.publisher.platforms.rest.calls import Answer, Failed
from herald.services.publisher.platforms.rest.mp4 import duration_seconds

UPLOAD, STATUS = "app.bsky.video.uploadVideo", "app.bsky.video.getJobStatus"
LIMITS, BLOB = "app.bsky.video.getUploadLimits", "com.atproto.repo.uploadBlob"
EXPIRED = ("JwtExpired", "ExpiredToken")  # xrpc-server's and the PDS's names
DONE, FAILED = "JOB_STATE_COMPLETED", "JOB_STATE_FAILED"
LIMIT_WAIT = 3600.0  # the daily limits name no reset time: look again in an hour
TOKEN_LIFE = 1800  # a service token for the upload: 30 minutes
FIRST_POLL, MAX_POLL = 0.5, 5.0


def did_web(url: str) -> str:
    """A host's did:web (a port is written %3A)."""
    return "did:web:" + urlparse(url).netloc.replace(":", "%3A")


class Video:
    def __init__(self, xrpc: Xrpc, service: str, ctx: AttemptContext) -> None:
        self.xrpc, self.service, self.ctx = xrpc, service, ctx

    async def embed(self, url: str, name: str) -> dict[str, Any]:
        """The post's video embed; raises Failed (``processing`` while the service works)."""
        blob = None
        stored = self.ctx.stored_container_id
        if stored:
            blob = await self._stored(stored)
        if blob is None:
            job = await self._upload(url, name)
            await self.ctx.remember_container(job)  # durably, before any wait
            blob = await self._wait(job)
        # No alt text in a job; no aspectRatio (Herald decodes no frames).
        return {"$type": "app.bsky.embed.video", "video": blob}

    async def _stored(self, job: str) -> dict[str, Any] | None:
        """The blob of an earlier attempt's job, or None when the service does not know it
        (or it failed: the video is sent again)."""
        answer = await self._call("GET", STATUS, params={"jobId": job})
        if answer.status == 400 and answer.field("error") in ("InvalidRequest", "NotFound"):
            return None
        status = _job_status(STATUS, answer)
        if status.get("state") == FAILED:
            return None
        return await self._wait(job)

    async def _upload(self, url: str, name: str) -> str:
        await self._check_limits()
        try:
            media = await self.xrpc.client.media(url, max_bytes=MAX_VIDEO_BYTES)
        except MediaRefused as exc:
            raise Failed(Outcome.PERMANENT_ERROR, f"Bluesky video refused: {exc}") from None
        except MediaUnavailable as exc:
            raise Failed(Outcome.RETRYABLE_ERROR, f"video unavailable: {exc}") from None
        if not media.content_type.startswith("video/"):
            raise Failed(Outcome.PERMANENT_ERROR, f"{url} is {media.content_type}, not a video")
        seconds = duration_seconds(media.data)
        if seconds is not None and seconds > MAX_VIDEO_SECONDS:
            message = f"video is {seconds:.0f} s; Bluesky takes at most {MAX_VIDEO_SECONDS:.0f} s"
            raise Failed(Outcome.PERMANENT_ERROR, message)
        params = {"did": await self.xrpc.did(), "name": name}
        headers = {"Content-Type": "video/mp4"}
        for renewed in (False, True):
            token = await self._service_token(did_web(await self._pds()), BLOB, TOKEN_LIFE)
            answer = await self._call(
                "POST", UPLOAD, token=token, params=params, data=media.data, headers=headers
            )
            expired = answer.status in (400, 401) and answer.field("error") in EXPIRED
            if not expired:
                break
            if renewed:  # a fresh token refused: the service's clock or keys, not ours
                raise Failed(Outcome.RETRYABLE_ERROR, f"{UPLOAD}: service token refused", answer)
            # refused before anything was stored: a new token, one more send
        if answer.status == 409:  # these bytes were sent before: the first job's id
            job = answer.field("jobId") or _job_status(UPLOAD, answer, ok=409).get("jobId")
        else:
            job = _job_status(UPLOAD, answer).get("jobId")
        if not isinstance(job, str) or not job:
            raise Failed(Outcome.RETRYABLE_ERROR, "uploadVideo answered no job id", answer)
        return job

    async def _check_limits(self) -> None:
        token = await self._service_token(did_web(self.service), LIMITS, 60)
        answer = await self._call("GET", LIMITS, token=token)
        if answer.status != 200:
            raise failure(LIMITS, answer)
        if not (isinstance(answer.body, dict) and answer.body.get("canUpload") is True):
            why = answer.field("message") or answer.field("error") or "canUpload is false"
            message = f"Bluesky's daily video limit: {why}"
            raise Failed(Outcome.RATE_LIMITED, message, answer, LIMIT_WAIT)

    async def _wait(self, job: str) -> dict[str, Any]:
        deadline, delay = time.monotonic() + self.ctx.poll_seconds, FIRST_POLL
        while True:
            status = _job_status(STATUS, await self._call("GET", STATUS, params={"jobId": job}))
            state = status.get("state")
            blob = status.get("blob")
            if state == DONE and isinstance(blob, dict):
                return blob
            if state == FAILED:
                why = f"{status.get('error') or ''} {status.get('message') or ''}".strip()
                message = f"Bluesky's video service failed the video (job {job}): {why}"
                raise Failed(Outcome.PERMANENT_ERROR, message)
            if time.monotonic() + delay > deadline:
                message = f"video job {job} is {state} ({status.get('progress', 0)}%)"
                raise Failed(Outcome.PROCESSING, message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_POLL)

    async def _service_token(self, aud: str, lxm: str, life: int) -> str:
        params = {"aud": aud, "lxm": lxm, "exp": str(int(time.time()) + life)}
        answer = await self.xrpc.call("GET", "com.atproto.server.getServiceAuth", params=params)
        token = answer.field("token")
        if not token:
            raise Failed(Outcome.RETRYABLE_ERROR, "getServiceAuth answered no token")
        return token

    async def _pds(self) -> str:
        """The account's own PDS (an entryway such as bsky.social forwards to it)."""
        return (await self.xrpc.session()).pds or self.xrpc.base

    async def _call(
        self, method: str, nsid: str, *, token: str | None = None, **kwargs: Any
    ) -> Answer:
        url = f"{self.service}/xrpc/{nsid}"
        timeout = self.xrpc.timeout if nsid != UPLOAD else max(self.xrpc.timeout, 60.0)
        return await self.xrpc.client.call(method, url, timeout=timeout, token=token, **kwargs)


def _job_status(nsid: str, answer: Answer, *, ok: int = 200) -> dict[str, Any]:
    if answer.status != ok:
        raise failure(nsid, answer)
    status = answer.body.get("jobStatus") if isinstance(answer.body, dict) else None
    if not isinstance(status, dict):
        raise Failed(Outcome.RETRYABLE_ERROR, f"{nsid} answered no jobStatus", answer)
    return status
