"""The unit of work on `publish.request`, and the connection it is published through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PublishRequest:
    job_id: str
    tenant_id: str
    post_id: str
    platform: str
    connection_id: str
    attempt: int
    media_asset_ids: list[str]
    caption: str
    media_type: str | None
    scheduled_at: datetime
    due_at: datetime
    publish_deadline: datetime
    trace_id: str
    check_only: bool = False


@dataclass(frozen=True)
class Connection:
    id: str
    tenant_id: str
    platform: str
    name: str
    status: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # Decrypted in memory only; never logged, never written to a topic.
    access_token: str = field(default="", repr=False)
