"""What a platform plugin imports from Herald, and nothing else of Herald: the declaration
to subclass (`Platform` and the rules it declares), the contract between the publisher and
a platform (one attempt's context, the protocol to implement, the outcomes to answer) and
the scrubber for a token in free text, and the public-host checks for URLs a connection
names and media a plugin downloads. The guide is docs/write-a-platform.md."""

from herald.shared.domain.outcomes import TRIED_AGAIN, Outcome, PublishOutcome
from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.platforms.contract import AttemptContext, ClaimLost, PlatformPublisher
from herald.shared.platforms.hosts import (
    HostRefused,
    Media,
    MediaRefused,
    MediaUnavailable,
    check_host,
    check_scheme,
    fetch_media,
    host_errors,
    public_session,
)
from herald.shared.platforms.plugin import (
    AccountRules,
    AppForgotten,
    AuthLost,
    CaptionLimits,
    IssuedToken,
    MediaKind,
    MediaRules,
    MetadataField,
    OAuthApp,
    Platform,
    PlatformEnv,
    RateLimit,
    TokenRules,
    is_video,
)
from herald.shared.platforms.scrub import Scrubber

__all__ = [
    "TRIED_AGAIN",
    "AccountRules",
    "AppForgotten",
    "AttemptContext",
    "AuthLost",
    "CaptionLimits",
    "ClaimLost",
    "Connection",
    "HostRefused",
    "IssuedToken",
    "Media",
    "MediaKind",
    "MediaRefused",
    "MediaRules",
    "MediaUnavailable",
    "MetadataField",
    "OAuthApp",
    "Outcome",
    "Platform",
    "PlatformEnv",
    "PlatformPublisher",
    "PublishOutcome",
    "PublishRequest",
    "RateLimit",
    "Scrubber",
    "TokenRules",
    "check_host",
    "check_scheme",
    "fetch_media",
    "host_errors",
    "is_video",
    "public_session",
]
