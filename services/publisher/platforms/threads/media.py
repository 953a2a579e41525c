"""What a Threads post is made of, decided before any call: the containers to create.

- ``TEXT``: one asset that is neither an image nor a video, without a media type: the text
  with that URL as its ``link_attachment`` (a job carries at least one asset);
- ``IMAGE``: one image; ``VIDEO``: one video (``REELS`` or a video without a media type);
- ``CAROUSEL``: 2 to 10 images or videos (``CAROUSEL``, or several assets), each an item
  container (``is_carousel_item``), then the parent with ``children``.

Threads counts 500 characters, each emoji as its UTF-8 bytes, and refuses more than five
distinct links; both are checked here, before any container exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from herald.shared.domain.platforms import MAX_ASSETS, is_image, is_video

TEXT_LIMIT = 500
LINK_LIMIT = 5
_URL = re.compile(r"https?://\S+")


class PlanError(ValueError):
    """The request cannot be published as asked (a permanent error)."""


@dataclass(frozen=True)
class Plan:
    kind: str
    container: dict[str, str]
    children: tuple[dict[str, str], ...] = ()


def text_length(text: str) -> int:
    """Threads' count: characters, with each emoji counted as its UTF-8 bytes."""
    return sum(len(ch.encode()) if _is_emoji(ch) else 1 for ch in text)


def _is_emoji(ch: str) -> bool:
    code = ord(ch)
    return code >= 0x1F000 or 0x2600 <= code <= 0x27BF


def plan_post(assets: Sequence[str], caption: str, media_type: str | None) -> Plan:
    count = len(assets)
    if not 1 <= count <= MAX_ASSETS:
        raise PlanError(f"a Threads post takes 1 to {MAX_ASSETS} assets, got {count}")
    if text_length(caption) > TEXT_LIMIT:
        raise PlanError(
            f"Threads text is at most {TEXT_LIMIT} characters (emojis count as their bytes), "
            f"got {text_length(caption)}"
        )
    kind = (media_type or "").upper()
    texted = {"text": caption} if caption else {}
    if kind == "STORIES":
        raise PlanError("Threads has no stories")
    if kind == "CAROUSEL" or count > 1:
        if count < 2:
            raise PlanError(f"a CAROUSEL needs 2 to {MAX_ASSETS} assets, got {count}")
        children = tuple(_item(url) for url in assets)
        return Plan("CAROUSEL", {"media_type": "CAROUSEL", **texted}, children)
    url = assets[0]
    if kind == "REELS" or (not kind and is_video(url)):
        if not is_video(url):
            raise PlanError("REELS takes one video asset (.mp4/.mov)")
        return Plan("VIDEO", {"media_type": "VIDEO", "video_url": url, **texted})
    if kind == "IMAGE" or is_image(url):
        if is_video(url):
            raise PlanError("IMAGE was given a video asset (.mp4/.mov)")
        return Plan("IMAGE", {"media_type": "IMAGE", "image_url": url, **texted})
    if not caption:
        raise PlanError("a Threads text post needs text")
    links = set(_URL.findall(caption)) | {url}
    if len(links) > LINK_LIMIT:
        raise PlanError(f"Threads allows at most {LINK_LIMIT} distinct links, got {len(links)}")
    return Plan("TEXT", {"media_type": "TEXT", "text": caption, "link_attachment": url})


def _item(url: str) -> dict[str, str]:
    if is_video(url):
        return {"media_type": "VIDEO", "video_url": url, "is_carousel_item": "true"}
    return {"media_type": "IMAGE", "image_url": url, "is_carousel_item": "true"}
