"""Classification of Instagram Graph API failures (pure: no I/O, no clock).

A failure is the error envelope Graph answers (``{"error": {"message", "type", "code",
"error_subcode", "is_transient", "fbtrace_id", ...}}``), the HTTP status, the response
headers and the call it answered; or a transport failure (timeout, dropped connection).

Lookup order (reference §7.2): the ``(code, subcode)`` table, then the subcode alone, then
the code alone, then ``is_transient``, then the HTTP status. The call then adjusts the class:
``100/33`` is retried only on reads, and on ``media_publish`` anything that is not a definite
answer (timeout, dropped connection, 5xx, codes 1/2, an unknown error) is AMBIGUOUS: the post
may be live, so the publisher must read the container's status before anything else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from herald.platforms import Outcome
from herald.services.publisher.platforms.meta.graph import GraphError
from herald.services.publisher.platforms.meta.usage import (
    DEFAULT_THROTTLE_SECONDS,
    retry_after_header,
    throttle_seconds,
)

# The publishing quota's rolling window when `content_publishing_limit` does not say.
DEFAULT_QUOTA_WINDOW_SECONDS = 86_400.0


class Call(StrEnum):
    """The Graph call a failure answered."""

    PUBLISHING_LIMIT = "content_publishing_limit"
    CREATE_CONTAINER = "create_container"
    CONTAINER_STATUS = "container_status"
    MEDIA_PUBLISH = "media_publish"
    MEDIA_READ = "media_read"  # permalink, media list: best-effort reads

    @property
    def is_read(self) -> bool:
        return self in _READS


_READS = frozenset({Call.PUBLISHING_LIMIT, Call.CONTAINER_STATUS, Call.MEDIA_READ})


class ErrorClass(StrEnum):
    """The reference's classes (§7.2), plus AMBIGUOUS for an unknown `media_publish` answer."""

    AUTH = "auth"  # A: token invalid or permission gone; the user must reconnect
    RATE_LIMIT = "rate_limit"  # RL: app / user / BUC throttle
    QUOTA = "quota"  # Q: publishing quota used up for the rolling window
    BLOCKED = "blocked"  # S: spam or policy block; never retried automatically
    NOT_READY = "not_ready"  # W: container not FINISHED yet; poll, then publish again
    RECREATE = "recreate"  # R: one retry with a new container, then permanent
    RETRY_READ = "retry_read"  # 100/33 on a fresh object: retry the read only
    TRANSIENT = "transient"  # T: retry the same call later
    USER_ACTION = "user_action"  # U: the user must act in Instagram; stop
    PERMANENT = "permanent"  # P: bad input; fail the post
    AMBIGUOUS = "ambiguous"  # media_publish answer unknown: the post may be live


_OUTCOMES: Mapping[ErrorClass, Outcome] = {
    ErrorClass.AUTH: Outcome.AUTH_ERROR,
    ErrorClass.RATE_LIMIT: Outcome.RATE_LIMITED,
    ErrorClass.QUOTA: Outcome.RATE_LIMITED,
    ErrorClass.BLOCKED: Outcome.BLOCKED,
    ErrorClass.NOT_READY: Outcome.RETRYABLE_ERROR,
    ErrorClass.RECREATE: Outcome.RETRYABLE_ERROR,
    ErrorClass.RETRY_READ: Outcome.RETRYABLE_ERROR,
    ErrorClass.TRANSIENT: Outcome.RETRYABLE_ERROR,
    ErrorClass.USER_ACTION: Outcome.PERMANENT_ERROR,
    ErrorClass.PERMANENT: Outcome.PERMANENT_ERROR,
    ErrorClass.AMBIGUOUS: Outcome.AMBIGUOUS,
}

# On media_publish these answers may come with a live post: read the container's status first
# (reference §8: timeout, 5xx, codes 1/2, a rate-limit code, 4/2207051).
_CHECK_STATUS_AFTER_PUBLISH = frozenset(
    {ErrorClass.AMBIGUOUS, ErrorClass.BLOCKED, ErrorClass.RATE_LIMIT}
)


@dataclass(frozen=True)
class Rule:
    error_class: ErrorClass
    meaning: str
    # Class on a read (GET) when it differs: 100/33 is "retry the read" there only.
    on_read: ErrorClass | None = None


_C = ErrorClass

