"""The building blocks' ceilings on this machine, measured in the same run as the pipeline:
Redis batched claim with lease, Kafka produce+consume of a request-sized message, Postgres
insert of attempt rows (executemany in one transaction, and COPY)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from herald.shared.infra.delayed_queue import DelayedQueue, Due
from herald.shared.infra.kafka.admin import TopicSpec, admin, create_topics, delete_topics
from herald.shared.infra.kafka.client import Producer, consumer
from herald.shared.infra.names import Names
from herald.shared.infra.redis_client import connect
from herald.shared.infra.settings import Settings

REQUEST_SIZE = 520  # bytes: about one publish.request value


async def redis_claim(settings: Settings, n: int = 200_000, batch: int = 1000) -> float:
    client = connect(settings.redis_url)
    queue = DelayedQueue(client, Names("", f"bench-limits-{uuid.uuid4().hex[:6]}:"))
    now = time.time()
    for start in range(0, n, 10_000):
        await queue.add(
            {f"j{i}": Due("bench", now - 1) for i in range(start, min(n, start + 10_000))},
            wake=False,
        )
    began = time.perf_counter()
    claimed = 0
    while claimed < n:
        got = await queue.claim(batch, 30.0)
        await queue.ack([c.job_id for c in got])
        claimed += len(got)
    elapsed = time.perf_counter() - began
    await client.delete(
        queue.tenants_key, queue.tenant_of_key, queue.tenant_key("bench"), queue.inflight_key
    )
    await client.delete(queue.due_key)
    await client.aclose()
    return n / elapsed


def kafka_produce_consume(settings: Settings, n: int = 100_000) -> float:
    prefix = f"bench-limits-{uuid.uuid4().hex[:6]}."
    create_topics(settings.kafka_bootstrap, [TopicSpec("pc", 12, 3_600_000)], prefix)
    topic = prefix + "pc"
    payload = b"x" * REQUEST_SIZE
    _wait_for_leaders(settings.kafka_bootstrap, topic, 12)
    producer = Producer(settings.kafka_bootstrap)
    began = time.perf_counter()
    producer.send_batch((topic, f"c{i % 48}", payload) for i in range(n))
    c = consumer(settings.kafka_bootstrap, prefix + "g")
    # Assigned, not subscribed: the ceiling of moving records, without the group join.
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(12)])
    seen = 0
    while seen < n:
        # Never ask for more than is left: consume() waits its whole timeout for a batch.
        seen += sum(1 for m in c.consume(min(10_000, n - seen), 1.0) if not m.error())
    elapsed = time.perf_counter() - began
    c.close()
    delete_topics(settings.kafka_bootstrap, [topic])
    return n / elapsed


def _wait_for_leaders(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0) -> None:
    """A topic just created has no partition leaders for a moment; time only the traffic."""
    client = admin(bootstrap)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = client.list_topics(topic, timeout=5).topics.get(topic)
        if (
            meta
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{topic}: partitions without a leader after {timeout}s")


def postgres_inserts(settings: Settings, n: int = 100_000) -> dict[str, float]:
    table = f"bench_attempts_{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    rows = [
        (str(uuid.uuid4()), 1, "w", now, now, "published", '{"media_id": "x"}') for _ in range(n)
    ]
    out: dict[str, float] = {}
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE UNLOGGED TABLE IF NOT EXISTS {table} (job_id uuid, attempt int, worker text,"
            " started_at timestamptz, finished_at timestamptz, outcome text, provider_ids jsonb,"
            " PRIMARY KEY (job_id, attempt))"
        )
        try:
            began = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
            out["executemany_rows_per_s"] = n / (time.perf_counter() - began)
            conn.execute(f"TRUNCATE {table}")
            began = time.perf_counter()
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY {table} FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            out["copy_rows_per_s"] = n / (time.perf_counter() - began)
        finally:
            conn.execute(f"DROP TABLE {table}")
    return out


def measure(settings: Settings, *, scale: float = 1.0) -> dict[str, Any]:
    claim = asyncio.run(redis_claim(settings, n=int(200_000 * scale)))
    kafka = kafka_produce_consume(settings, n=int(100_000 * scale))
    pg = postgres_inserts(settings, n=int(100_000 * scale))
    return {
        "redis_claim_jobs_per_s": round(claim),
        "kafka_produce_consume_msgs_per_s": round(kafka),
        "postgres_executemany_rows_per_s": round(pg["executemany_rows_per_s"]),
        "postgres_copy_rows_per_s": round(pg["copy_rows_per_s"]),
    }
