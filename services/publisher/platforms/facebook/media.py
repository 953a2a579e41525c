"""What a Facebook Pages post is made of, decided before any Graph call.

- ``PHOTOS``: one to ten images (``IMAGE``, ``CAROUSEL``, or images without a media type),
  each uploaded unpublished, then one feed post with them as ``attached_media``;
- ``REEL``: one video with ``REELS`` (``video_reels``: start, upload, finish);
- ``VIDEO``: one video without a media type (``/videos`` with ``file_url``);
- ``LINK``: one asset that is neither an image nor a video, without a media type: a feed
  post with that ``link``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from herald.shared.domain.platforms import MAX_ASSETS, is_image, is_video

PHOTOS, REEL, VIDEO, LINK = "PHOTOS", "REEL", "VIDEO", "LINK"


class PlanError(ValueError):
    """The request cannot be published as asked (a permanent error)."""


@dataclass(frozen=True)
class Plan:
    kind: str
    urls: tuple[str, ...]


def plan_post(assets: Sequence[str], media_type: str | None) -> Plan:
    count = len(assets)
    if not 1 <= count <= MAX_ASSETS:
        raise PlanError(f"a Facebook post takes 1 to {MAX_ASSETS} assets, got {count}")
    urls = tuple(assets)
    kind = (media_type or "").upper()
    videos = [u for u in urls if is_video(u)]
    if kind == "STORIES":
        raise PlanError("Herald does not publish Facebook stories")
    if kind == "REELS":
        if count != 1 or not videos:
            raise PlanError("REELS takes exactly one video asset (.mp4/.mov)")
        return Plan(REEL, urls)
    if kind in ("IMAGE", "CAROUSEL") or count > 1:
        if videos:
            raise PlanError("a Facebook photo post takes images only; post a video on its own")
        if kind == "IMAGE" and count != 1:
            raise PlanError(f"IMAGE takes exactly one asset, got {count}")
        if kind == "CAROUSEL" and count < 2:
            raise PlanError(f"a CAROUSEL needs 2 to {MAX_ASSETS} images, got {count}")
        return Plan(PHOTOS, urls)
    if videos:
        return Plan(VIDEO, urls)
    return Plan(PHOTOS if is_image(urls[0]) else LINK, urls)