# (code, subcode) rows: small subcodes are only meaningful with their code.
PAIR_RULES: Mapping[tuple[int, int], Rule] = {
    (100, 33): Rule(_C.PERMANENT, "object does not exist (yet)", on_read=_C.RETRY_READ),
}

# Subcode rows (the 2207xxx family is unique across codes).
SUBCODE_RULES: Mapping[int, Rule] = {
    2207051: Rule(_C.BLOCKED, "activity restricted as suspected spam"),
    2207042: Rule(_C.QUOTA, "publishing quota reached for the rolling window"),
    2207027: Rule(_C.NOT_READY, "media not ready for publishing"),
    2207052: Rule(_C.RECREATE, "media could not be fetched from the URL"),
    2207053: Rule(_C.RECREATE, "unknown upload error"),
    2207003: Rule(_C.RECREATE, "media download timed out"),
    2207020: Rule(_C.RECREATE, "container expired"),
    2207032: Rule(_C.RECREATE, "create media failed"),
    2207006: Rule(_C.RECREATE, "media not found"),
    2207008: Rule(_C.RECREATE, "media builder does not exist or expired"),
    2207082: Rule(_C.RECREATE, "video could not be fetched"),
    2207001: Rule(_C.TRANSIENT, "Instagram server error"),
    2207050: Rule(_C.USER_ACTION, "account restricted, inactive or checkpointed"),
    2207057: Rule(_C.PERMANENT, "thumb_offset out of range"),
    2207026: Rule(_C.PERMANENT, "unsupported video format"),
    2207004: Rule(_C.PERMANENT, "image larger than 8 MiB"),
    2207005: Rule(_C.PERMANENT, "unsupported image format"),
    2207009: Rule(_C.PERMANENT, "aspect ratio not supported"),
    2207010: Rule(_C.PERMANENT, "caption too long or too many hashtags/mentions"),
    2207023: Rule(_C.PERMANENT, "unknown media type"),
    2207028: Rule(_C.PERMANENT, "carousel needs 2 to 10 items"),
    2207035: Rule(_C.PERMANENT, "product tags not allowed"),
    2207036: Rule(_C.PERMANENT, "product tags not allowed"),
    2207037: Rule(_C.PERMANENT, "product tags not allowed"),
    2207040: Rule(_C.PERMANENT, "too many tags"),
    2207076: Rule(_C.PERMANENT, "video could not be processed"),
    2207077: Rule(_C.PERMANENT, "video could not be processed"),
    2207085: Rule(_C.PERMANENT, "video could not be processed"),
    2207081: Rule(_C.PERMANENT, "trial reels not supported for this account"),
    2207018: Rule(_C.PERMANENT, "invalid collaborator"),
}

# Throttles: app (4), user (17), Pages (32), app limit (341), custom (613); BUC (800xx).
_APP_THROTTLES = (4, 17, 32, 341, 613)
_BUC_THROTTLES = (80000, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014)

CODE_RULES: Mapping[int, Rule] = {
    190: Rule(_C.AUTH, "access token invalid or expired"),
    102: Rule(_C.AUTH, "API session invalid"),
    10: Rule(_C.AUTH, "permission not granted or removed"),
    **{code: Rule(_C.AUTH, "permission not granted or removed") for code in range(200, 300)},
    **{code: Rule(_C.RATE_LIMIT, "rate limited") for code in _APP_THROTTLES + _BUC_THROTTLES},
    9: Rule(_C.RATE_LIMIT, "request limit reached"),
    368: Rule(_C.BLOCKED, "temporarily blocked for policy violations"),
    9007: Rule(_C.NOT_READY, "media not ready for publishing"),
    9004: Rule(_C.RECREATE, "media could not be fetched from the URL"),
    24: Rule(_C.RECREATE, "media or container not found"),
    -2: Rule(_C.RECREATE, "download timed out or container expired"),
    1: Rule(_C.TRANSIENT, "unknown error, possibly downtime"),
    2: Rule(_C.TRANSIENT, "temporary service error"),
    -1: Rule(_C.TRANSIENT, "Instagram server error"),
    25: Rule(_C.USER_ACTION, "account restricted, inactive or checkpointed"),
    352: Rule(_C.PERMANENT, "unsupported video format"),
    36000: Rule(_C.PERMANENT, "image too large"),
    36001: Rule(_C.PERMANENT, "unsupported image format"),
    36003: Rule(_C.PERMANENT, "aspect ratio not supported"),
    36004: Rule(_C.PERMANENT, "caption too long"),
    100: Rule(_C.PERMANENT, "invalid parameter"),
    506: Rule(_C.PERMANENT, "duplicate post"),
}


