"""Threads' own error codes (before the codes every Meta Graph API shares, in ``meta.calls``).

24/4279009 "Media Not Found" on ``threads_publish`` is mostly a race with a container that
is not ready everywhere yet, even one that reads FINISHED: the container's status decides.
Code 10 answered with HTTP 5xx on ``threads_publish`` has come back for posts that went live:
on that call any 5xx is ``ambiguous`` (``meta.calls``)."""

from __future__ import annotations

from collections.abc import Mapping

from herald.services.publisher.platforms.meta.calls import Kind
from herald.services.publisher.platforms.meta.graph import GraphError

IRREVERSIBLE = frozenset({"threads_publish"})

SUBCODES: Mapping[int, tuple[Kind, str]] = {
    4279009: (Kind.NOT_FOUND, "media not found (the container is not ready everywhere yet)"),
    4279004: (Kind.NOT_FOUND, "carousel items invalid or expired"),
    2207051: (Kind.BLOCKED, "activity restricted"),
    4279013: (Kind.BLOCKED, "user restricted"),
}
CODES: Mapping[int, tuple[Kind, str]] = {
    24: (Kind.NOT_FOUND, "the requested resource does not exist"),
    9: (Kind.QUOTA, "publishing quota used up"),
}
NAMED: Mapping[str, tuple[Kind, str]] = {
    "THREADS_API__LINK_LIMIT_EXCEEDED": (Kind.REJECTED, "more than 5 links"),
    "THREADS_API__FEATURE_NOT_AVAILABLE": (Kind.PERMANENT, "feature not available"),
}


def classify(call: str, error: GraphError) -> tuple[Kind, str] | None:
    if error.code_name is not None:
        return NAMED.get(error.code_name, (Kind.REJECTED, error.code_name))
    if error.subcode is not None and error.subcode in SUBCODES:
        return SUBCODES[error.subcode]
    if error.code == 100 and "characters" in error.message:
        return Kind.REJECTED, "text too long"
    if error.code is not None:
        return CODES.get(error.code)
    return None
