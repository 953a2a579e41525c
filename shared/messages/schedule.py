"""`publish.schedule`: commands from other services (schedule, cancel, reschedule, retry one
job), written by `herald.shared.messages.client` or anyone, read by the scheduler."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from herald.shared.infra.names import SCHEDULE
from herald.shared.messages import codec

# The fields of a job a `schedule` command carries, and those a `reschedule` may change.
JOB_FIELDS = (
    "platform",
    "connection_id",
    "media_asset_ids",
    "caption",
    "caption_overrides",
    "scheduled_at",
    "media_type",
    "publish_deadline",
)
CHANGE_FIELDS = ("scheduled_at", "caption", "publish_deadline")


@dataclass(frozen=True)
class Command:
    kind: str  # schedule | cancel | reschedule | retry
    job_id: str
    tenant_id: str
    trace_id: str
    post_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict)  # a job (schedule), a change (reschedule)
    force: bool = False  # retry only


def command_value(
    kind: str, job_id: str, tenant_id: str, idempotency_key: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A command's value; fields given as None are left out."""
    return {
        "command": kind,
        "job_id": job_id,
        "tenant_id": tenant_id,
        "idempotency_key": idempotency_key or f"{kind}:{job_id}:{uuid.uuid4().hex}",
        "trace_id": codec.new_trace_id(),
        **{k: v for k, v in fields.items() if v is not None},
    }


def encode_command(value: dict[str, Any]) -> bytes:
    return codec.encode(SCHEDULE, value)


def decode_command(raw: bytes | None) -> Command:
    """Raises InvalidMessage for anything that is not a valid command."""
    found = codec.decode(SCHEDULE, raw)
    kind = found["command"]
    wanted = JOB_FIELDS if kind == "schedule" else CHANGE_FIELDS if kind == "reschedule" else ()
    return Command(
        kind=kind,
        job_id=found["job_id"],
        tenant_id=found["tenant_id"],
        trace_id=found["trace_id"],
        post_id=found.get("post_id"),
        body={k: found[k] for k in wanted if k in found},
        force=bool(found.get("force", False)),
    )
