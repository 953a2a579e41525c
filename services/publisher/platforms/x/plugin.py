"""The `x` plugin's declaration: posts to an X account, registered under
`herald.platforms`."""

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

MAX_IMAGES = 4


class X(Platform):
    name = "x"
    title = "X"
    media = MediaRules(
        kinds=(
            MediaKind("TEXT", min_assets=0, max_assets=0),
            MediaKind("IMAGE", min_assets=1, max_assets=MAX_IMAGES, video=False),
            MediaKind("VIDEO", video=True),
        ),
        max_assets=MAX_IMAGES,
        caption=CaptionLimits(chars=280, unit="weighted characters"),  # `caption_length`
        max_image_bytes=5 * 1024 * 1024,
        max_video_bytes=512 * 1024 * 1024,
    )
    account = AccountRules(
        metadata=(
            MetadataField("userId", r"[0-9]{1,20}", "the X account's numeric id"),
            MetadataField("username", r"[A-Za-z0-9_]{0,15}", "the @handle", required=False),
        )
    )
    # Access tokens last 2 hours: refreshed half an hour ahead; each refresh rotates.
    token = TokenRules(refreshable=True, refresh_before_seconds=1800, min_age_seconds=0)
    # POST /2/tweets: 100 per 15 minutes per user: that pace, and half a window at once.
    rate_limit = RateLimit(rate_per_second=100 / 900, burst=50.0)
    oauth = True
    oauth_settings = ("x_client_id", "x_client_secret")

    def caption_length(self, caption: str) -> int:
        from herald.services.publisher.platforms.x.text import weighted_length

        return weighted_length(caption)

    def account_key(self, connection: Connection) -> str:
        return str(connection.metadata.get("userId") or connection.id)

    def refreshes(self, metadata: Mapping[str, Any], token: str) -> bool:
        from herald.services.publisher.platforms.rest.oauth2 import unpack

        return unpack(token)[1] is not None  # a sign-in without offline.access has none

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        from herald.services.publisher.platforms.x import XPublisher

        return XPublisher(env.settings.x_api_url)

    async def refresh_token(self, env: PlatformEnv, connection: Connection) -> IssuedToken:
        from herald.services.publisher.platforms.x.tokens import refresh

        return await refresh(env.settings, connection.access_token)

    def consent_url(self, env: PlatformEnv, *, state: str, redirect_uri: str) -> str:
        from herald.services.publisher.platforms.x.tokens import consent_url

        return consent_url(env.settings, state=state, redirect_uri=redirect_uri)

    async def exchange_code(
        self,
        env: PlatformEnv,
        *,
        code: str,
        redirect_uri: str,
        metadata: Mapping[str, Any],
    ) -> IssuedToken:
        from herald.services.publisher.platforms.x.tokens import exchange

        return await exchange(env.settings, code=code, redirect_uri=redirect_uri)
