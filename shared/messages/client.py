"""A small Python client for other services: produces commands to `publish.schedule`.

Every command carries a client-made `job_id`, the `tenant_id` and an idempotency key, so
re-sending the same command is harmless. Outcomes arrive on `publish.status`, and a refused
command as a dead letter on `publish.dlq`: `follow` reads both for the client's jobs. Kafka
security settings come from HERALD_KAFKA_<PROPERTY> / HERALD_KAFKA_CONFIG_FILE, or as
`config` (librdkafka properties). Needs neither the services' stores nor faust.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any

import orjson

from herald.shared.domain.jobs import TERMINAL
from herald.shared.infra.kafka.client import Producer, consumer
from herald.shared.infra.names import DLQ, SCHEDULE, STATUS, Names
from herald.shared.messages import codec
from herald.shared.messages.schedule import command_value, encode_command


class HeraldClient:
    def __init__(
        self,
        bootstrap: str,
        tenant_id: str,
        *,
        topic_prefix: str = "",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.bootstrap = bootstrap
        self.names = Names(topic_prefix)
        self.topic = self.names.topic(SCHEDULE)
        self._config = dict(config or {})
        self._producer = Producer(bootstrap, **self._config)
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

    def follow(self, job_ids: Iterable[str], timeout: float = 300.0) -> Iterator[dict[str, Any]]:
        """Yield every `publish.status` event of these jobs (this tenant's), and each dead
        letter naming one (`{"dead_letter": ...}`, e.g. a refused command), until each job
        is final (PUBLISHED, CANCELLED, DEAD_LETTERED, or dead-lettered as a command) or
        `timeout` seconds passed. Reads from the topics' start with a group of its own, so
        it sees events sent before it was called; an event may come twice."""
        waiting = set(job_ids)
        status, dlq = self.names.topic(STATUS), self.names.topic(DLQ)
        reader = consumer(self.bootstrap, f"herald-client-{uuid.uuid4().hex}", **self._config)
        reader.subscribe([status, dlq])
        deadline = time.monotonic() + timeout
        try:
            while waiting and time.monotonic() < deadline:
                msg = reader.poll(0.5)
                if msg is None or msg.error() is not None or msg.key() is None:
                    continue
                job_id = bytes(msg.key() or b"").decode()
                if job_id not in waiting:
                    continue
                value = orjson.loads(msg.value() or b"{}")
                if value.get("tenant_id") not in (None, self.tenant_id):
                    continue
                if msg.topic() == dlq:
                    waiting.discard(job_id)
                    yield {"job_id": job_id, "dead_letter": value}
                    continue
                if value.get("status") in TERMINAL:
                    waiting.discard(job_id)
                yield value
        finally:
            reader.close()

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued and release the producer."""
        self.flush(timeout)
        self._producer.close(timeout)

    def __enter__(self) -> HeraldClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return codec.iso(value)
