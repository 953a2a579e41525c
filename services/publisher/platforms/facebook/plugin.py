"""The `facebook` plugin's declaration: publishing to Facebook Pages with a Page access
token, registered under `herald.platforms`."""

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

MAX_PHOTOS = 10
# Meta documents no limit for a Page post's text; the clients people use allow 63,206.
TEXT_LIMIT = 63_206


class FacebookPages(Platform):
    name = "facebook"
    title = "Facebook Pages"
    media = MediaRules(
        kinds=(
            MediaKind("IMAGE", video=False),
            MediaKind("CAROUSEL", min_assets=2, max_assets=MAX_PHOTOS, video=False),
            MediaKind("LINK", video=False),
            MediaKind("VIDEO", video=True),
            MediaKind("REELS", video=True),
        ),
        max_assets=MAX_PHOTOS,
        caption=CaptionLimits(chars=TEXT_LIMIT),
        max_image_bytes=10 * 1024 * 1024,
        max_video_bytes=2 * 1024 * 1024 * 1024,
    )
    account = AccountRules(
        metadata=(MetadataField("pageId", r"[0-9]{1,32}", "the Page's numeric id"),)
    )
    # A Page token taken from a long-lived user token has no expiry date: nothing to refresh.
    # A Page token that stops working (190) holds the connection until someone signs in again.
    token = TokenRules(refreshable=False)
    rate_limit = RateLimit(rate_per_second=1.0, burst=5.0)
    oauth = True
    oauth_settings = ("meta_app_id", "meta_app_secret")

    def account_key(self, connection: Connection) -> str:
        page = connection.metadata.get("pageId")
        return page if isinstance(page, str) and page else connection.id

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        from herald.services.publisher.platforms.facebook import FacebookPublisher
        from herald.services.publisher.platforms.meta.throttle import Throttle

        throttle = Throttle(env.redis, env.names, platform="fb")
        return FacebookPublisher(env.settings.facebook_graph_url, throttle=throttle)

    def consent_url(self, env: PlatformEnv, *, state: str, redirect_uri: str) -> str:
        from herald.services.publisher.platforms.facebook.tokens import consent_url

        return consent_url(env.settings, state=state, redirect_uri=redirect_uri)

    async def exchange_code(
        self, env: PlatformEnv, *, code: str, redirect_uri: str, metadata: Mapping[str, Any]
    ) -> IssuedToken:
        from herald.services.publisher.platforms.facebook.tokens import page_token_from_code

        return await page_token_from_code(
            env.settings, code=code, redirect_uri=redirect_uri, page=metadata.get("pageId")
        )
