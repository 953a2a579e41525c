"""Which containers a request needs (reference §2 to §5), decided before any Graph call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from herald.platforms import is_video
from herald.services.publisher.platforms.instagram.plugin import MAX_ITEMS, Instagram

MAX_CAROUSEL_ITEMS = MAX_ITEMS
MEDIA_TYPES = tuple(kind.name for kind in Instagram.media.kinds)


class PlanError(ValueError):
    """The request cannot be published as asked (a permanent error)."""


@dataclass(frozen=True)
class MediaPlan:
    """``container`` is the single container, or the carousel parent (``children`` added later
    as their ids); ``children`` are the carousel items' create parameters."""

    media_type: str
    container: dict[str, str]
    children: tuple[dict[str, str], ...] = ()


def plan_media(assets: Sequence[str], caption: str, media_type: str | None) -> MediaPlan:
    """Omitted ``media_type``: IMAGE for one image, REELS for one video (.mp4/.mov), CAROUSEL
    for 2 to 10 assets with children typed by extension. STORIES takes exactly one image or
    video and no caption (Instagram stories have none)."""
    count = len(assets)
    if not 1 <= count <= MAX_CAROUSEL_ITEMS:
        raise PlanError(f"Instagram takes 1 to {MAX_CAROUSEL_ITEMS} assets, got {count}")
    kind = (media_type or "").upper() or None
    if kind is None:
        kind = "CAROUSEL" if count > 1 else ("REELS" if is_video(assets[0]) else "IMAGE")
    if kind not in MEDIA_TYPES:
        raise PlanError(f"unknown Instagram media_type {media_type!r}")
    captioned = {"caption": caption} if caption else {}
    if kind == "CAROUSEL":
        if count < 2:
            raise PlanError(f"a CAROUSEL needs 2 to {MAX_CAROUSEL_ITEMS} assets, got {count}")
        children = tuple(_carousel_item(url) for url in assets)
        return MediaPlan(kind, {"media_type": "CAROUSEL", **captioned}, children)
    if count != 1:
        raise PlanError(f"media_type {kind} takes exactly one asset, got {count}")
    url = assets[0]
    video = is_video(url)
    if kind == "IMAGE":
        if video:
            raise PlanError("media_type IMAGE was given a video asset (.mp4/.mov)")
        return MediaPlan(kind, {"image_url": url, **captioned})
    if kind == "REELS":
        if not video:
            raise PlanError("media_type REELS needs one video asset (.mp4/.mov)")
        return MediaPlan(kind, {"media_type": "REELS", "video_url": url, **captioned})
    url_param = "video_url" if video else "image_url"
    return MediaPlan(kind, {"media_type": "STORIES", url_param: url})


def _carousel_item(url: str) -> dict[str, str]:
    if is_video(url):
        return {"media_type": "VIDEO", "video_url": url, "is_carousel_item": "true"}
    return {"image_url": url, "is_carousel_item": "true"}
