"""What a connection's fields may hold: each check adds its field's error to `errors`.

Bounds keep one tenant from hurting the others: the metadata is stored with every
connection and read with every publish, and a sandbox's `latency_ms` holds a publisher
slot for that long.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_NAME = 200
# A real platform's token: Instagram's run to about 200 printable ASCII characters, so
# fewer than 32 is a paste mistake, not a token. Sandbox tokens are optional and free.
MIN_TOKEN = 32
MAX_TOKEN = 4096
_PLATFORM_TOKEN = re.compile(rf"[\x21-\x7e]{{{MIN_TOKEN},{MAX_TOKEN}}}")
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 5
MAX_METADATA_ENTRIES = 256
MAX_SANDBOX_LATENCY_MS = 60_000
# Which configured Graph host an Instagram connection is published through (Facebook Login,
# the default, or Instagram Login); never a URL of the tenant's choosing.
INSTAGRAM_LOGINS = ("facebook", "instagram")
_ACCOUNT_ID = re.compile(r"[0-9]{1,32}")
_SANDBOX_RATES = ("retryable_rate", "permanent_rate", "ambiguous_rate")


def check_name(name: Any, errors: dict[str, str]) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        errors["name"] = f"must be a non-empty string of at most {MAX_NAME} characters"


def check_token(platform: str, token: Any, errors: dict[str, str], *, required: bool) -> None:
    """`token` None means none was given; a given one is never empty."""
    if token is None:
        if required:
            errors["access_token"] = f"is required for {platform}"
        return
    if platform == "sandbox":
        ok = isinstance(token, str) and 0 < len(token) <= MAX_TOKEN
        rule = f"must be a non-empty string of at most {MAX_TOKEN} characters"
    else:
        ok = isinstance(token, str) and _PLATFORM_TOKEN.fullmatch(token) is not None
        rule = f"must be {MIN_TOKEN} to {MAX_TOKEN} printable ASCII characters without spaces"
    if not ok:
        errors["access_token"] = rule


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shape_problem(metadata: dict[str, Any]) -> str | None:
    """Why `metadata` is too deep, too wide or too large (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    entries = 0
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            return f"must nest at most {MAX_METADATA_DEPTH} levels deep"
        children = list(value.values()) if isinstance(value, dict) else value
        entries += len(children)
        if entries > MAX_METADATA_ENTRIES:
            return f"must hold at most {MAX_METADATA_ENTRIES} entries"
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
        return f"must be at most {MAX_METADATA_BYTES} bytes as JSON"
    return None


def check_metadata(platform: str, metadata: Any, errors: dict[str, str]) -> dict[str, Any]:
    """The metadata to store (`{}` for none)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        errors["metadata"] = "must be an object"
        return {}
    problem = _shape_problem(metadata)
    if problem:
        errors["metadata"] = problem
        return {}
    if platform == "instagram":
        account = metadata.get("instagramBusinessAccountId")
        if not isinstance(account, str) or not _ACCOUNT_ID.fullmatch(account):
            errors["metadata.instagramBusinessAccountId"] = (
                "is required for instagram: the account's numeric id (digits only)"
            )
        if metadata.get("login", "facebook") not in INSTAGRAM_LOGINS:
            errors["metadata.login"] = f"must be one of {', '.join(INSTAGRAM_LOGINS)}"
    if platform == "sandbox":
        for key in _SANDBOX_RATES:
            value = metadata.get(key, 0)
            if not _number(value) or not 0 <= value <= 1:
                errors[f"metadata.{key}"] = "must be a number in [0, 1]"
        latency = metadata.get("latency_ms", 0)
        if not _number(latency) or not 0 <= latency <= MAX_SANDBOX_LATENCY_MS:
            errors["metadata.latency_ms"] = (
                f"must be a number of milliseconds in [0, {MAX_SANDBOX_LATENCY_MS}]"
            )
    return metadata
