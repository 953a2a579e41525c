"""What a platform plugin declares: its name, the media it accepts, how its account is
connected, how its token is kept, and how it publishes.

A plugin is a subclass of `Platform` registered under the entry point group
`herald.platforms` (see `herald.shared.platforms.registry`). Its declarations are plain
class attributes, read without I/O by every process (validation, the API, the metrics);
only the publisher calls `publisher()`, and only the token keeper calls `refresh_token()`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

from herald.shared.domain.requests import Connection

if TYPE_CHECKING:
    from herald.shared.platforms.contract import PlatformPublisher

NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # the committed schemas' `platform` pattern
VIDEO_EXTENSIONS = (".mp4", ".mov")
MAX_TOKEN = 4096


def is_video(url: str, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> bool:
    """A video asset, by the extension of its URL's path."""
    return urlparse(url).path.lower().endswith(extensions)


@dataclass(frozen=True)
class CaptionLimits:
    """A post's text: at most `chars` characters, `hashtags` #tags and `mentions` @names
    (None: no limit of that kind). `unit` names what `chars` counts, as refusals and the
    README table say it (a plugin whose `caption_length` counts otherwise names its unit:
    "graphemes", "weighted characters")."""

    chars: int
    hashtags: int | None = None
    mentions: int | None = None
    unit: str = "characters"


@dataclass(frozen=True)
class MediaKind:
    """One `media_type` a platform accepts: how many assets it takes, and whether they must
    be videos (True), must not be (False) or may be either (None); a video kind's URLs end
    in one of `extensions`."""

    name: str
    min_assets: int = 1
    max_assets: int = 1
    video: bool | None = None
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS


@dataclass(frozen=True)
class MediaRules:
    """The media a platform accepts. `kinds` are the `media_type` values a job may name;
    a job without one carries 1 to `max_assets` assets and the platform picks the kind.
    `max_image_bytes` and `max_video_bytes` are the platform's documented file sizes, shown
    to clients (Herald passes URLs and never downloads the media)."""

    kinds: tuple[MediaKind, ...]
    max_assets: int
    caption: CaptionLimits
    default_kind_allowed: bool = True
    max_image_bytes: int | None = None
    max_video_bytes: int | None = None

    def kind(self, name: str) -> MediaKind | None:
        return next((k for k in self.kinds if k.name == name), None)


@dataclass(frozen=True)
class MetadataField:
    """A connection metadata key: its value is a string matching `pattern` in full."""

    key: str
    pattern: str
    description: str
    required: bool = True


# A real platform's token: Meta's run to about 200 printable ASCII characters, so fewer than
# 32 is a paste mistake, not a token.
PRINTABLE_TOKEN = r"[\x21-\x7e]{32,4096}"


@dataclass(frozen=True)
class AccountRules:
    """How an account is connected: the metadata each connection carries, and its token
    (required or not, and its shape as a full-match pattern)."""

    metadata: tuple[MetadataField, ...] = ()
    token_required: bool = True
    token_pattern: str = PRINTABLE_TOKEN
    token_rule: str = "must be 32 to 4096 printable ASCII characters without spaces"


@dataclass(frozen=True)
class TokenRules:
    """How a token is kept alive. `refreshable`: the plugin implements `refresh_token`;
    the token keeper calls it `refresh_before_seconds` before the stored expiry (with jitter),
    and no sooner than `min_age_seconds` after the token was issued (Meta refuses to refresh
    a token younger than a day)."""

    refreshable: bool = False
    refresh_before_seconds: int = 10 * 86400
    min_age_seconds: int = 86400

    def refresh_at(self, issued_at: datetime, expires_at: datetime | None, rand: float) -> datetime:
        """When to refresh a token: `refresh_before_seconds` before its expiry, moved up to
        half that window earlier at random (`rand` in [0, 1)) so that tokens issued together
        are not refreshed together; never before `min_age_seconds`. With no known expiry: at
        that minimum age (plus up to an hour), and the refresh tells the expiry."""
        earliest = issued_at + timedelta(seconds=self.min_age_seconds)
        if expires_at is None:
            return earliest + timedelta(hours=rand)
        window = timedelta(seconds=self.refresh_before_seconds)
        return max(expires_at - window - window * 0.5 * rand, earliest)


@dataclass(frozen=True)
class IssuedToken:
    """A token the platform issued (a refresh or an OAuth exchange). `expires_at` None: the
    platform gave no expiry (it does not expire). `metadata` entries, if any, are merged into
    the connection's metadata (e.g. the account id an OAuth sign-in found)."""

    access_token: str = field(repr=False)
    expires_at: datetime | None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class AuthLost(Exception):
    """The platform refused the token for good (revoked, expired, a refresh it will not do):
    the connection needs a person to sign in again. Any other exception from `refresh_token`
    is transient and retried later."""


class AppForgotten(AuthLost):
    """The host no longer knows the app the sign-in used (its token endpoint answered 401
    `invalid_client`): for a platform with `oauth_host`, Herald registers a new app there."""


