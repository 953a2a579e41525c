"""`publish.dlq`: dead letters, mirrored from their Postgres rows through the outbox (the
rows are the source for the API and redrive)."""

from __future__ import annotations

import base64
from typing import Any

from herald.shared.infra.names import DLQ
from herald.shared.messages import codec
from herald.shared.messages.status import Event


def dlq_event(
    *,
    dead_letter_id: str,
    reason: str,
    job_id: str | None,
    tenant_id: str | None,
    error: dict[str, Any] | None,
    raw: bytes | None = None,
    source_topic: str | None = None,
    request: dict[str, Any] | None = None,
    last_result: dict[str, Any] | None = None,
    attempt_summary: list[dict[str, Any]] | None = None,
    trace_id: str | None = None,
) -> Event:
    value: dict[str, Any] = {
        "reason": reason,
        "job_id": job_id,
        "tenant_id": tenant_id,
        "dead_letter_id": dead_letter_id,
        "request": request,
        "last_result": last_result,
        "attempt_summary": attempt_summary,
        "error": error,
        "source_topic": source_topic,
        "raw_base64": base64.b64encode(raw).decode() if raw is not None else None,
        "time": codec.iso(codec.now_utc()),
        "trace_id": trace_id or codec.new_trace_id(),
    }
    return DLQ, job_id or "", value
