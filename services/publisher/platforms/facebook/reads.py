"""Reading a Page back: the job's post in the Page's feed, and a video's status phases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from herald.platforms import PublishRequest
from herald.services.publisher.platforms.meta.calls import Caller

LOOK_BACK = timedelta(minutes=5)  # a post of the job is not older than its slot minus this


@dataclass(frozen=True)
class FoundPost:
    id: str
    permalink: str | None


def findable(request: PublishRequest) -> bool:
    """Only a post with a caption can be told apart in the feed."""
    return bool(request.caption.strip())


async def find_post(caller: Caller, page: str, request: PublishRequest) -> FoundPost | None:
    """The Page's post with exactly the job's text, made since its slot (minus five minutes),
    the oldest when several match; None when there is none (yet: feed reads lag)."""
    since = int((request.scheduled_at - LOOK_BACK).timestamp())
    params = {"fields": "id,message,created_time,permalink_url", "since": str(since)}
    body = await caller.get("feed_list", f"{page}/feed", {**params, "limit": "100"})
    data = body.get("data")
    posts = [p for p in data if isinstance(p, dict)] if isinstance(data, list) else []
    mine = [p for p in posts if p.get("message") == request.caption]
    if not mine:
        return None
    oldest = mine[-1]  # newest first
    link = oldest.get("permalink_url")
    return FoundPost(str(oldest.get("id")), link if isinstance(link, str) else None)


@dataclass(frozen=True)
class VideoStatus:
    """A video's ``status``: whether its upload finished, whether the publish (``finish``)
    was received, whether it is live, or what went wrong."""

    uploaded: bool
    finish_received: bool
    live: bool
    error: str | None
    body: dict[str, Any]


async def video_status(caller: Caller, video_id: str) -> VideoStatus:
    body = await caller.get("video_status", video_id, {"fields": "status"})
    status = body.get("status") if isinstance(body.get("status"), dict) else {}
    assert isinstance(status, dict)
    uploading = _phase(status, "uploading_phase")
    processing = _phase(status, "processing_phase")
    publishing = _phase(status, "publishing_phase")
    error = None
    if status.get("video_status") in ("error", "upload_failed", "expired"):
        error = str(status.get("video_status"))
    if processing.get("status") == "error":
        detail = processing.get("error")
        error = str(detail.get("message") if isinstance(detail, dict) else "processing failed")
    return VideoStatus(
        uploaded=uploading.get("status") in ("complete", "completed"),
        finish_received=processing.get("status") not in (None, "not_started"),
        live=publishing.get("publish_status") == "published",
        error=error,
        body={"status": status},
    )


def _phase(status: dict[str, Any], name: str) -> dict[str, Any]:
    phase = status.get(name)
    return phase if isinstance(phase, dict) else {}
