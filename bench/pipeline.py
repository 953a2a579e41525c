"""A whole pipeline for a benchmark: its own topic/Redis/schema prefix on the local stack,
every service as a process, sandbox connections, jobs scheduled as commands from another
service would (publish.schedule), and the figures read back from Postgres."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
import redis

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.kafka.admin import admin, create_topics, delete_topics, load_topic_specs
from herald.shared.infra.paths import ROOT
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.messages.client import HeraldClient

MEDIA = ["https://cdn.example.com/bench.jpg"]


def _say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


@dataclass
class JobTimes:
    job_id: str
    due: float
    dispatched: float | None
    published: float | None
    status: str
    updated: float | None = None  # the job row's last write: the results service's, once done
    called: float | None = None  # when the publisher started the platform call


class BenchPipeline:
    def __init__(
        self,
        base: Settings,
        *,
        publishers: int = 1,
        latency_ms: float = 0.0,
        connections: int = 48,
        max_in_flight: int | None = None,
        log_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        connection_bodies: list[dict[str, Any]] | None = None,
        prepare: Callable[[BenchPipeline], None] | None = None,
    ) -> None:
        run = uuid.uuid4().hex[:8]
        self.base = base
        self.settings = Settings(
            kafka_bootstrap=base.kafka_bootstrap,
            redis_url=base.redis_url,
            database_url=base.database_url,
            stack_dir=base.stack_dir,
            topic_prefix=f"bench{run}.",
            redis_prefix=f"bench{run}:",
            db_schema=f"bench_{run}",
            publisher_max_in_flight=max_in_flight or base.publisher_max_in_flight,
        )
        self.publishers = publishers
        self.latency_ms = latency_ms
        self.connection_count = connections
        self.log_dir = log_dir or (base.resolved_stack_dir() / "logs" / "bench")
        self.extra_env = extra_env or {}
        self.connection_bodies = connection_bodies  # None: `connections` sandbox accounts
        self.prepare = prepare  # runs once the topics exist, before any service starts
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.connections: list[str] = []

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> BenchPipeline:
        s = self.settings
        migrate(s.database_url, s.db_schema)
        create_topics(s.kafka_bootstrap, load_topic_specs(), s.topic_prefix)
        if self.prepare is not None:
            self.prepare(self)
        self.connections = asyncio.run(self._make_connections())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        services = ["scheduler", "results", *["publisher"] * self.publishers]
        for i, service in enumerate(services):
            self._spawn(service, f"{service}{i}")
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._cleanup()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.settings.model_dump(mode="json").items():
            if value is not None and key not in ("replica", "secret_key"):
                env[f"HERALD_{key.upper()}"] = str(value)
        env["HERALD_METRICS_PORT"] = "0"
        env.update(self.extra_env)
        return env

    def _spawn(self, service: str, name: str) -> None:
        log = open(self.log_dir / f"{self.settings.topic_prefix}{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "herald", service],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=log,
        )
        log.close()
        self.procs.append((name, proc))

    async def _make_connections(self) -> list[str]:
        bodies = self.connection_bodies
        if bodies is None:
            bodies = [
                {
                    "platform": "sandbox",
                    "name": f"bench {i}",
                    "metadata": {"latency_ms": self.latency_ms},
                }
                for i in range(self.connection_count)
            ]
        rt = Runtime.build(self.settings)
        await rt.open()
        try:
            store = rt.connections()
            return [(await store.create(ADMIN, body))["id"] for body in bodies]
        finally:
            await rt.close()

    def _cleanup(self) -> None:
        s = self.settings
        with psycopg.connect(s.database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{s.db_schema}" CASCADE')
        client = redis.Redis.from_url(s.redis_url)
        for key in client.scan_iter(match=f"{s.redis_prefix}*", count=1000):
            client.delete(key)
        kafka = admin(s.kafka_bootstrap)
        topics = [t for t in kafka.list_topics(timeout=10).topics if t.startswith(s.topic_prefix)]
        delete_topics(s.kafka_bootstrap, topics)

    # ---- work ---------------------------------------------------------------------------------

    def client(self) -> HeraldClient:
        return HeraldClient(
            self.settings.kafka_bootstrap, "default", topic_prefix=self.settings.topic_prefix
        )

    def schedule(self, client: HeraldClient, n: int, due: datetime, start: int = 0) -> list[str]:
        return [
            client.schedule(
                platform="sandbox",
                connection_id=self.connections[(start + i) % len(self.connections)],
                media_asset_ids=MEDIA,
                caption=f"bench {start + i}",
                scheduled_at=due,
            )
            for i in range(n)
        ]

    def wait_terminal(self, expected: int, timeout: float, label: str) -> int:
        """Wait until `expected` jobs are terminal; prints progress; returns how many are."""
        deadline = time.monotonic() + timeout
        done = 0
        last_print = 0.0
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    f'SELECT count(*) FROM "{self.settings.db_schema}".jobs'
                    " WHERE status IN ('PUBLISHED', 'DEAD_LETTERED', 'CANCELLED')"
                ).fetchone()
                done = int(row[0]) if row else 0
                if time.monotonic() - last_print > 2:
                    _say(f"{label}: {done}/{expected} jobs done")
                    last_print = time.monotonic()
                if done >= expected:
                    break
                self.check_alive()
                # The figures come from the jobs' own timestamps, so polling once a second
                # only delays noticing the end; at 0.2 s this count was 5 % of Postgres's time.
                time.sleep(1.0)
        return done

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.log_dir}")

    def job_times(self) -> list[JobTimes]:
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT id, scheduled_at, dispatched_at, published_at, status, updated_at,"
                f' call_started_at FROM "{self.settings.db_schema}".jobs'
            ).fetchall()
        return [
            JobTimes(str(r[0]), r[1].timestamp(), _ts(r[2]), _ts(r[3]), r[4], _ts(r[5]), _ts(r[6]))
            for r in rows
        ]

    def jobs_per_copy(self) -> list[int]:
        """Published attempts per publisher copy, busiest first (the copies split the work
        by partition, and the accounts' keys decide how evenly)."""
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            rows = conn.execute(
                f'SELECT count(*) FROM "{self.settings.db_schema}".attempts'
                " WHERE outcome = 'published' GROUP BY worker ORDER BY 1 DESC"
            ).fetchall()
        return [int(r[0]) for r in rows]


@dataclass
class Sample:
    at: float  # wall clock, like JobTimes
    rss_mb: float
    in_flight: int


def rss_mb(pid: int) -> float:
    """A process's resident set size (VmRSS in /proc/<pid>/status), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PublisherSampler:
    """From a thread, every `interval` seconds: the first publisher copy's RSS and its calls
    in flight, counted as claims without a stored result (the publisher has no such gauge)."""

    def __init__(self, pipe: BenchPipeline, interval: float = 0.2) -> None:
        self.pid = next(proc.pid for name, proc in pipe.procs if name.startswith("publisher"))
        self.database_url = pipe.settings.database_url
        self.query = (
            f'SELECT count(*) FROM "{pipe.settings.db_schema}".publish_claims WHERE result IS NULL'
        )
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher-sampler", daemon=True)

    def __enter__(self) -> PublisherSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            next_at = time.monotonic()
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                next_at += self.interval
                row = conn.execute(self.query).fetchone()
                in_flight = int(row[0]) if row else 0
                self.samples.append(Sample(time.time(), rss_mb(self.pid), in_flight))


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": round(pick(0.50), 4),
        "p95": round(pick(0.95), 4),
        "p99": round(pick(0.99), 4),
        "max": round(ordered[-1], 4),
    }


def utc_in(seconds: float) -> datetime:
    return datetime.fromtimestamp(time.time() + seconds, UTC)


def summary(values: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v}" for k, v in values.items())
