"""The `instagram` plugin's declaration: Instagram Graph API publishing for professional
accounts (Facebook Login or Instagram Login), registered under `herald.platforms`."""

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

# Which configured Graph host a connection is published through (Facebook Login, the
# default, or Instagram Login); never a URL of the tenant's choosing.
LOGINS = ("facebook", "instagram")
MAX_ITEMS = 10  # a carousel's items


class Instagram(Platform):
    name = "instagram"
    title = "Instagram"
    media = MediaRules(
        kinds=(
            MediaKind("IMAGE", video=False),
            MediaKind("CAROUSEL", min_assets=2, max_assets=MAX_ITEMS),
            MediaKind("REELS", video=True),
            MediaKind("STORIES"),
        ),
        max_assets=MAX_ITEMS,
        caption=CaptionLimits(chars=2200, hashtags=30, mentions=20),
        max_image_bytes=8 * 1024 * 1024,
        max_video_bytes=300 * 1024 * 1024,
    )
    account = AccountRules(
        metadata=(
            MetadataField("instagramBusinessAccountId", r"[0-9]{1,32}", "the account's numeric id"),
            MetadataField(
                "login",
                "|".join(LOGINS),
                "which login the token comes from: facebook (default) or instagram",
                required=False,
            ),
        )
    )
    # Instagram Login tokens live 60 days: refreshed 10 to 15 days ahead (`refreshes`).
    token = TokenRules(refreshable=True, refresh_before_seconds=10 * 86400)
    rate_limit = RateLimit(rate_per_second=1.0, burst=5.0)

    def account_key(self, connection: Connection) -> str:
        account = connection.metadata.get("instagramBusinessAccountId")
        return account if isinstance(account, str) and account else connection.id

    def refreshes(self, metadata: Mapping[str, Any], token: str) -> bool:
        return metadata.get("login") == "instagram"

    async def refresh_token(self, env: PlatformEnv, connection: Connection) -> IssuedToken:
        from herald.services.publisher.platforms.instagram.tokens import refresh

        return await refresh(env.settings, connection)

    # OAuth sign-in with Instagram Login (no Facebook Page needed).
    oauth = True
    oauth_settings = ("meta_app_id", "meta_app_secret")

    def consent_url(self, env: PlatformEnv, *, state: str, redirect_uri: str) -> str:
        from herald.services.publisher.platforms.instagram.tokens import consent_url

        return consent_url(env.settings, state=state, redirect_uri=redirect_uri)

    async def exchange_code(
        self,
        env: PlatformEnv,
        *,
        code: str,
        redirect_uri: str,
        metadata: Mapping[str, Any],
    ) -> IssuedToken:
        from herald.services.publisher.platforms.instagram.tokens import exchange_code

        return await exchange_code(env.settings, code=code, redirect_uri=redirect_uri)

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        from herald.services.publisher.platforms.instagram import InstagramPublisher
        from herald.services.publisher.platforms.meta.throttle import Throttle

        settings = env.settings
        secret = settings.instagram_app_secret
        return InstagramPublisher(
            settings.instagram_graph_url,
            instagram_graph_url=settings.instagram_login_graph_url,
            app_secret=secret.get_secret_value() if secret is not None else None,
            throttle=Throttle(env.redis, env.names),
        )
