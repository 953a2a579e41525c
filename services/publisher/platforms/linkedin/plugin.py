"""The `linkedin` plugin's declaration: posts for a LinkedIn member or organisation,
registered under `herald.platforms`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.platforms import (
    AccountRules,
    CaptionLimits,
    Connection,
    IssuedToken,
    MediaKind,
    MediaRules,
    MetadataField,
    Platform,
    PlatformEnv,
    PlatformPublisher,
    RateLimit,
    TokenRules,
)

MAX_IMAGES = 20  # a multi-image post: 2 to 20
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# The Videos API's limits: MP4 only, 75 KB to 500 MB, 3 s to 30 min.
MIN_VIDEO_BYTES, MAX_VIDEO_BYTES = 75 * 1024, 500 * 1024 * 1024
MIN_VIDEO_SECONDS, MAX_VIDEO_SECONDS = 3.0, 1800.0


class LinkedIn(Platform):
    name = "linkedin"
    title = "LinkedIn"
    media = MediaRules(
        kinds=(
            MediaKind("TEXT", min_assets=0, max_assets=0),
            MediaKind("IMAGE", video=False),
            MediaKind("MULTI_IMAGE", min_assets=2, max_assets=MAX_IMAGES, video=False),
            MediaKind("VIDEO", min_assets=1, max_assets=1, video=True, extensions=(".mp4",)),
        ),
        max_assets=MAX_IMAGES,
        caption=CaptionLimits(chars=3000),  # `commentary`, before little-format escaping
        max_image_bytes=MAX_IMAGE_BYTES,
        max_video_bytes=MAX_VIDEO_BYTES,
    )
    account = AccountRules(
        metadata=(
            MetadataField(
                "author",
                r"urn:li:(person|organization):[A-Za-z0-9_-]{1,64}",
                "who posts: urn:li:person:<id> or urn:li:organization:<id>",
            ),
            MetadataField(
                "refreshable",
                r"true|false",
                "whether LinkedIn issued a refresh token (approved partners only)",
                required=False,
            ),
        )
    )
    # Access tokens last 60 days; refresh a week ahead (refresh tokens: partners only).
    token = TokenRules(refreshable=True, refresh_before_seconds=7 * 86400, min_age_seconds=0)
    # Quotas are per app and member per day, unpublished: a gentle pace per account.
    rate_limit = RateLimit(rate_per_second=0.5, burst=3.0)
    oauth = True
    oauth_settings = ("linkedin_client_id", "linkedin_client_secret")

    def account_key(self, connection: Connection) -> str:
        return str(connection.metadata.get("author") or connection.id)

    def refreshes(self, metadata: Mapping[str, Any], token: str) -> bool:
        from herald.services.publisher.platforms.rest.oauth2 import unpack

        return unpack(token)[1] is not None  # a refresh token (approved partners only)

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        from herald.services.publisher.platforms.linkedin import LinkedInPublisher

        return LinkedInPublisher(env.settings.linkedin_api_url, env.settings.linkedin_version)

    async def refresh_token(self, env: PlatformEnv, connection: Connection) -> IssuedToken:
        from herald.services.publisher.platforms.linkedin.tokens import refresh

        return await refresh(env.settings, connection.access_token)

    def consent_url(self, env: PlatformEnv, *, state: str, redirect_uri: str) -> str:
        from herald.services.publisher.platforms.linkedin.tokens import consent_url

        return consent_url(env.settings, state=state, redirect_uri=redirect_uri)

    async def exchange_code(
        self,
        env: PlatformEnv,
        *,
        code: str,
        redirect_uri: str,
        metadata: Mapping[str, Any],
    ) -> IssuedToken:
        from herald.services.publisher.platforms.linkedin.tokens import exchange

        return await exchange(env.settings, code=code, redirect_uri=redirect_uri)
