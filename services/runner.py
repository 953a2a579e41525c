"""`herald run`: every service as a child process, for local use.

Migrates, creates topics, makes the admin key once (`<stack dir>/admin.key`, mode 0600),
starts scheduler, api, N publishers and results with metrics ports from 9101 upward,
writes the Prometheus targets file, restarts a child that dies, and stops them in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.kafka.admin import create_topics, load_topic_specs
from herald.shared.infra.paths import ROOT, in_checkout
from herald.shared.infra.retry import Backoff
from herald.shared.infra.settings import Settings, create_private_file

FIRST_METRICS_PORT = 9101
# Stop order: no new work first (api, scheduler), then drain publishers, results last.
STOP_ORDER = ("api", "scheduler", "publisher", "results")
RESTART_BACKOFF = Backoff(first=1.0, cap=30.0)


@dataclass
class Child:
    service: str
    name: str
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)
    restart_at: float | None = None  # exited: started again at this instant (monotonic)

    def start(self, env: dict[str, str]) -> None:
        child_env = env | {
            "HERALD_METRICS_PORT": str(self.metrics_port),
            "HERALD_REPLICA": self.name,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "herald", self.service],
            cwd=ROOT if in_checkout() else None,
            env=child_env,
        )
        self.started = time.monotonic()


def watch(children: list[Child], env: dict[str, str], now: float) -> None:
    """Restart the children that exited, each after its own backoff (1 s doubling to 30 s,
    from 1 s again once a child had run a minute), never holding up the others."""
    for child in children:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restart_at = None
                child.restarts += 1
                child.start(env)
                child.started = now
            continue
        if child.proc is None or child.proc.poll() is None:
            continue
        if now - child.started > 60:
            child.restarts = 0
        delay = RESTART_BACKOFF.delay(child.restarts + 1)
        child.restart_at = now + delay
        _say(f"{child.name} exited with {child.proc.returncode}; restarting in {delay:.1f}s")


def _say(text: str) -> None:
    print(f"[herald run] {text}", file=sys.stderr, flush=True)


def admin_key(settings: Settings) -> str:
    """The admin API key, created once into <stack dir>/admin.key (0600) and reused."""
    path = settings.resolved_stack_dir() / "admin.key"
    if path.exists():
        return path.read_text().strip()
    from herald.shared.infra.db.pool import Database
    from herald.shared.stores import tenants

    async def create() -> str:
        db = Database(settings.database_url, settings.db_schema, max_size=1)
        await db.open()
        try:
            _, key = await tenants.create_api_key(
                db, tenant_id=None, admin=True, label="herald run admin"
            )
            return key
        finally:
            await db.close()

    return create_private_file(path, asyncio.run(create()))


def write_targets(settings: Settings, children: list[Child]) -> Path:
    path = settings.resolved_stack_dir() / "prometheus" / "targets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [
        {
            "targets": [f"127.0.0.1:{c.metrics_port}"],
            "labels": {"service": c.service, "replica": c.name},
        }
        for c in children
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=2))
    tmp.replace(path)
    return path


def plan(publishers: int, first_port: int = FIRST_METRICS_PORT) -> list[Child]:
    services = ["scheduler", "api", *["publisher"] * publishers, "results"]
    children = []
    counts: dict[str, int] = {}
    for i, service in enumerate(services):
        counts[service] = counts.get(service, 0) + 1
        children.append(Child(service, f"{service}-{counts[service]}", first_port + i))
    return children


def run_all(settings: Settings, *, publishers: int = 2) -> int:
    migrate(settings.database_url, settings.db_schema)
    create_topics(settings.kafka_bootstrap, load_topic_specs(), settings.topic_prefix)
    key = admin_key(settings)
    # HERALD_METRICS_PORT, when set, is the first child's port (default 9101 upward).
    children = plan(publishers, settings.metrics_port or FIRST_METRICS_PORT)
    env = dict(os.environ)
    settings.ensure_local_secret_key()  # one key for every child, made before they start
    for child in children:
        child.start(env)
    targets = write_targets(settings, children)

    _say(f"API        http://127.0.0.1:{settings.api_port}/  (ops page; spec at /openapi.json)")
    _say(f"admin key  {key}   (kept in {settings.resolved_stack_dir() / 'admin.key'})")
    for child in children:
        _say(
            f"{child.name:<12} pid {child.proc.pid if child.proc else '-':<7} "
            f"metrics http://127.0.0.1:{child.metrics_port}/metrics"
        )
    _say(f"Prometheus http://127.0.0.1:{settings.prometheus_port}/  (targets in {targets})")
    _say("Ctrl-C stops every service")

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        watch(children, env, time.monotonic())
        time.sleep(0.5)

    _say("stopping")
    for service in STOP_ORDER:
        group = [c for c in children if c.service == service and c.proc is not None]
        for child in group:
            assert child.proc is not None
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in group:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.proc.kill()
    _say("stopped")
    return 0
