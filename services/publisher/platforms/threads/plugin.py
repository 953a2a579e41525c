"""The `threads` plugin's declaration: publishing to Threads profiles, registered under
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

MAX_ITEMS = 20  # a carousel's children


class Threads(Platform):
    name = "threads"
    title = "Threads"
    media = MediaRules(
        kinds=(
            MediaKind("TEXT", min_assets=0, max_assets=1, video=False),  # the asset: a link
            MediaKind("IMAGE", video=False),
            MediaKind("VIDEO", video=True),
            MediaKind("CAROUSEL", min_assets=2, max_assets=MAX_ITEMS),
        ),
        max_assets=MAX_ITEMS,
        # 500 characters, each emoji counting as its UTF-8 bytes: the publisher checks the
        # exact count before any container exists.
        caption=CaptionLimits(chars=500),
        max_image_bytes=8 * 1024 * 1024,
        max_video_bytes=1024 * 1024 * 1024,
    )
    account = AccountRules(
        metadata=(MetadataField("threadsUserId", r"[0-9]{1,32}", "the Threads user's numeric id"),)
    )
    # Long-lived tokens last 60 days; th_refresh_token renews one at least a day old.
    token = TokenRules(refreshable=True, refresh_before_seconds=10 * 86400, min_age_seconds=86400)
    rate_limit = RateLimit(rate_per_second=1.0, burst=5.0)
    oauth = True
    oauth_settings = ("threads_app_id", "threads_app_secret")

    def account_key(self, connection: Connection) -> str:
        user = connection.metadata.get("threadsUserId")
        return user if isinstance(user, str) and user else connection.id

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        from herald.services.publisher.platforms.meta.throttle import Throttle
        from herald.services.publisher.platforms.threads import ThreadsPublisher

        throttle = Throttle(env.redis, env.names, platform="th")
        return ThreadsPublisher(env.settings.threads_graph_url, throttle=throttle)

    async def refresh_token(self, env: PlatformEnv, connection: Connection) -> IssuedToken:
        from herald.services.publisher.platforms.threads.tokens import refresh

        return await refresh(env.settings, connection.access_token)

    def consent_url(self, env: PlatformEnv, *, state: str, redirect_uri: str) -> str:
        from herald.services.publisher.platforms.threads.tokens import consent_url

        return consent_url(env.settings, state=state, redirect_uri=redirect_uri)

    async def exchange_code(
        self, env: PlatformEnv, *, code: str, redirect_uri: str, metadata: Mapping[str, Any]
    ) -> IssuedToken:
        from herald.services.publisher.platforms.threads.tokens import long_lived_from_code

        return await long_lived_from_code(env.settings, code=code, redirect_uri=redirect_uri)
