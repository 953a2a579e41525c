"""Publisher throughput with the sandbox platform: N requests, K publisher copies.

    python -m bench.publisher_throughput --requests 50000 --copies 1 --latency-ms 0

Runs in a namespace of its own (topic prefix, Redis prefix, Postgres schema; dropped at the
end) on the stack the HERALD_* URLs name. Jobs are inserted in bulk and their requests are
produced before the copies start (`herald publisher` processes), so the figure is the
publisher's drain rate of a backlog: results / (last finished_at - first started_at), read
back from publish.result. Prints one line per run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg

from herald.services.scheduler.placement import partition_for
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.kafka.admin import admin, create_topics, load_topic_specs
from herald.shared.infra.kafka.client import Producer, consumer
from herald.shared.infra.names import REQUEST, RESULT
from herald.shared.infra.paths import ROOT
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.messages import codec
from herald.shared.messages.request import encode_request

_INSERT_JOBS = """
INSERT INTO jobs (id, tenant_id, post_id, platform, connection_id, media_asset_ids, caption,
    scheduled_at, publish_deadline, status, attempt_count, next_attempt_at, dispatched_at,
    request_hash, trace_id)
SELECT gen_random_uuid(), 'default', gen_random_uuid(), 'sandbox',
    (%(connections)s::uuid[])[1 + (n %% cardinality(%(connections)s::uuid[]))],
    ARRAY['https://cdn.example.com/bench.jpg'], 'bench', now(), now() + interval '1 day',
    'IN_PROGRESS', 1, now(), now(), 'bench', md5(n::text)
FROM generate_series(1, %(count)s) AS n
RETURNING *, (SELECT c.placement FROM connections c WHERE c.id = connection_id) AS placement
"""


def namespace_settings(base: Settings, run: str) -> Settings:
    return Settings(
        **{
            **base.model_dump(exclude={"replica", "secret_key"}),
            "topic_prefix": f"b{run}.",
            "redis_prefix": f"b{run}:",
            "db_schema": f"b_{run}",
        }
    )


def env_for(settings: Settings, max_in_flight: int) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in settings.model_dump(mode="json").items():
        if value is not None and key not in ("replica", "secret_key"):
            env[f"HERALD_{key.upper()}"] = str(value)
    env["HERALD_PUBLISHER_MAX_IN_FLIGHT"] = str(max_in_flight)
    return env


async def prepare(settings: Settings, requests: int, accounts: int, latency_ms: int) -> None:
    rt = Runtime.build(settings)
    await rt.open()
    try:
        meta: dict[str, Any] = {"latency_ms": latency_ms} if latency_ms else {}
        connections = [
            (
                await rt.connections().create(
                    ADMIN, {"platform": "sandbox", "name": f"bench-{i}", "metadata": meta}
                )
            )["id"]
            for i in range(accounts)
        ]
        rows = await rt.db.fetch(_INSERT_JOBS, {"connections": connections, "count": requests})
    finally:
        await rt.close()
    now = time.time()
    topic = settings.topic_prefix + REQUEST
    producer = Producer(settings.kafka_bootstrap)
    partitions = producer.partition_count(topic)  # placed as the dispatcher places them
    producer.send_batch(
        (
            topic,
            str(r["connection_id"]),
            encode_request(r, now),
            partition_for(r["placement"], partitions),
        )
        for r in rows
    )


def read_results(settings: Settings, expected: int, timeout: float) -> list[dict[str, Any]]:
    c = consumer(settings.kafka_bootstrap, f"bench-reader-{uuid.uuid4().hex[:6]}")
    c.subscribe([settings.topic_prefix + RESULT])
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            for msg in c.consume(10_000, 0.5):
                raw = msg.value()
                if msg.error() is None and raw is not None:
                    values.append(orjson.loads(raw))
    finally:
        c.close()
    return values


def cleanup(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE')
    kafka = admin(settings.kafka_bootstrap)
    topics = [
        t for t in kafka.list_topics(timeout=10).topics if t.startswith(settings.topic_prefix)
    ]
    if topics:
        for future in kafka.delete_topics(topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result()


def run_once(args: argparse.Namespace) -> str:
    settings = namespace_settings(Settings(), uuid.uuid4().hex[:8])
    migrate(settings.database_url, settings.db_schema)
    create_topics(settings.kafka_bootstrap, load_topic_specs(), settings.topic_prefix)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(prepare(settings, args.requests, args.accounts, args.latency_ms))
        env = env_for(settings, args.max_in_flight)
        logs = Path(args.log_dir) if args.log_dir else None
        for i in range(args.copies):
            out = open(logs / f"publisher-{i}.log", "wb") if logs else subprocess.DEVNULL  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "herald", "publisher"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=out,
                )
            )
        values = read_results(settings, args.requests, args.timeout)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        cleanup(settings)
    if not values:
        return "no results"
    first = min(codec.instant_or_none(v["started_at"]) for v in values)  # type: ignore[type-var]
    last = max(codec.instant_or_none(v["finished_at"]) for v in values)  # type: ignore[type-var]
    seconds = (last - first).total_seconds()  # type: ignore[operator]
    outcomes: dict[str, int] = {}
    for v in values:
        outcomes[v["outcome"]] = outcomes.get(v["outcome"], 0) + 1
    return (
        f"copies={args.copies} latency_ms={args.latency_ms} in_flight={args.max_in_flight} "
        f"requests={args.requests} results={len(values)} seconds={seconds:.2f} "
        f"rate={len(values) / max(seconds, 1e-9):.0f}/s outcomes={outcomes}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--max-in-flight", type=int, default=256)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--log-dir", default="")
    args = p.parse_args()
    print(run_once(args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
