"""The `mastodon` plugin's declaration: publishing to an account on any Mastodon instance
(its URL in the connection's metadata, its access token the connection's token), connected
by a pasted token or by signing in on the instance (an app per instance, `signin.py`),
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
    OAuthApp,
    Platform,
    PlatformEnv,
    PlatformPublisher,
    RateLimit,
    host_errors,
)

MAX_MEDIA = 4  # the default; the instance's own limit is read before posting


class Mastodon(Platform):
    name = "mastodon"
    title = "Mastodon"
    media = MediaRules(
        kinds=(
            MediaKind("TEXT", min_assets=0, max_assets=0),
            MediaKind("IMAGE", min_assets=1, max_assets=MAX_MEDIA, video=False),
            MediaKind("VIDEO", video=True),
        ),
        max_assets=MAX_MEDIA,
        # The default instance limit; the publisher reads the instance's max_characters and
        # counts every URL as characters_reserved_per_url.
        caption=CaptionLimits(chars=500),
        max_image_bytes=16 * 1024 * 1024,
        max_video_bytes=99 * 1024 * 1024,
    )
    account = AccountRules(
        metadata=(
            MetadataField("instanceUrl", r"https?://\S{1,2000}", "the https URL of the instance"),
        )
    )
    # 300 calls per 5 minutes per account (the documented default): 1 a second.
    rate_limit = RateLimit(rate_per_second=1.0, burst=5.0)
    oauth = True
    oauth_host = "instanceUrl"

    def check_metadata(self, metadata: Mapping[str, Any]) -> dict[str, str]:
        return host_errors(metadata, "instanceUrl")

    def account_key(self, connection: Connection) -> str:
        return f"{connection.metadata.get('instanceUrl')}|{connection.id}"

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        from herald.services.publisher.platforms.mastodon import MastodonPublisher

        return MastodonPublisher()

    async def register_app(self, env: PlatformEnv, *, host: str, redirect_uri: str) -> OAuthApp:
        from herald.services.publisher.platforms.mastodon.signin import register_app

        return await register_app(host, redirect_uri)

    def consent_url(
        self,
        env: PlatformEnv,
        *,
        state: str,
        redirect_uri: str,
        host: str | None = None,
        app: OAuthApp | None = None,
    ) -> str:
        from herald.services.publisher.platforms.mastodon.signin import consent_url

        assert host is not None and app is not None  # Herald passes both (`oauth_host`)
        return consent_url(host, app, state=state, redirect_uri=redirect_uri)

    async def exchange_code(
        self,
        env: PlatformEnv,
        *,
        code: str,
        redirect_uri: str,
        metadata: Mapping[str, Any],
        host: str | None = None,
        app: OAuthApp | None = None,
    ) -> IssuedToken:
        from herald.services.publisher.platforms.mastodon.signin import exchange

        assert host is not None and app is not None
        return await exchange(host, app, code=code, redirect_uri=redirect_uri)
