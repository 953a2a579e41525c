"""Reading Threads back: a container's status, the user's threads (the job's post, and when
the oldest post leaves the publishing quota's window), and that quota."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from herald.platforms import PublishRequest
from herald.services.publisher.platforms.meta.calls import DEFAULT_QUOTA_SECONDS, Caller

IN_PROGRESS, FINISHED, PUBLISHED, ERROR, EXPIRED = (
    "IN_PROGRESS",
    "FINISHED",
    "PUBLISHED",
    "ERROR",
    "EXPIRED",
)
LOOK_BACK = timedelta(minutes=5)
_STAMP = "%Y-%m-%dT%H:%M:%S%z"


@dataclass(frozen=True)
class Status:
    code: str
    error_message: str | None
    body: dict[str, Any]


async def status(caller: Caller, container: str) -> Status:
    body = await caller.get("container_status", container, {"fields": "id,status,error_message"})
    message = body.get("error_message")
    return Status(str(body.get("status") or ""), str(message) if message else None, body)


async def find_thread(caller: Caller, user: str, request: PublishRequest) -> str | None:
    """The id of the user's thread with exactly the job's text since its slot (minus five
    minutes), the oldest when several; None when there is none (yet: the list lags)."""
    if not request.caption.strip():
        return None
    since = int((request.scheduled_at - LOOK_BACK).timestamp())
    params = {"fields": "id,text,timestamp", "since": str(since), "limit": "100"}
    mine = [t for t in await _threads(caller, user, params) if t.get("text") == request.caption]
    return str(mine[-1].get("id")) if mine else None


@dataclass(frozen=True)
class Quota:
    used: int
    total: int
    window_seconds: float

    @property
    def exhausted(self) -> bool:
        return self.used >= self.total


async def quota(caller: Caller, user: str) -> Quota | None:
    """``threads_publishing_limit``; None when its answer has no usable numbers."""
    body = await caller.get(
        "publishing_limit", f"{user}/threads_publishing_limit", {"fields": "quota_usage,config"}
    )
    data = body.get("data")
    entry = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    used, total = entry.get("quota_usage"), (config or {}).get("quota_total")
    if not isinstance(used, int) or not isinstance(total, int):
        return None
    window = (config or {}).get("quota_duration")
    return Quota(used, total, float(window) if isinstance(window, int | float) else 86_400.0)


async def quota_frees_in(caller: Caller, user: str, window_seconds: float) -> float:
    """Seconds until the oldest post of the window leaves it (one page of the list; the
    default wait when the page is full or unreadable)."""
    since = int(time.time() - window_seconds)
    params = {"fields": "id,timestamp", "since": str(since), "limit": "100"}
    posts = await _threads(caller, user, params)
    if not posts or len(posts) >= 100:
        return DEFAULT_QUOTA_SECONDS
    try:
        oldest = datetime.strptime(str(posts[-1].get("timestamp")), _STAMP).timestamp()
    except ValueError:
        return DEFAULT_QUOTA_SECONDS
    return max(oldest + window_seconds - time.time(), 1.0)


async def _threads(caller: Caller, user: str, params: dict[str, str]) -> list[dict[str, Any]]:
    body = await caller.get("threads_list", f"{user}/threads", params)
    data = body.get("data")
    return [t for t in data if isinstance(t, dict)] if isinstance(data, list) else []
