"""X API v2 as the publisher calls it, and its error answers classified once, here.
Errors are problem JSON (``{type, title, detail, status}``); every answer carries
``x-rate-limit-limit/remaining/reset`` (reset: epoch seconds).

| answer | outcome |
|---|---|
| 401 | ``auth_error`` (the token keeper refreshes; else a new sign-in) |
| 403 duplicate content | read by the caller (the post may be ours) |
| 403 other, 400, 404 | ``permanent_error`` |
| 429 ``rate-limit-exceeded`` | ``rate_limited`` until ``x-rate-limit-reset`` |
| 429 ``usage-capped`` | ``permanent_error``: the app's usage cap (billing), not a wait |
| 5xx, no answer | ``Unknown``: on a create the post may be live |
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from herald.platforms import Media, Outcome, PublishOutcome, Scrubber
from herald.services.publisher.platforms.rest.calls import Answer, Client, NoAnswer, wait_seconds
from herald.services.publisher.platforms.rest.readback import Refused, Unknown

CHUNK = 1024 * 1024  # APPEND segments
DUPLICATE = "duplicate content"


class Api:
    def __init__(self, client: Client, base: str, token: str, timeout: float) -> None:
        self.client, self.base, self.token, self.timeout = client, base.rstrip("/"), token, timeout
        self.scrub = Scrubber(token)

    async def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        try:
            answer = await self.client.call(
                method, f"{self.base}{path}", timeout=self.timeout, token=self.token, **kwargs
            )
        except NoAnswer as lost:
            raise Unknown(self.scrub.text(lost.what)) from None
        if answer.status >= 400:
            raise classify(answer, self.scrub)
        return answer

    async def recent(self, user: str, since: str) -> list[dict[str, Any]]:
        """The account's posts since ``since`` (RFC 3339), newest first."""
        params = {"max_results": "20", "start_time": since, "tweet.fields": "created_at"}
        answer = await self.call("GET", f"/2/users/{user}/tweets", params=params)
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        return [t for t in data or [] if isinstance(t, dict)]

    async def upload(self, media: Media, *, video: bool, wait_seconds: float) -> str:
        """One image (simple upload) or video (INIT, APPEND, FINALIZE, STATUS): its id."""
        if not video:
            form = aiohttp.FormData()
            form.add_field("media", media.data, content_type=media.content_type)
            form.add_field("media_category", "tweet_image")
            return _id(await self.call("POST", "/2/media/upload", data=form))
        init = {
            "media_type": media.content_type,
            "total_bytes": len(media.data),
            "media_category": "tweet_video",
        }
        mid = _id(await self.call("POST", "/2/media/upload/initialize", json=init))
        for index, start in enumerate(range(0, len(media.data), CHUNK)):
            form = aiohttp.FormData()
            form.add_field("media", media.data[start : start + CHUNK])
            form.add_field("segment_index", str(index))
            await self.call("POST", f"/2/media/upload/{mid}/append", data=form)
        done = await self.call("POST", f"/2/media/upload/{mid}/finalize")
        await self._processed(mid, done, wait_seconds)
        return mid

    async def _processed(self, mid: str, answer: Answer, budget: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        while True:
            data = answer.body.get("data") if isinstance(answer.body, dict) else None
            info = (data or {}).get("processing_info") if isinstance(data, dict) else None
            if not isinstance(info, dict) or info.get("state") == "succeeded":
                return
            if info.get("state") == "failed":
                error = info.get("error") or {}
                message = f"X could not process video {mid}: {error.get('message', 'failed')}"
                raise Refused(PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message))
            pause = float(info.get("check_after_secs") or 1)
            if loop.time() + pause > deadline:
                message = f"video {mid} still processing; uploaded again next attempt"
                raise Refused(PublishOutcome(Outcome.RETRYABLE_ERROR, error_message=message))
            await asyncio.sleep(pause)
            params = {"command": "STATUS", "media_id": mid}
            answer = await self.call("GET", "/2/media/upload", params=params)


def classify(answer: Answer, scrub: Scrubber) -> Refused | Unknown:
    body = answer.body if isinstance(answer.body, dict) else {}
    detail = scrub.text(str(body.get("detail") or body.get("title") or f"HTTP {answer.status}"))
    kind = str(body.get("type") or "")
    status = answer.status
    if status >= 500:
        return Unknown(f"X answered HTTP {status}: {detail}")
    if status == 401:
        return Refused(_outcome(Outcome.AUTH_ERROR, detail, status))
    if status == 429 and kind.endswith("usage-capped"):
        return Refused(_outcome(Outcome.PERMANENT_ERROR, f"the app's usage cap: {detail}", status))
    if status == 429:
        wait = wait_seconds(answer.headers)
        return Refused(
            PublishOutcome(
                Outcome.RATE_LIMITED,
                error_code=429,
                error_message=f"X rate limit: {detail}",
                retry_after_seconds=wait,
            )
        )
    return Refused(_outcome(Outcome.PERMANENT_ERROR, detail, status))


def is_duplicate(refused: Refused) -> bool:
    outcome = refused.outcome
    return outcome.error_code == 403 and DUPLICATE in (outcome.error_message or "")


def _id(answer: Answer) -> str:
    data = answer.body.get("data") if isinstance(answer.body, dict) else None
    mid = str((data or {}).get("id") or "") if isinstance(data, dict) else ""
    if not mid:
        raise Refused(PublishOutcome(Outcome.RETRYABLE_ERROR, error_message="media without id"))
    return mid


def _outcome(outcome: Outcome, message: str, code: int) -> PublishOutcome:
    return PublishOutcome(outcome, error_code=code, error_message=message)
