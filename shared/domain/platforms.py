"""The vocabulary the platforms share: their names, the media a job may carry, the caption
limits each one sets, and a connection's states."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

PLATFORMS = ("instagram", "sandbox")
CONNECTION_STATUSES = ("active", "needs_reauth", "disabled")
MEDIA_TYPES = ("IMAGE", "CAROUSEL", "REELS", "STORIES")
VIDEO_EXTENSIONS = (".mp4", ".mov")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tiff", ".tif", ".webp")
MAX_ASSETS = 10  # media per job (an Instagram carousel's limit)


@dataclass(frozen=True)
class CaptionLimits:
    chars: int
    hashtags: int | None = None
    mentions: int | None = None


CAPTION_LIMITS = {
    "instagram": CaptionLimits(chars=2200, hashtags=30, mentions=20),
    "sandbox": CaptionLimits(chars=2200),
}


def is_video(url: str) -> bool:
    """A video asset, by the extension of its URL's path."""
    return urlparse(url).path.lower().endswith(VIDEO_EXTENSIONS)


def is_image(url: str) -> bool:
    """An image asset, by the extension of its URL's path."""
    return urlparse(url).path.lower().endswith(IMAGE_EXTENSIONS)
