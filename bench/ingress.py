"""`herald bench ingress`: how fast jobs come in, on an isolated pipeline (its own topics,
schema and Redis keys) with an API process and the scheduler, no publisher.

(a) `POST /publishing/jobs` with 32 concurrent clients, (b) `POST /publishing/jobs:batch`
with 1,000 jobs a request from 4 concurrent senders (both through `hey`, a load generator
in Go, installed on first use into /var/cache/herald/bin), and (c) `publish.schedule`: the
commands produced at once, timed from the first produce until every job is a row in
Postgres and an id in the Redis queue, read by one scheduler and then (d) by two copies of
it (the consumer group splits the topic's partitions between them: how the ingress scales
out; one scheduler's Python is the ingress's ceiling). Each figure is printed beside its
target.

The single route's requests carry no Idempotency-Key (hey sends one body; with a key every
request after the first would be a replay): each is a new job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.pipeline import MEDIA, BenchPipeline, utc_in
from herald.shared.infra.kafka.admin import admin
from herald.shared.infra.names import SCHEDULER_GROUP, Names
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.stores.tenants import create_api_key

TOOLS = Path("/var/cache/herald/bin")
HEY = "github.com/rakyll/hey@v0.1.5"
TARGETS = {
    "single": 2_000.0,
    "batch": 20_000.0,
    "kafka": 20_000.0,
    "kafka_two_schedulers": 20_000.0,
}
LABELS = {
    "single": "single endpoint",
    "batch": "batch endpoint",
    "kafka": "kafka ingress, one scheduler",
    "kafka_two_schedulers": "kafka ingress, two scheduler copies",
}


def _say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def hey() -> str:
    """The `hey` binary: on PATH, in the cache, or installed into the cache now."""
    found = shutil.which("hey") or (str(TOOLS / "hey") if (TOOLS / "hey").exists() else None)
    if found:
        return found
    _say(f"installing the load generator hey ({HEY}) into {TOOLS} (once)")
    TOOLS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(TOOLS))
    subprocess.run(["go", "install", HEY], env=env, check=True)
    return str(TOOLS / "hey")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _job(connection: str, i: int) -> dict[str, Any]:
    return {
        "platform": "sandbox",
        "connection_id": connection,
        "media_asset_ids": MEDIA,
        "caption": f"bench {i}",
        "scheduled_at": utc_in(3600).isoformat(),
    }


def _load(url: str, key: str, body: bytes, *, requests: int, clients: int) -> dict[str, Any]:
    """`hey` POSTing `body` `requests` times from `clients` connections: seconds, statuses."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        cmd = [hey(), "-n", str(requests), "-c", str(clients), "-m", "POST", "-t", "60"]
        cmd += ["-T", "application/json", "-H", f"Authorization: Bearer {key}", "-D", f.name, url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = re.search(r"Total:\s+([\d.]+) secs", out)
    statuses = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    latency = dict(re.findall(r"(\d+)%+ in ([\d.]+) secs", out))
    return {
        "seconds": float(total.group(1)) if total else 0.0,
        "statuses": statuses,
        # hey leaves out the percentiles a short run cannot tell
        "p50_s": float(latency["50"]) if "50" in latency else None,
        "p99_s": float(latency["99"]) if "99" in latency else None,
    }


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class _Count:
    """Jobs in the pipeline's Postgres schema and ids in its Redis queue."""

    def __init__(self, settings: Settings) -> None:
        self.pg = psycopg.connect(settings.database_url, autocommit=True)
        self.sql = f'SELECT count(*) FROM "{settings.db_schema}".jobs'
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.queued = Runtime.build(settings).queue.tenant_of_key  # every queued id, by tenant

    def __call__(self) -> tuple[int, int]:
        row = self.pg.execute(self.sql).fetchone()
        return (int(row[0]) if row else 0), int(self.redis.hlen(self.queued))


def measure(base: Settings, n: int = 20_000) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with BenchPipeline(base, publishers=0, extra_env={"HERALD_API_PORT": str(port)}) as pipe:
        pipe._spawn("api", "api0")
        _wait_ready(url)
        key = _admin_key(pipe.settings)
        count = _Count(pipe.settings)
        conn = pipe.connections[0]
        figures: dict[str, Any] = {}

        # (a) one job a request, 32 clients
        before = count()[0]
        single = _load(
            f"{url}/publishing/jobs",
            key,
            json.dumps(_job(conn, 0)).encode(),
            requests=n // 2,
            clients=32,
        )
        made = count()[0] - before
        figures["single"] = single | {"jobs": made, "jobs_per_s": made / single["seconds"]}

        # (b) a thousand jobs a request, 4 senders
        before = count()[0]
        size = min(1000, n)
        body = json.dumps({"jobs": [_job(pipe.connections[i % 48], i) for i in range(size)]})
        batch = _load(
            f"{url}/publishing/jobs:batch",
            key,
            body.encode(),
            requests=max(4, n // size),
            clients=4,
        )
        made = count()[0] - before
        figures["batch"] = batch | {"jobs": made, "jobs_per_s": made / batch["seconds"]}

        # (c) publish.schedule, one scheduler, then (d) two copies of it sharing its partitions
        figures["kafka"] = _kafka(pipe, count, n)
        pipe._spawn("scheduler", "scheduler1")
        _wait_members(pipe.settings, 2)
        figures["kafka_two_schedulers"] = _kafka(pipe, count, n)
    for name, label in LABELS.items():
        figures[name]["jobs_per_s"] = round(figures[name]["jobs_per_s"], 1)
        rate, target = figures[name]["jobs_per_s"], TARGETS[name]
        print(f"{label} {rate:,.0f} jobs/s (target >= {target:,.0f})", file=sys.stderr, flush=True)
    return figures


def _kafka(pipe: BenchPipeline, count: _Count, n: int) -> dict[str, Any]:
    """`n` commands on publish.schedule: from the first produce until every job is in both
    stores."""
    rows_before, held_before = count()
    client = pipe.client()
    pipe.schedule(client, n, utc_in(3600))  # encoded now, produced by `flush`
    began = time.monotonic()
    client.flush()
    produced = time.monotonic() - began
    while count() < (rows_before + n, held_before + n):
        pipe.check_alive()
        time.sleep(0.05)
    seconds = time.monotonic() - began
    return {
        "jobs": n,
        "produce_s": round(produced, 3),
        "seconds": round(seconds, 3),
        "jobs_per_s": n / seconds,
    }


def _wait_members(settings: Settings, members: int, timeout: float = 60.0) -> None:
    """Until the scheduler's group has `members` copies, each with partitions."""
    group = Names.from_settings(settings).group(SCHEDULER_GROUP)
    kafka = admin(settings.kafka_bootstrap)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = kafka.describe_consumer_groups([group])[group].result(timeout=10)
        except Exception:  # the group is rebalancing or not there yet: ask again
            found = None
        if (
            found is not None
            and sum(1 for m in found.members if m.assignment.topic_partitions) >= members
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{group} never had {members} members with partitions")


def _admin_key(settings: Settings) -> str:
    import asyncio

    async def make() -> str:
        rt = Runtime.build(settings)
        await rt.open()
        try:
            return (await create_api_key(rt.db, tenant_id=None, admin=True))[1]
        finally:
            await rt.close()

    return asyncio.run(make())
