"""Pure validation of a job request. Raises ValidationFailed naming every bad field.

Each field's shape (type, length, pattern) is checked with its one definition in
`schemas/definitions.json`, the same definition the topic schemas use, so the HTTP API and
`publish.schedule` accept exactly the same values and nothing the API took can fail on its
way to `publish.request`. Lengths are checked before patterns, and the patterns are
linear-time, so a megabyte-long field is refused in microseconds. The rules that need more
than a field (per-platform caption limits, media type against assets, time windows) follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from herald.shared.errors import ValidationFailed
from herald.shared.messages import codec
from herald.shared.platforms.plugin import MediaRules, is_video
from herald.shared.platforms.registry import platforms

# A client's instant (scheduled_at, publish_deadline) lies within this window around now; a
# past one inside it means "now". Outside it is a mistake (a year typed wrong) or hostile.
MAX_PAST = timedelta(days=7)
MAX_FUTURE = timedelta(days=731)  # two years, a leap day included

# The fields of a job body: the definition each one is checked with, and what a client is
# told when it fails.
_FIELDS = {
    "platform": ("platform", "must be the name of a platform (GET /publishing/platforms)"),
    "connection_id": ("uuid", "must be a connection id (a UUID)"),
    "connection_ids": (None, "must be a non-empty list of connection ids (UUIDs)"),
    "media_asset_ids": (
        "media_asset_ids",
        "must be a list of at most 20 https URLs, each at most 2048 characters"
        " without whitespace or control characters (the platform's counts on top)",
    ),
    "caption": ("caption", "must be a string of at most 65536 characters"),
    "caption_overrides": (
        "caption_overrides",
        "must be an object mapping platform names to captions (each at most 65536 characters)",
    ),
    "media_type": ("media_type", "must be a media type the platform takes, e.g. IMAGE"),
    "scheduled_at": ("instant", "must be an RFC 3339 date-time with an offset"),
    "publish_deadline": ("instant", "must be an RFC 3339 date-time with an offset"),
    "tenant_id": ("tenant_id", "must be 1 to 200 characters without control characters"),
}


_HASHTAG = re.compile(r"(?<![\w#])#\w+")
_MENTION = re.compile(r"(?<![\w@])@[\w.]+")


@dataclass(frozen=True)
class JobInput:
    platform: str | None  # None: each connection's own (several networks in one post)
    connection_ids: list[str]
    multi: bool
    media_asset_ids: list[str]
    caption: str
    media_type: str | None
    scheduled_at: datetime
    publish_deadline: datetime
    deadline_explicit: bool
    tenant_id: str | None
    caption_overrides: dict[str, str] = field(default_factory=dict)

    def caption_for(self, platform: str) -> str:
        """The caption posted on `platform`: its override, else the job's caption."""
        return self.caption_overrides.get(platform, self.caption)


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


def fits(definition: str, value: Any) -> bool:
    """Whether `value` fits a shared field definition (`schemas/definitions.json`)."""
    return bool(codec.definition(definition).is_valid(value))


def parse_instant(value: Any, field: str, errors: dict[str, str]) -> datetime | None:
    """An RFC 3339 date-time with an offset, as a UTC instant; naive times are refused (no
    silent time-zone shifts). Any other value records an error under `field`."""
    if value is None:
        return None
    if not fits("instant", value):
        message = "must be an RFC 3339 date-time with an offset, e.g. 2026-05-01T09:30:00+02:00"
        if isinstance(value, str) and len(value) <= 40 and re.fullmatch(r"[\d:T .-]+", value):
            message = "must carry a UTC offset (e.g. Z or +02:00); naive times are refused"
        errors[field] = message
        return None
    try:
        return codec.instant(value)
    except ValueError:  # a leap second, or year 1 with a positive offset
        errors[field] = "is not a representable date-time"
        return None


