"""The `bluesky` plugin's declaration: publishing to a Bluesky (AT Protocol) account with an
app password, registered under `herald.platforms`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.platforms import (
    AccountRules,
    CaptionLimits,
    Connection,
    MediaKind,
    MediaRules,
    MetadataField,
    Platform,
    PlatformEnv,
    PlatformPublisher,
    RateLimit,
    host_errors,
)
from herald.services.publisher.platforms.bluesky.text import MAX_GRAPHEMES, grapheme_count

DEFAULT_PDS = "https://bsky.social"
DEFAULT_VIDEO = "https://video.bsky.app"  # the video service every PDS's accounts upload to
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000  # the images embed's blob size the PDS enforces at createRecord
MAX_VIDEO_BYTES = 100_000_000  # the video embed's blob size (the documented 100 MB)
MAX_VIDEO_SECONDS = 180.0  # the video service refuses longer videos
LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
HANDLE = rf"(did:(plc|web):[a-zA-Z0-9._:%-]{{1,2000}})|({LABEL}\.)+{LABEL}"


class Bluesky(Platform):
    name = "bluesky"
    title = "Bluesky"
    media = MediaRules(
        kinds=(
            MediaKind("TEXT", min_assets=0, max_assets=0),
            MediaKind("IMAGE", min_assets=1, max_assets=MAX_IMAGES, video=False),
            MediaKind("VIDEO", min_assets=1, max_assets=1, video=True),
        ),
        max_assets=MAX_IMAGES,
        # 300 graphemes (`caption_length`), checked when a job is scheduled; the 3,000
        # UTF-8 bytes only a caption of long emoji sequences reaches, by the publisher.
        caption=CaptionLimits(chars=MAX_GRAPHEMES, unit="graphemes"),
        max_image_bytes=MAX_IMAGE_BYTES,
        max_video_bytes=MAX_VIDEO_BYTES,
    )
    # The token is an app password (xxxx-xxxx-xxxx-xxxx), exchanged for a session.
    account = AccountRules(
        metadata=(
            MetadataField("identifier", HANDLE, "the account's handle or DID"),
            MetadataField(
                "pdsUrl", r"https?://\S{1,2000}", "the https URL of the account's PDS", False
            ),
            MetadataField(
                "videoUrl", r"https?://\S{1,2000}", "the https URL of the video service", False
            ),
        ),
        token_pattern=r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}",
        token_rule="must be a Bluesky app password (xxxx-xxxx-xxxx-xxxx)",
    )
    # 5,000 write points an hour per account, a post costs 3: well under one a second.
    rate_limit = RateLimit(rate_per_second=0.4, burst=5.0)

    def caption_length(self, caption: str) -> int:
        return grapheme_count(caption)

    def check_metadata(self, metadata: Mapping[str, Any]) -> dict[str, str]:
        return host_errors(metadata, "pdsUrl") | host_errors(metadata, "videoUrl")

    def account_key(self, connection: Connection) -> str:
        who = connection.metadata.get("identifier")
        return f"{pds_url(connection.metadata)}|{who}" if isinstance(who, str) else connection.id

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        from herald.services.publisher.platforms.bluesky import BlueskyPublisher

        return BlueskyPublisher()


def pds_url(metadata: Mapping[str, Any]) -> str:
    url = metadata.get("pdsUrl")
    return url.rstrip("/") if isinstance(url, str) and url else DEFAULT_PDS


def video_url(metadata: Mapping[str, Any]) -> str:
    url = metadata.get("videoUrl")
    return url.rstrip("/") if isinstance(url, str) and url else DEFAULT_VIDEO
