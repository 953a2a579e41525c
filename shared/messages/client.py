"""A small Python client for other services: produces commands to `publish.schedule`.

Every command carries a client-made `job_id`, the `tenant_id` and an idempotency key, so
re-sending the same command is harmless. Outcomes arrive on `publish.status`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.names import SCHEDULE, Names
from herald.shared.messages import codec
from herald.shared.messages.schedule import command_value, encode_command


class HeraldClient:
    def __init__(self, bootstrap: str, tenant_id: str, *, topic_prefix: str = "") -> None:
        self.tenant_id = tenant_id
        self.topic = Names(topic_prefix).topic(SCHEDULE)
        self._producer = Producer(bootstrap)
        self._pending: list[tuple[str, str | bytes | None, bytes]] = []

    def _command(self, command: str, job_id: str, key: str | None, **fields: Any) -> str:
        value = command_value(command, job_id, self.tenant_id, key, **fields)
        self._pending.append((self.topic, job_id, encode_command(value)))
        return job_id

    def schedule(
        self,
        *,
        connection_id: str,
        media_asset_ids: list[str],
        platform: str | None = None,
        caption: str = "",
        caption_overrides: dict[str, str] | None = None,
        scheduled_at: datetime | None = None,
        media_type: str | None = None,
        publish_deadline: datetime | None = None,
        post_id: str | None = None,
        job_id: str | None = None,
    ) -> str:
        """Queue a schedule command; returns the job id. Call `flush()` to send. Without
        `platform`, the connection's own is used (and its limits checked)."""
        job_id = job_id or str(uuid.uuid4())
        return self._command(
            "schedule",
            job_id,
            f"schedule:{job_id}",
            platform=platform,
            connection_id=connection_id,
            media_asset_ids=media_asset_ids,
            caption=caption,
            caption_overrides=caption_overrides or None,
            scheduled_at=_rfc3339(scheduled_at),
            media_type=media_type,
            publish_deadline=_rfc3339(publish_deadline),
            post_id=post_id,
        )

    def schedule_post(
        self,
        *,
        connection_ids: list[str],
        media_asset_ids: list[str],
        post_id: str | None = None,
        job_ids: list[str] | None = None,
        **fields: Any,
    ) -> tuple[str, list[str]]:
        """One post on several connections (of any networks): one schedule command per
        connection, sharing a `post_id`; `fields` as `schedule` takes them. Returns the post
        id and the job ids, in the order of `connection_ids`."""
        post = post_id or str(uuid.uuid4())
        ids = job_ids or [str(uuid.uuid4()) for _ in connection_ids]
        for connection_id, job_id in zip(connection_ids, ids, strict=True):
            self.schedule(
                connection_id=connection_id,
                media_asset_ids=media_asset_ids,
                post_id=post,
                job_id=job_id,
                **fields,
            )
        return post, ids

    def cancel(self, job_id: str) -> str:
        return self._command("cancel", job_id, f"cancel:{job_id}")

    def reschedule(
        self, job_id: str, *, scheduled_at: datetime | None = None, caption: str | None = None
    ) -> str:
        return self._command(
            "reschedule", job_id, None, scheduled_at=_rfc3339(scheduled_at), caption=caption
        )

    def retry(self, job_id: str, *, force: bool = False) -> str:
        return self._command("retry", job_id, None, force=force)

    def flush(self, timeout: float = 60.0) -> int:
        """Send every queued command and wait until Kafka acknowledged them."""
        pending, self._pending = self._pending, []
        return self._producer.send_batch(pending, timeout)


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return codec.iso(value)
