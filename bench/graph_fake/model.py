"""The fake Graph server's records and helpers: error answers, containers, media, requests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_ACCOUNT = "17841400000000001"
DEFAULT_TOKEN = "EAAGfakeSECRETtoken0001xyz" + "0" * 16  # a plausible length
DAY = 86_400.0
FACEBOOK, INSTAGRAM = "facebook", "instagram"  # the two logins, one host each
CALLS = (
    "create_container",
    "container_status",
    "media_publish",
    "content_publishing_limit",
    "media_read",
    "media_list",
    "stories_list",
    "refresh_access_token",
    "oauth_authorize",
    "oauth_access_token",
    "ig_exchange_token",
    "me",
)
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, 80001, 80002})
MESSAGES = {
    1: "An unknown error has occurred.",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "Application request limit reached",
    9: "You reached maximum number of posts that is allowed to be published by Content "
    "Publishing API.",
    17: "User request limit reached",
    24: "The media builder with creation id does not exist or has been expired.",
    32: "Page request limit reached",
    190: "Error validating access token: Session has expired.",
    368: "The action attempted has been deemed abusive or is otherwise disallowed",
    613: "Calls to this api have exceeded the rate limit.",
    9004: "Only photo or video can be accepted as media type.",
    9007: "The media is not ready for publishing, please wait for a moment",
    80002: "There have been too many calls to this Instagram account.",
}
STATUS_TEXT = {
    "IN_PROGRESS": "In Progress: Media is still being processed.",
    "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
    "PUBLISHED": "Published: Media has been successfully published.",
    "EXPIRED": "Expired: Media was not published within 24 hours.",
}


class GraphFault(Exception):
    """Raised inside the fake to answer a Graph error envelope."""

    def __init__(
        self,
        code: int | str,  # Threads sends some codes as strings
        message: str,
        *,
        subcode: int | None = None,
        status: int = 400,
        is_transient: bool | None = None,
        error_type: str = "OAuthException",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode = code, message, subcode
        self.status, self.is_transient, self.error_type = status, is_transient, error_type
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.is_transient is not None:
            err["is_transient"] = self.is_transient
        if self.subcode and self.subcode >= 2207000:
            err["error_user_title"] = self.message[:60]
            err["error_user_msg"] = self.message
        return err


@dataclass
class Fault:
    """One scripted answer: ``error`` (an envelope), ``bare`` (HTTP status, no envelope),
    ``drop`` (connection closed), ``hang`` (no answer for a while, then closed) or ``slow``
    (the normal answer, late). With ``commit`` the call's effect happens first."""

    action: str
    commit: bool = False
    error: GraphFault | None = None
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Container:
    id: str
    account: str
    kind: str  # IMAGE | VIDEO | REELS | CAROUSEL | STORIES
    params: dict[str, str]
    created_at: float
    ready_at: float
    polls_needed: int = 0
    polls: int = 0
    status_code: str = "IN_PROGRESS"
    error_text: str | None = None
    expired: bool = False
    is_carousel_item: bool = False
    children: list[str] = field(default_factory=list)
    media_id: str | None = None
    stale_until: float = 0.0  # status reads answer FINISHED until then, though PUBLISHED


@dataclass
class Media:
    id: str
    account: str
    container_id: str | None
    caption: str
    media_type: str
    product_type: str  # FEED | REELS | STORY
    timestamp: float
    permalink: str


@dataclass
class LoggedRequest:
    method: str
    path: str
    call: str
    params: dict[str, str]  # without the token
    status: int = 0
    token_via: str = ""  # "header" | "query" | "form" | "json" | "" (none)
    login: str = FACEBOOK  # the host that was called
    at: float = 0.0  # the fake's clock when the request arrived


def missing(node: str) -> GraphFault:
    return GraphFault(
        100,
        f"Unsupported get request. Object with ID '{node}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation",
        subcode=33,
        error_type="GraphMethodException",
    )


def media_fields(m: Media) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(m.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {
        "id": m.id,
        "caption": m.caption,
        "media_type": m.media_type,
        "media_product_type": m.product_type,
        "timestamp": stamp,
        "permalink": m.permalink,
        "shortcode": m.permalink.rstrip("/").rsplit("/", 1)[-1],
    }


def select(full: dict[str, Any], fields: str) -> dict[str, Any]:
    wanted = {f.strip() for f in fields.split(",") if f.strip()} | {"id"}
    return {k: v for k, v in full.items() if k in wanted}


def buc_header(account: str, usage: int, regain_minutes: int) -> str:
    entry = {
        "type": "instagram",
        "call_count": usage,
        "total_cputime": 1,
        "total_time": 1,
        "estimated_time_to_regain_access": regain_minutes,
    }
    return json.dumps({account: [entry]})


def flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)
