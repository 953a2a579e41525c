"""Test helpers: read a topic back, make connections, run service processes, build an
older Herald's schema."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.kafka.client import consumer
from herald.shared.infra.paths import MIGRATIONS_DIR, ROOT
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings


def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 60.0, quiet: float = 2.0
) -> list[dict[str, Any]]:
    """Every value on `topic` from the start: waits for `expect` records, then for `quiet`
    seconds more, so duplicates arriving late are seen too."""
    c = consumer(bootstrap, f"check-{uuid.uuid4().hex}")
    c.subscribe([topic])
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    quiet_until: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = [m for m in c.consume(1000, 0.2) if not m.error()]
            values += [orjson.loads(m.value() or b"null") for m in batch]
            if len(values) >= expect:
                if quiet_until is None or batch:
                    quiet_until = time.monotonic() + quiet
                elif time.monotonic() >= quiet_until:
                    break
    finally:
        c.close()
    return values


def read_records(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 60.0
) -> list[tuple[int, int, dict[str, Any]]]:
    """The first `expect` records on `topic` from the start (or what came within `timeout`
    seconds), as (partition, offset, value)."""
    c = consumer(bootstrap, f"check-{uuid.uuid4().hex}")
    c.subscribe([topic])
    records: list[tuple[int, int, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expect and time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                if not m.error():
                    value = orjson.loads(m.value() or b"null")
                    records.append((int(m.partition() or 0), int(m.offset() or 0), value))
    finally:
        c.close()
    return records


async def sandbox_connections(
    rt: Runtime, count: int, *, tenant: str = "default", metadata: dict[str, Any] | None = None
) -> list[str]:
    store = rt.connections()
    ids = []
    for i in range(count):
        created = await store.create(
            ADMIN,
            {
                "platform": "sandbox",
                "name": f"sandbox {i}",
                "metadata": metadata or {},
                "tenant_id": tenant,
            },
        )
        ids.append(created["id"])
    return ids


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a service process run with `settings` (a stack of a test's own)."""
    env = dict(os.environ)
    for key, value in settings.model_dump(mode="json").items():
        if value is not None and key not in ("replica", "secret_key"):
            env[f"HERALD_{key.upper()}"] = str(value)
    return env | extra


class ServiceProcess:
    """A Herald service run as `python -m herald <service>`, its stderr kept in a file.

    `faults` (e.g. `["--pause-after-mark", "600"]`) run it through the test-only hook
    `tests.support.faulty` instead, which pauses it at that point."""

    def __init__(
        self,
        service: str,
        env: dict[str, str],
        log_dir: Path,
        name: str = "",
        *,
        faults: Sequence[str] = (),
    ) -> None:
        self.service = service
        self.env = env
        self.name = name or service
        self.faults = list(faults)
        self.log_path = log_dir / f"{self.name}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        entry = (
            ["tests.support.faulty", self.service, *self.faults]
            if self.faults
            else ["herald", self.service]
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *entry],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


async def assert_none_in_progress(rt: Runtime) -> None:
    """A drained pipeline leaves no job IN_PROGRESS (each one reached a state of its own)."""
    stuck = await rt.db.fetch(
        "SELECT id, attempt_count, dispatched_at, call_started_at FROM jobs"
        " WHERE status = 'IN_PROGRESS' LIMIT 20"
    )
    assert stuck == [], stuck


async def aread_topic(bootstrap: str, topic: str, **kwargs: Any) -> list[dict[str, Any]]:
    """`read_topic` off the event loop, so in-process services keep running."""
    import asyncio

    return await asyncio.to_thread(lambda: read_topic(bootstrap, topic, **kwargs))


@contextmanager
def older_schema(url: str, schema: str, tmp_path: Path, last: int) -> Iterator[None]:
    """`schema` with the tables of an older Herald (the migrations up to `last` only), for
    a migration test; dropped afterwards."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name.split("_", 1)[0]) <= last:
            shutil.copy(path, folder)
    migrate(url, schema, folder)
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports, below Linux's ephemeral range (32768
    up), where the stack's own outgoing connections cannot take one between this check and
    the services binding it: `herald run` gives its children consecutive metrics ports."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000)
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + count):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports found")


async def queued_at(rt: Runtime, job_id: str) -> float | None:
    """The due time the delayed queue holds a queued job at (None: not queued)."""
    tenant = await rt.redis.hget(rt.queue.tenant_of_key, job_id)
    if tenant is None:
        return None
    return await rt.redis.zscore(rt.queue.tenant_key(tenant.decode()), job_id)
