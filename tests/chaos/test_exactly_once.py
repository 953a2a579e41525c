"""Exactly-once on a platform that never deduplicates, end to end, on a stack of the test's
own: jobs flow through every service as a process while each kind of service is SIGKILLed
(the scheduler between its IN_PROGRESS mark and its produce, a publisher copy that has
posted and not answered yet, results, the API in the middle of requests), the run's Redis
keys are lost once (right after the scheduler's kill) and Postgres restarts.

Every job ends terminal, each PUBLISHED job has exactly one post, no job has two, a
dead-lettered one has none, and nothing waits for the stuck-job sweep (an hour away)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.kafka.admin import create_topics, load_topic_specs
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.messages.codec import now_utc
from herald.shared.stores.tenants import create_api_key
from stack import down
from stack.manager import down_service, up, up_service
from tests.conftest import FAST, drop_redis_keys, eventually
from tests.integration.publisher_support import posted_unanswered
from tests.support.helpers import ServiceProcess, sandbox_connections, settings_env
from tests.support.prometheus import free_port

pytestmark = pytest.mark.chaos
SCHEDULED = 400  # through the job service, due over 20 s
THROUGH_API = 100  # posted while the API is killed once
FLAKY = {"latency_ms": 60, "ambiguous_rate": 0.1, "retryable_rate": 0.1}
TERMINAL = {"PUBLISHED", "DEAD_LETTERED"}


# Ports of the test's own stack: below the ephemeral range (32768 up), where an outgoing
# connection's local port could take one, and used by no other test.
PORTS = {"kafka": 19192, "controller": 19193, "redis": 16479, "postgres": 15532, "prom": 19190}


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    folder = tmp_path_factory.mktemp("exactly-once-stack")
    settings = Settings(
        stack_dir=folder / "stack",
        kafka_bootstrap=f"127.0.0.1:{PORTS['kafka']}",
        kafka_controller_port=PORTS["controller"],
        redis_url=f"redis://127.0.0.1:{PORTS['redis']}/0",
        database_url=f"postgresql://herald@127.0.0.1:{PORTS['postgres']}/herald",
        prometheus_port=PORTS["prom"],
        db_schema="exactly",
        redis_prefix="exactly:",
        api_port=free_port(),
        **(FAST | {"stuck_after_seconds": 3600.0}),  # type: ignore[arg-type]
    )
    try:
        assert up(settings) == 0, "the test's own stack did not start"
        migrate(settings.database_url, settings.db_schema)
        create_topics(settings.kafka_bootstrap, load_topic_specs())
        yield settings
    finally:
        down(settings)


@pytest.fixture
async def rt(own_stack: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(own_stack)
    await runtime.open()
    yield runtime
    await runtime.close()


class Services:
    """The pipeline's processes, each restarted right after its SIGKILL."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.env = settings_env(settings)
        self.logs = logs
        self.procs: dict[str, ServiceProcess] = {}
        self.kills: list[str] = []

    def start(self, name: str, *faults: str) -> None:
        service = name.split("-")[0]
        self.procs[name] = ServiceProcess(service, self.env, self.logs, name, faults=faults).start()

    def kill(self, name: str) -> str:
        """SIGKILL it; answers what it logged."""
        self.procs[name].kill()
        self.kills.append(name)
        return self.procs[name].log()

    def kill_and_restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)

    def name_of(self, worker: str) -> str:
        """The service whose process is this publisher worker (`publisher-<replica>-<pid>`)."""
        return next(
            n for n, p in self.procs.items() if p.proc and worker.endswith(f"-{p.proc.pid}")
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


async def test_every_job_once_through_kills_a_store_restart_and_lost_redis_keys(
    own_stack: Settings, rt: Runtime, tmp_path: Path
) -> None:
    connections = await sandbox_connections(rt, 6, metadata=FLAKY)
    _, key = await create_api_key(rt.db, tenant_id=None, admin=True)
    start = now_utc() + timedelta(seconds=8)
    jobs = rt.jobs()
    scheduled = [
        (
            await jobs.schedule(
                ADMIN,
                {
                    "platform": "sandbox",
                    "connection_id": connections[i % len(connections)],
                    "media_asset_ids": ["https://cdn.example.com/x.jpg"],
                    "scheduled_at": (start + timedelta(seconds=20 * i / SCHEDULED)).isoformat(),
                },
            )
        ).body["id"]
        for i in range(SCHEDULED)
    ]
    services = Services(own_stack, tmp_path)
    # The first scheduler stops after its first IN_PROGRESS mark, before producing.
    services.start("scheduler", "--pause-after-mark", "600")
    for name in ("publisher-a", "publisher-b", "results", "api"):
        services.start(name)
    api = f"http://127.0.0.1:{own_stack.api_port}"
    try:
        client = asyncio.create_task(_post_through_the_api(api, key, connections))
        await eventually(lambda: _logged(services, "scheduler", "pausing after mark"), timeout=60)
        doomed = services.kill("scheduler")
        # Redis forgets the run, the paused batch's leases with it: only Postgres knows
        # those jobs were dispatched, and no publisher will ever see their requests.
        assert drop_redis_keys(own_stack.redis_url, own_stack.redis_prefix) > 0
        services.start("scheduler")
        # A publisher copy that has posted and not stored the result yet.
        worker = await eventually(lambda: posted_unanswered(rt), timeout=30, interval=0.005)
        victim = services.name_of(worker)
        services.kill_and_restart(victim)
        await _until(start + timedelta(seconds=6))
        services.kill_and_restart("results")
        services.kill_and_restart("api")  # in the middle of the client's requests
        await _until(start + timedelta(seconds=9))
        assert await asyncio.to_thread(down_service, own_stack, "postgres") == 0
        await asyncio.sleep(4)
        assert await asyncio.to_thread(up_service, own_stack, "postgres") == 0
        through_api = await client

        ids = scheduled + sorted(through_api)

        async def all_terminal() -> bool:
            try:
                rows = await rt.db.fetch("SELECT status FROM jobs WHERE id = ANY(%s)", (ids,))
            except Exception:
                return False
            return len(rows) == len(ids) and {r["status"] for r in rows} <= TERMINAL

        await eventually(all_terminal, timeout=240, interval=1.0)
        dead = [n for n, p in services.procs.items() if not p.alive()]
        assert not dead, [services.procs[n].log()[-3000:] for n in dead]
    finally:
        services.stop()

    assert victim.startswith("publisher") and len(services.kills) == 4
    assert "pausing after mark" in doomed
    assert "no publisher holds it" in services.procs["scheduler"].log()  # sent again
    assert len(through_api) == THROUGH_API  # one job per idempotency key, none lost
    rows = await rt.db.fetch("SELECT id, status FROM jobs")
    status = {str(r["id"]): r["status"] for r in rows}
    assert set(status) == set(ids)
    posts = Counter(str(r["job_id"]) for r in await rt.db.fetch("SELECT job_id FROM sandbox_posts"))
    doubled = [j for j, n in posts.items() if n > 1]
    assert not doubled, f"{len(doubled)} jobs posted twice, e.g. {doubled[:3]}"
    published = {j for j, s in status.items() if s == "PUBLISHED"}
    assert set(posts) == published  # one post each, and none for a dead-lettered job
    outcomes = Counter(status.values())
    assert outcomes["PUBLISHED"] > len(ids) * 0.9, outcomes
    print(f"\nkilled {services.kills}; {dict(outcomes)}; {sum(posts.values())} posts")


async def _post_through_the_api(api: str, key: str, connections: list[str]) -> set[str]:
    """POST jobs with an Idempotency-Key each; a request that gets no answer (the API was
    killed, or answered 503 while Postgres restarted) is sent again with the same key."""
    headers = {"Authorization": f"Bearer {key}"}
    created: set[str] = set()
    async with aiohttp.ClientSession(headers=headers) as http:
        for i in range(THROUGH_API):
            body = {
                "platform": "sandbox",
                "connection_id": connections[i % len(connections)],
                "media_asset_ids": ["https://cdn.example.com/api.jpg"],
                "caption": f"api {i}",
            }
            idempotency = {"Idempotency-Key": f"acceptance-{i}-{uuid.uuid4().hex[:6]}"}
            while True:
                try:
                    async with http.post(
                        f"{api}/publishing/jobs", json=body, headers=idempotency
                    ) as resp:
                        if resp.status in (200, 201):
                            created.add(str((await resp.json())["id"]))
                            break
                        assert resp.status == 503, await resp.text()
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
            await asyncio.sleep(random.uniform(0.05, 0.15))
    return created


async def _logged(services: Services, name: str, text: str) -> bool:
    return text in services.procs[name].log()


async def _until(instant: datetime) -> None:
    await asyncio.sleep(max(0.0, (instant - now_utc()).total_seconds()))