@dataclass(frozen=True)
class Classification:
    error_class: ErrorClass
    outcome: Outcome
    rule: str
    retry_after_seconds: float | None = None
    # media_publish only: the post may be live, read the container's status before deciding.
    check_status: bool = False


def classify(
    call: Call,
    error: GraphError,
    headers: Mapping[str, str] | None = None,
    account_id: str | None = None,
) -> Classification:
    """Class of a Graph error answer to ``call``."""
    rule = _lookup(error)
    if rule is None:
        error_class, meaning = _fallback(error)
    else:
        error_class, meaning = rule.error_class, rule.meaning
        if call.is_read and rule.on_read is not None:
            error_class = rule.on_read
    throttle = error_class is ErrorClass.RATE_LIMIT  # a bare HTTP 429 included
    if (
        call is Call.MEDIA_PUBLISH
        and not throttle
        and (
            rule is None
            or error_class is ErrorClass.TRANSIENT
            or (error.http_status is not None and error.http_status >= 500)
        )
    ):
        error_class, meaning = ErrorClass.AMBIGUOUS, f"publish answer unknown ({meaning})"
    return _classification(call, error_class, meaning, headers, account_id)


def classify_transport(call: Call, what: str) -> Classification:
    """A call that got no answer (timeout, refused or dropped connection)."""
    if call is Call.MEDIA_PUBLISH:
        return _classification(call, ErrorClass.AMBIGUOUS, f"publish answer lost ({what})")
    return _classification(call, ErrorClass.TRANSIENT, f"no answer ({what})")


def _classification(
    call: Call,
    error_class: ErrorClass,
    meaning: str,
    headers: Mapping[str, str] | None = None,
    account_id: str | None = None,
) -> Classification:
    retry_after: float | None = None
    if error_class is ErrorClass.RATE_LIMIT:
        retry_after = (
            throttle_seconds(headers or {}, account_id)
            or retry_after_header(headers or {})
            or DEFAULT_THROTTLE_SECONDS
        )
    elif error_class is ErrorClass.QUOTA:
        retry_after = DEFAULT_QUOTA_WINDOW_SECONDS  # the publisher refines it from the API
    return Classification(
        error_class=error_class,
        outcome=_OUTCOMES[error_class],
        rule=meaning,
        retry_after_seconds=retry_after,
        check_status=call is Call.MEDIA_PUBLISH and error_class in _CHECK_STATUS_AFTER_PUBLISH,
    )


def _lookup(error: GraphError) -> Rule | None:
    if error.subcode is not None:
        if error.code is not None and (error.code, error.subcode) in PAIR_RULES:
            return PAIR_RULES[(error.code, error.subcode)]
        if error.subcode in SUBCODE_RULES:
            return SUBCODE_RULES[error.subcode]
    if error.code is not None:
        return CODE_RULES.get(error.code)
    return None


def _fallback(error: GraphError) -> tuple[ErrorClass, str]:
    status = error.http_status or 0
    if error.is_transient:
        return ErrorClass.TRANSIENT, "error marked transient"
    if status == 429:
        return ErrorClass.RATE_LIMIT, "HTTP 429"
    if status >= 500:
        return ErrorClass.TRANSIENT, f"HTTP {status}"
    if error.code is None:
        return ErrorClass.TRANSIENT, f"unparseable answer (HTTP {status})"
    return ErrorClass.PERMANENT, f"unknown error code {error.code}"


# ---- container status -----------------------------------------------------------------------

_SUBCODE_IN_STATUS = re.compile(r"\b(2207\d{3})\b")


def subcode_from_status(status: str | None) -> int | None:
    """The subcode an ERROR container names in its ``status`` sentence, if any."""
    match = _SUBCODE_IN_STATUS.search(status or "")
    return int(match.group(1)) if match else None


def container_error_class(status: str | None) -> ErrorClass:
    """Class of an ERROR container: a recreate subcode earns one new container, else P."""
    subcode = subcode_from_status(status)
    rule = SUBCODE_RULES.get(subcode) if subcode is not None else None
    if rule is not None and rule.error_class is ErrorClass.RECREATE:
        return ErrorClass.RECREATE
    return ErrorClass.PERMANENT
