"""What a Facebook Pages post is made of, decided before any Graph call.

The job's ``media_type`` (the kinds the plugin declares) or, without one, its assets decide:

- ``IMAGE`` (one image) and ``CAROUSEL`` (2 to 10 images): photos uploaded unpublished,
  then one feed post with them as ``attached_media`` (several images without a media type
  too);
- ``REELS``: one video through ``video_reels`` (start, upload, finish);
- ``VIDEO``: one video through ``/videos`` with ``file_url`` (a video without a media type);
- ``LINK``: a feed post with the asset as its ``link`` (one asset that is neither an image nor
  a video, without a media type).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from herald.services.publisher.platforms.meta.media import is_image, is_video

MAX_PHOTOS = 10  # per post: not documented by Meta; the clients people use cap it at 10
PHOTOS, REEL, VIDEO, LINK = "PHOTOS", "REEL", "VIDEO", "LINK"


class PlanError(ValueError):
    """The request cannot be published as asked (a permanent error)."""


@dataclass(frozen=True)
class Plan:
    kind: str
    urls: tuple[str, ...]


def plan_post(assets: Sequence[str], media_type: str | None) -> Plan:
    count = len(assets)
    if not 1 <= count <= MAX_PHOTOS:
        raise PlanError(f"a Facebook post takes 1 to {MAX_PHOTOS} assets, got {count}")
    urls = tuple(assets)
    videos = [u for u in urls if is_video(u)]
    kind = (media_type or "").upper()
    if not kind:
        one = urls[0]
        kind = (
            "CAROUSEL" if count > 1 else "VIDEO" if videos else "IMAGE" if is_image(one) else "LINK"
        )
    if kind in ("REELS", "VIDEO", "LINK") and count != 1:
        raise PlanError(f"{kind} takes exactly one asset, got {count}")
    if kind in ("REELS", "VIDEO"):
        if not videos:
            raise PlanError(f"{kind} takes one video asset (.mp4/.mov)")
        return Plan(REEL if kind == "REELS" else VIDEO, urls)
    if kind == "LINK":
        return Plan(LINK, urls)
    if kind not in ("IMAGE", "CAROUSEL"):
        raise PlanError(f"unknown Facebook media_type {media_type!r}")
    if videos:
        raise PlanError("a Facebook photo post takes images only; post a video on its own")
    if kind == "IMAGE" and count != 1:
        raise PlanError(f"IMAGE takes exactly one asset, got {count}")
    if kind == "CAROUSEL" and count < 2:
        raise PlanError(f"a CAROUSEL needs 2 to {MAX_PHOTOS} images, got {count}")
    return Plan(PHOTOS, urls)
