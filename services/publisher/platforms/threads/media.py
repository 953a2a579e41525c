"""What a Threads post is made of, decided before any call: the containers to create.

- ``TEXT``: the text alone, or with one asset as its ``link_attachment`` (also one asset that
  is neither an image nor a video, without a media type);
- ``IMAGE``: one image; ``VIDEO``: one video (also a video without a media type);
- ``CAROUSEL``: 2 to 20 images or videos (also several assets without a media type), each an
  item container (``is_carousel_item``), then the parent with ``children``.

Threads counts 500 characters, each emoji as its UTF-8 bytes, and refuses more than five
distinct links; both are checked here, before any container exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from herald.services.publisher.platforms.meta.media import is_image, is_video

MAX_ITEMS = 20  # a carousel's children
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
    if count > MAX_ITEMS:
        raise PlanError(f"a Threads post takes at most {MAX_ITEMS} assets, got {count}")
    if text_length(caption) > TEXT_LIMIT:
        raise PlanError(
            f"Threads text is at most {TEXT_LIMIT} characters (emojis count as their bytes), "
            f"got {text_length(caption)}"
        )
    kind = (media_type or "").upper()
    if not kind:
        kind = _kind_of(assets)
    texted = {"text": caption} if caption else {}
    if kind == "TEXT":
        return _text(assets, caption)
    if kind == "CAROUSEL":
        if count < 2:
            raise PlanError(f"a CAROUSEL needs 2 to {MAX_ITEMS} assets, got {count}")
        children = tuple(_item(url) for url in assets)
        return Plan("CAROUSEL", {"media_type": "CAROUSEL", **texted}, children)
    if kind not in ("IMAGE", "VIDEO"):
        raise PlanError(f"unknown Threads media_type {media_type!r}")
    if count != 1 or is_video(assets[0]) != (kind == "VIDEO"):
        raise PlanError(f"{kind} takes exactly one {kind.lower()} asset")
    url_param = "video_url" if kind == "VIDEO" else "image_url"
    return Plan(kind, {"media_type": kind, url_param: assets[0], **texted})


def _kind_of(assets: Sequence[str]) -> str:
    if len(assets) > 1:
        return "CAROUSEL"
    one = assets[0] if assets else ""
    return "VIDEO" if is_video(one) else "IMAGE" if is_image(one) else "TEXT"


def _text(assets: Sequence[str], caption: str) -> Plan:
    if not caption.strip():
        raise PlanError("a Threads text post needs text")
    if len(assets) > 1:
        raise PlanError(f"TEXT takes at most one asset (its link), got {len(assets)}")
    links = set(_URL.findall(caption)) | set(assets)
    if len(links) > LINK_LIMIT:
        raise PlanError(f"Threads allows at most {LINK_LIMIT} distinct links, got {len(links)}")
    link = {"link_attachment": assets[0]} if assets else {}
    return Plan("TEXT", {"media_type": "TEXT", "text": caption, **link})


def _item(url: str) -> dict[str, str]:
    if is_video(url):
        return {"media_type": "VIDEO", "video_url": url, "is_carousel_item": "true"}
    return {"media_type": "IMAGE", "image_url": url, "is_carousel_item": "true"}
