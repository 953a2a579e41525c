"""Telling an image asset from a video and from a web page, by the URL's path."""

from __future__ import annotations

from urllib.parse import urlparse

from herald.platforms import is_video

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tiff", ".tif", ".webp")

__all__ = ["is_image", "is_video"]


def is_image(url: str) -> bool:
    return urlparse(url).path.lower().endswith(IMAGE_EXTENSIONS)
