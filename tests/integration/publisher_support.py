"""Helpers for the publisher's integration and chaos tests (real Kafka, Redis, Postgres)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.kafka.client import Producer, consumer
from herald.shared.infra.names import REQUEST
from herald.shared.infra.runtime import Runtime
from herald.shared.messages import codec
from herald.shared.messages.request import request_value

TOKEN = "sbx-SECRET-token-4f9d2c7e"  # given to sandbox connections; must never leak
IMAGE = "https://cdn.example.com/herald/photo.jpg"


async def sandbox_connection(rt: Runtime, token: str | None = TOKEN, **metadata: Any) -> str:
    body: dict[str, Any] = {"platform": "sandbox", "name": "sandbox", "metadata": metadata}
    if token:
        body["access_token"] = token
    created = await rt.connections().create(ADMIN, body)
    return str(created["id"])


async def schedule(rt: Runtime, connection_ids: list[str], *, caption: str = "hello") -> list[str]:
    """One job per connection (one post), due now."""
    body: dict[str, Any] = {"platform": "sandbox", "media_asset_ids": [IMAGE], "caption": caption}
    if len(connection_ids) == 1:
        body["connection_id"] = connection_ids[0]
    else:
        body["connection_ids"] = connection_ids
    result = await rt.jobs().schedule(ADMIN, body)
    return [str(j["id"]) for j in result.body.get("jobs", [result.body])]


async def dispatch(rt: Runtime, job_ids: list[str]) -> list[dict[str, Any]]:
    """Mark jobs IN_PROGRESS with their next attempt (as the dispatcher does); their
    publish.request values."""
    rows = await rt.db.fetch(
        "UPDATE jobs SET status = 'IN_PROGRESS', attempt_count = attempt_count + 1,"
        " dispatched_at = now() WHERE id = ANY(%s::uuid[]) RETURNING *",
        (job_ids,),
    )
    now = time.time()
    return [request_value(r, now) for r in rows]


def produce(producer: Producer, topic: str, values: Iterable[dict[str, Any]]) -> int:
    return producer.send_batch(
        (topic, str(v["connection_id"]), codec.encode(REQUEST, dict(v))) for v in values
    )


class TopicReader:
    """Reads a whole topic from the beginning (its own group), decoding JSON values."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = consumer(bootstrap, f"reader-{uuid.uuid4().hex[:8]}")
        self._consumer.subscribe([topic])
        self.values: list[dict[str, Any]] = []
        self.raw: list[bytes] = []

    async def poll(self) -> list[dict[str, Any]]:
        batch = await asyncio.to_thread(self._consumer.consume, 5000, 0.2)
        for msg in batch:
            raw = msg.value()
            if msg.error() is None and raw is not None:
                self.raw.append(raw)
                self.values.append(orjson.loads(raw))
        return self.values

    def close(self) -> None:
        self._consumer.close()


def committed_total(bootstrap: str, group: str, topic: str, partitions: int = 12) -> int:
    """Sum of a group's committed offsets on a topic (0 for partitions without a commit)."""
    c = consumer(bootstrap, group)
    try:
        parts = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        c.close()
    return sum(max(int(p.offset), 0) for p in parts)


def by_attempt(values: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for v in values:
        out.setdefault((v["job_id"], int(v["attempt"])), []).append(v)
    return out


async def posted_unanswered(rt: Runtime, victim: str | None = None) -> Any:
    """A worker that posted for a claim it holds and has not stored the result yet (or, with
    `victim`, that worker's such jobs)."""
    rows = await rt.db.fetch(
        "SELECT c.worker, c.job_id::text AS job_id FROM publish_claims c JOIN sandbox_posts s"
        " ON s.job_id = c.job_id AND s.attempt = c.attempt"
        " WHERE c.result IS NULL AND (%(victim)s::text IS NULL OR c.worker = %(victim)s)",
        {"victim": victim},
    )
    if victim is not None:
        return [r["job_id"] for r in rows]
    return rows[0]["worker"] if rows else None
