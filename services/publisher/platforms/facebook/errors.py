"""Facebook Pages' own error codes (before the codes every Meta Graph API shares, in
``meta.calls``). Classify by ``code`` and ``error_subcode``, never by HTTP status: throttles
and 190 come with HTTP 400."""

from __future__ import annotations

from collections.abc import Mapping

from herald.services.publisher.platforms.meta.calls import Kind
from herald.services.publisher.platforms.meta.graph import GraphError

# The calls after which the post may be live.
IRREVERSIBLE = frozenset({"feed", "videos", "reels_finish"})
ALREADY_POSTED = 1366051  # 100/1366051 "These photos were already posted"

SUBCODES: Mapping[int, tuple[Kind, str]] = {
    ALREADY_POSTED: (Kind.PERMANENT, "these photos were already posted"),
    1609005: (Kind.REJECTED, "the link could not be scraped"),
    1609008: (Kind.REJECTED, "facebook.com links cannot be posted"),
    1366046: (Kind.REJECTED, "photo size or format refused"),
    2061006: (Kind.REJECTED, "invalid URL"),
    1404078: (Kind.AUTH, "Page publishing authorization required"),
    492: (Kind.AUTH, "the user behind the Page token has no role on the Page"),
    1390008: (Kind.BLOCKED, "posting too fast"),
    4854002: (Kind.BLOCKED, "confirm your identity"),
    1404102: (Kind.BLOCKED, "against the Community Standards"),
    1363030: (Kind.TRANSIENT, "video upload timed out"),
    1363019: (Kind.TRANSIENT, "video upload: retry"),
    1363037: (Kind.TRANSIENT, "video upload: retry"),
    1363023: (Kind.REJECTED, "video larger than 2 GB"),
    1363022: (Kind.REJECTED, "video smaller than 1 KB"),
}
CODES: Mapping[int, tuple[Kind, str]] = {
    324: (Kind.REJECTED, "missing or invalid image file"),
    389: (Kind.REJECTED, "unable to fetch the video from its URL"),
    382: (Kind.REJECTED, "video file too small"),
    6000: (Kind.REJECTED, "problem uploading the video file"),
    6001: (Kind.TRANSIENT, "problem uploading the video: retry"),
    # 506 "Duplicate Post": the same text was just posted, maybe by an earlier attempt.
    506: (Kind.AMBIGUOUS, "duplicate post"),
    9: (Kind.QUOTA, "reels limit reached (30 per Page per 24 h)"),
}


def classify(call: str, error: GraphError) -> tuple[Kind, str] | None:
    if error.subcode is not None and error.subcode in SUBCODES:
        return SUBCODES[error.subcode]
    if error.code is not None:
        return CODES.get(error.code)
    return None