def check_instant(
    value: Any, field: str, errors: dict[str, str], *, now: datetime
) -> datetime | None:
    """`parse_instant`, and within [now - 7 days, now + 2 years] (a client's chosen time)."""
    instant = parse_instant(value, field, errors)
    if instant is None:
        return None
    if instant < now - MAX_PAST:
        errors[field] = "must not be more than 7 days in the past"
        return None
    if instant > now + MAX_FUTURE:
        errors[field] = "must not be more than 2 years ahead"
        return None
    return instant


def check_caption(platform: str, caption: Any, errors: dict[str, str], key: str = "caption") -> str:
    """The caption, its limits on `platform` checked (an error goes under `key`)."""
    if caption is None:
        return ""
    if not fits("caption", caption):
        errors[key] = _FIELDS["caption"][1]
        return ""
    if platform not in platforms():
        return str(caption)
    limits = platforms()[platform].media.caption
    length = caption_length(platform, caption)
    if length > limits.chars:
        errors[key] = f"at most {limits.chars} {limits.unit} on {platform}, got {length}"
    elif limits.hashtags is not None and len(_HASHTAG.findall(caption)) > limits.hashtags:
        errors[key] = f"at most {limits.hashtags} hashtags on {platform}"
    elif limits.mentions is not None and len(_MENTION.findall(caption)) > limits.mentions:
        errors[key] = f"at most {limits.mentions} @mentions on {platform}"
    return str(caption)


def caption_length(platform: str, caption: str) -> int:
    """A caption's length as `platform` counts it (its plugin's `caption_length`)."""
    return platforms()[platform].caption_length(caption)


def check_for_platform(
    platform: str, media: list[str], media_type: str | None, caption: str
) -> dict[str, str]:
    """A job's media and caption against one platform's rules (the registry): the checks a
    job naming `platform` gets, and each connection of a job naming none."""
    errors = check_media(platform, platforms()[platform].media, media, media_type)
    check_caption(platform, caption, errors)
    return errors


def caption_counts(platform: Any, caption: Any) -> dict[str, Any] | None:
    """What a caption counts against its platform's limits (None: not a known platform or
    not text): the counts `check_caption` applies, for a client to show as one types."""
    if platform not in platforms() or not isinstance(caption, str):
        return None
    limits = platforms()[platform].media.caption
    return {
        "chars": caption_length(platform, caption),
        "max_chars": limits.chars,
        "hashtags": len(_HASHTAG.findall(caption)),
        "max_hashtags": limits.hashtags,
        "mentions": len(_MENTION.findall(caption)),
        "max_mentions": limits.mentions,
    }


def check_media(
    platform: str, rules: MediaRules, urls: list[str], media_type: str | None
) -> dict[str, str]:
    """The media against what the platform declares it takes (the registry)."""
    if media_type is None:
        if not rules.default_kind_allowed:
            return {"media_type": f"is required on {platform}"}
        if not 1 <= len(urls) <= rules.max_assets:
            return {"media_asset_ids": f"1 to {rules.max_assets} assets on {platform}"}
        return {}
    kind = rules.kind(media_type)
    if kind is None:
        names = ", ".join(k.name for k in rules.kinds)
        return {"media_type": f"must be one of {names} on {platform}"}
    if not kind.min_assets <= len(urls) <= kind.max_assets:
        count = (
            f"exactly {kind.min_assets}"
            if kind.min_assets == kind.max_assets
            else f"{kind.min_assets} to {kind.max_assets}"
        )
        noun = "asset" if kind.max_assets == 1 else "assets"
        return {"media_asset_ids": f"{media_type} takes {count} {noun} on {platform}"}
    if kind.video is True and not all(is_video(u, kind.extensions) for u in urls):
        exts = " or ".join(kind.extensions)
        return {"media_asset_ids": f"{media_type} needs video assets ({exts}) on {platform}"}
    if kind.video is False and any(is_video(u) for u in urls):
        return {"media_asset_ids": f"{media_type} takes images, not videos (.mp4 or .mov)"}
    return {}


