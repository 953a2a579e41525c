"""Pure validation of a job request. Raises ValidationFailed naming every bad field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import ValidationFailed

PLATFORMS = ("instagram", "sandbox")
MEDIA_TYPES = ("IMAGE", "CAROUSEL", "REELS", "STORIES")
VIDEO_EXTENSIONS = (".mp4", ".mov")
MAX_ASSETS = 10


@dataclass(frozen=True)
class CaptionLimits:
    chars: int
    hashtags: int | None = None
    mentions: int | None = None


CAPTION_LIMITS = {
    "instagram": CaptionLimits(chars=2200, hashtags=30, mentions=20),
    "sandbox": CaptionLimits(chars=2200),
}
_HASHTAG = re.compile(r"(?<![\w#])#\w+")
_MENTION = re.compile(r"(?<![\w@])@[\w.]+")


@dataclass(frozen=True)
class JobInput:
    platform: str
    connection_ids: list[str]
    multi: bool
    media_asset_ids: list[str]
    caption: str
    media_type: str | None
    scheduled_at: datetime
    publish_deadline: datetime
    deadline_explicit: bool
    tenant_id: str | None


def has_nul(value: Any) -> bool:
    """True when any text in `value`, keys included, holds a NUL character (walked without
    recursion: a body nested hundreds deep is an answer, not a RecursionError)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_instant(value: Any, field: str, errors: dict[str, str]) -> datetime | None:
    """RFC 3339 with an offset; naive times are refused (no silent timezone shifts)."""
    if value is None:
        return None
    if not isinstance(value, str):
        errors[field] = "must be an RFC 3339 string with an offset"
        return None
    text = value.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", text):
        errors[field] = "must be an RFC 3339 date-time, e.g. 2026-05-01T09:30:00+02:00"
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        errors[field] = "is not a valid RFC 3339 date-time"
        return None
    if parsed.tzinfo is None:
        errors[field] = "must carry a UTC offset (e.g. Z or +02:00); naive times are refused"
        return None
    return parsed.astimezone(UTC)


def check_media(urls: Any, media_type: str | None, errors: dict[str, str]) -> list[str]:
    if not isinstance(urls, list) or not urls:
        errors["media_asset_ids"] = f"must be a list of 1 to {MAX_ASSETS} https URLs"
        return []
    if len(urls) > MAX_ASSETS:
        errors["media_asset_ids"] = f"at most {MAX_ASSETS} assets, got {len(urls)}"
        return []
    for i, url in enumerate(urls):
        if not isinstance(url, str) or not re.match(r"^https://[^\s/]+\S*$", url):
            errors["media_asset_ids"] = f"item {i} must be an https URL"
            return []
        if len(url) > 2048:
            errors["media_asset_ids"] = f"item {i} is longer than 2048 characters"
            return []
    if media_type == "CAROUSEL" and not 2 <= len(urls) <= MAX_ASSETS:
        errors["media_asset_ids"] = "a CAROUSEL needs 2 to 10 assets"
    if media_type in ("IMAGE", "REELS", "STORIES") and len(urls) != 1:
        errors["media_asset_ids"] = f"{media_type} takes exactly one asset"
    if media_type == "REELS" and not urls[0].lower().split("?")[0].endswith(VIDEO_EXTENSIONS):
        errors["media_asset_ids"] = "REELS needs a video asset (.mp4 or .mov)"
    return list(urls)


def check_caption(platform: str, caption: Any, errors: dict[str, str]) -> str:
    if caption is None:
        return ""
    if not isinstance(caption, str):
        errors["caption"] = "must be a string"
        return ""
    limits = CAPTION_LIMITS.get(platform)
    if limits is None:
        return caption
    if len(caption) > limits.chars:
        errors["caption"] = f"at most {limits.chars} characters on {platform}, got {len(caption)}"
    elif limits.hashtags is not None and len(_HASHTAG.findall(caption)) > limits.hashtags:
        errors["caption"] = f"at most {limits.hashtags} hashtags on {platform}"
    elif limits.mentions is not None and len(_MENTION.findall(caption)) > limits.mentions:
        errors["caption"] = f"at most {limits.mentions} @mentions on {platform}"
    return caption


def validate_job(body: Any, *, now: datetime, missed_after_seconds: float) -> JobInput:
    """Check a job body (API shape); connection ownership is checked by the service."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", fields={"$": "not an object"})
    errors: dict[str, str] = {}
    for key, value in body.items():
        if has_nul(value):
            errors[key] = "must not contain NUL characters"
    if errors:
        raise ValidationFailed("text with NUL characters", fields=errors)

    platform = body.get("platform")
    if platform not in PLATFORMS:
        errors["platform"] = f"must be one of {', '.join(PLATFORMS)}"
    single, several = body.get("connection_id"), body.get("connection_ids")
    connection_ids: list[str] = []
    if (single is None) == (several is None):
        errors["connection_id"] = "give exactly one of connection_id or connection_ids"
    elif single is not None:
        if not isinstance(single, str) or not single:
            errors["connection_id"] = "must be a connection id"
        else:
            connection_ids = [single]
    elif (
        not isinstance(several, list)
        or not several
        or not all(isinstance(c, str) and c for c in several)
    ):
        errors["connection_ids"] = "must be a non-empty list of connection ids"
    elif len(set(several)) != len(several):
        errors["connection_ids"] = "must not repeat a connection"
    else:
        connection_ids = list(several)

    media_type = body.get("media_type")
    if media_type is not None and media_type not in MEDIA_TYPES:
        errors["media_type"] = f"must be one of {', '.join(MEDIA_TYPES)}"
        media_type = None
    media = check_media(body.get("media_asset_ids"), media_type, errors)
    caption = check_caption(str(platform), body.get("caption"), errors)

    scheduled = parse_instant(body.get("scheduled_at"), "scheduled_at", errors)
    deadline = parse_instant(body.get("publish_deadline"), "publish_deadline", errors)
    tenant_id = body.get("tenant_id")
    if tenant_id is not None and (not isinstance(tenant_id, str) or not tenant_id):
        errors["tenant_id"] = "must be a non-empty string"
    if errors:
        raise ValidationFailed("the job is invalid", fields=errors)

    scheduled_at = scheduled if scheduled is not None and scheduled > now else now
    if deadline is not None and deadline <= scheduled_at:
        raise ValidationFailed(
            "publish_deadline must be after scheduled_at",
            fields={"publish_deadline": "must be after scheduled_at"},
        )
    return JobInput(
        platform=str(platform),
        connection_ids=connection_ids,
        multi=several is not None,
        media_asset_ids=media,
        caption=caption,
        media_type=media_type,
        scheduled_at=scheduled_at,
        publish_deadline=deadline or scheduled_at + timedelta(seconds=missed_after_seconds),
        deadline_explicit=deadline is not None,
        tenant_id=tenant_id,
    )