@dataclass(frozen=True)
class OAuthApp:
    """The app Herald registered on one host (`Platform.register_app`): its client id and
    secret, which Herald keeps encrypted."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class RateLimit:
    """Calls per second and burst for one account, shared by every publisher copy."""

    rate_per_second: float
    burst: float


@dataclass(frozen=True)
class PlatformEnv:
    """What Herald hands a plugin when it builds the plugin's publisher or refreshes a token:
    the process's settings, and for the built-in platforms its stores (`db`: Postgres,
    `redis`, `names`: the key prefixes). A third-party plugin reads only `settings` and
    its own environment variables."""

    settings: Any
    db: Any = None
    redis: Any = None
    names: Any = None


class Platform:
    """A platform plugin. Subclass it, set the class attributes, implement `publisher`
    (and `refresh_token` when `token.refreshable`), and register the class under the entry
    point group `herald.platforms` with its `name` as the entry point's name."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    media: ClassVar[MediaRules]
    account: ClassVar[AccountRules] = AccountRules()
    token: ClassVar[TokenRules] = TokenRules()
    rate_limit: ClassVar[RateLimit | None] = None

    def caption_length(self, caption: str) -> int:
        """A caption's length as the platform counts it against `media.caption.chars`
        (default: characters; X weighs URLs, emoji and CJK)."""
        return len(caption)

    def check_metadata(self, metadata: Mapping[str, Any]) -> dict[str, str]:
        """Errors of rules `account.metadata` cannot state, keyed `metadata.<key>`."""
        return {}

    def limit_for(self, metadata: Mapping[str, Any]) -> RateLimit | None:
        """The rate limit of one connection (default: the platform's `rate_limit`)."""
        return self.rate_limit

    def account_key(self, connection: Connection) -> str:
        """Whose call budget a publish spends (default: the connection)."""
        return connection.id

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        """The client the publisher calls (built once per publisher process)."""
        raise NotImplementedError(f"{self.name} does not publish")

    def refreshes(self, metadata: Mapping[str, Any], token: str) -> bool:
        """Whether this connection's token is refreshed (default: `token.refreshable`).
        `token` is the stored token: a platform whose refresh needs a refresh token answers
        False for a token stored without one (it is used until the platform refuses it,
        rather than refreshed, refused and marked `needs_reauth` while it still works)."""
        return self.token.refreshable

    async def refresh_token(self, env: PlatformEnv, connection: Connection) -> IssuedToken:
        """A new long-lived token for `connection` (its current one is in `access_token`).
        Raise `AuthLost` when the platform refuses for good."""
        raise AuthLost(f"{self.name} tokens cannot be refreshed")

    # OAuth sign-in (when `oauth` is true): Herald makes and checks `state`, and stores the
    # token the exchange answers, encrypted; the plugin knows the platform's URLs.
    oauth: ClassVar[bool] = False
    # The settings the sign-in needs besides HERALD_OAUTH_REDIRECT_BASE_URL (the app's client
    # id and secret, as `Settings` fields): a start or callback without one is refused (409).
    oauth_settings: ClassVar[tuple[str, ...]] = ()
    # A platform with an app per host (a Mastodon instance): the metadata key of that host.
    # The sign-in's start then names the host (`instance_url`); Herald checks it is public,
    # registers an app there once (`register_app`), keeps it, and passes `host` and `app`
    # to `consent_url` and `exchange_code` (only for a plugin that sets this).
    oauth_host: ClassVar[str | None] = None

    async def register_app(self, env: PlatformEnv, *, host: str, redirect_uri: str) -> OAuthApp:
        """Herald's app registered on `host` (a public https URL), for `oauth_host`."""
        raise NotImplementedError(f"{self.name} registers no app per host")

    def consent_url(self, env: PlatformEnv, *, state: str, redirect_uri: str) -> str:
        """The platform's consent page the sign-in starts at."""
        raise NotImplementedError(f"{self.name} has no OAuth sign-in")

    async def exchange_code(
        self,
        env: PlatformEnv,
        *,
        code: str,
        redirect_uri: str,
        metadata: Mapping[str, Any],
    ) -> IssuedToken:
        """The callback's `code` exchanged for a long-lived token (and the metadata the
        connection needs, e.g. its account id). `metadata`: the re-authorised connection's
        metadata, with what the sign-in was started with on top (e.g. which Page to take).
        Raise `AuthLost` when the platform refuses."""
        raise NotImplementedError(f"{self.name} has no OAuth sign-in")

    def token_errors(self, token: Any, *, required: bool) -> dict[str, str]:
        """`token` None means none was given; a given one is never empty."""
        if token is None:
            return {"access_token": f"is required for {self.name}"} if required else {}
        rule = self.account
        if not isinstance(token, str) or not re.fullmatch(rule.token_pattern, token):
            return {"access_token": rule.token_rule}
        return {}

    def metadata_errors(self, metadata: Mapping[str, Any]) -> dict[str, str]:
        """The declared metadata fields, then `check_metadata`."""
        errors: dict[str, str] = {}
        for f in self.account.metadata:
            value = metadata.get(f.key)
            if value is None and not f.required:
                continue
            if not isinstance(value, str) or not re.fullmatch(f.pattern, value):
                need = "is required" if f.required else "must be valid"
                errors[f"metadata.{f.key}"] = f"{need} for {self.name}: {f.description}"
        return errors | self.check_metadata(metadata)

    def describe(self) -> dict[str, Any]:
        """What `GET /publishing/platforms` shows of this platform."""
        m = self.media
        return {
            "name": self.name,
            "title": self.title or self.name,
            "media_kinds": [
                {
                    "media_type": k.name,
                    "min_assets": k.min_assets,
                    "max_assets": k.max_assets,
                    "video": k.video,
                }
                for k in m.kinds
            ],
            "media_type_optional": m.default_kind_allowed,
            "max_assets": m.max_assets,
            "max_image_bytes": m.max_image_bytes,
            "max_video_bytes": m.max_video_bytes,
            "caption": {
                "chars": m.caption.chars,
                "unit": m.caption.unit,
                "hashtags": m.caption.hashtags,
                "mentions": m.caption.mentions,
            },
            "connection": {
                "token_required": self.account.token_required,
                "metadata": [
                    {"key": f.key, "required": f.required, "description": f.description}
                    for f in self.account.metadata
                ],
            },
            "token_refresh": self.token.refreshable,
            "oauth": self.oauth,
            "oauth_instance": self.oauth_host is not None,
        }