def _check_shapes(body: dict[str, Any], errors: dict[str, str]) -> None:
    for key in body:
        if key not in _FIELDS:
            errors[key] = f"unknown field; a job takes {', '.join(sorted(_FIELDS))}"
    for key, (definition, message) in _FIELDS.items():
        value = body.get(key)
        if value is None or definition is None or key in errors:
            continue
        if not fits(definition, value):
            errors[key] = message
    several = body.get("connection_ids")
    if several is not None and (
        not isinstance(several, list) or not several or not all(fits("uuid", c) for c in several)
    ):
        errors["connection_ids"] = _FIELDS["connection_ids"][1]
    known = platforms()
    if body.get("platform") is not None and body.get("platform") not in known:
        errors["platform"] = f"must be one of {', '.join(known)}"


def validate_job(body: Any, *, now: datetime, missed_after_seconds: float) -> JobInput:
    """Check a job body (API shape); connection ownership is checked by the service."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", fields={"$": "not an object"})
    errors: dict[str, str] = {}
    for key, value in body.items():
        if has_nul(key) or has_nul(value):
            errors[str(key)] = "must not contain NUL characters"
    if errors:
        raise ValidationFailed("text with NUL characters", fields=errors)
    _check_shapes(body, errors)

    platform = body.get("platform")
    single, several = body.get("connection_id"), body.get("connection_ids")
    if (single is None) == (several is None):
        errors["connection_id"] = "give exactly one of connection_id or connection_ids"
    elif (
        several is not None and "connection_ids" not in errors and len(set(several)) != len(several)
    ):
        errors["connection_ids"] = "must not repeat a connection"
    media = body.get("media_asset_ids")
    if media is None:
        errors["media_asset_ids"] = _FIELDS["media_asset_ids"][1]
    elif platform is not None and not {"media_asset_ids", "media_type", "platform"} & set(errors):
        rules = platforms()[str(platform)].media
        errors.update(check_media(str(platform), rules, media, body.get("media_type")))
    # Without a platform, each connection's network checks media and caption (scheduling).
    caption = ""
    if "caption" not in errors:
        caption = check_caption(str(platform or ""), body.get("caption"), errors)
    overrides = _check_overrides(body.get("caption_overrides"), platform, errors)
    scheduled = deadline = None
    if "scheduled_at" not in errors:
        scheduled = check_instant(body.get("scheduled_at"), "scheduled_at", errors, now=now)
    if "publish_deadline" not in errors:
        deadline = check_instant(body.get("publish_deadline"), "publish_deadline", errors, now=now)
    if errors:
        raise ValidationFailed("the job is invalid", fields=errors)

    scheduled_at = scheduled if scheduled is not None and scheduled > now else now
    if deadline is not None and deadline <= scheduled_at:
        raise ValidationFailed(
            "publish_deadline must be after scheduled_at",
            fields={"publish_deadline": "must be after scheduled_at"},
        )
    assert isinstance(media, list)
    connection_ids: list[str] = [str(single)] if several is None else several
    return JobInput(
        platform=None if platform is None else str(platform),
        connection_ids=connection_ids,
        multi=several is not None,
        media_asset_ids=list(media),
        caption=caption,
        media_type=body.get("media_type"),
        scheduled_at=scheduled_at,
        publish_deadline=deadline or scheduled_at + timedelta(seconds=missed_after_seconds),
        deadline_explicit=deadline is not None,
        tenant_id=body.get("tenant_id"),
        caption_overrides=overrides,
    )


def _check_overrides(value: Any, platform: Any, errors: dict[str, str]) -> dict[str, str]:
    """`caption_overrides`: each key a registered platform (the job's own, when it names
    one), each caption within that platform's limits."""
    if value is None or "caption_overrides" in errors:
        return {}
    found: dict[str, str] = {}
    for name, caption in value.items():
        key = f"caption_overrides.{name}"
        if name not in platforms():
            errors[key] = f"must be one of {', '.join(platforms())}"
        elif platform is not None and name != platform:
            errors[key] = f"the job is for {platform} only"
        else:
            found[name] = check_caption(name, caption, errors, key)
    return found
