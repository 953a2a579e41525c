"""`publish.status`: every change of a job, for callers (written through the outbox in the
transaction of the change)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from herald.shared.domain.jobs import next_attempt_shown
from herald.shared.infra.db.pool import Row
from herald.shared.infra.names import STATUS
from herald.shared.messages import codec

Event = tuple[str, str, dict[str, Any]]  # (base topic, key, value), as the outbox takes it


def status_event(
    job: Row, status: str, *, reason: str | None = None, time: datetime | None = None
) -> Event:
    """The event of a job row after its change."""
    value = {
        "job_id": str(job["id"]),
        "tenant_id": job["tenant_id"],
        "post_id": str(job["post_id"]),
        "status": status,
        "attempt": int(job["attempt_count"]),
        "reason": reason,
        "provider_ids": job.get("provider_ids") or {},
        "next_attempt_at": codec.iso(next_attempt_shown(status, job.get("next_attempt_at"))),
        "published_at": codec.iso(job.get("published_at")),
        "time": codec.iso(time or codec.now_utc()),
        "trace_id": job["trace_id"],
    }
    return STATUS, str(job["id"]), value
