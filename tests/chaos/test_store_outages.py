"""Restart Postgres, Redis or Kafka while jobs flow (on a stack of the test's own): every
service waits, then carries on; every job is published exactly once. And both kinds of
consumer read again after committing while Kafka shut down."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta

import pytest

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.kafka.admin import TopicSpec, create_topics, load_topic_specs
from herald.shared.infra.kafka.batch_consumer import BatchConsumer
from herald.shared.infra.kafka.client import Message, Producer
from herald.shared.infra.kafka.concurrent_consumer import ConcurrentConsumer
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.messages.codec import now_utc
from stack import down
from stack.manager import down_service, up, up_service
from tests.conftest import FAST, eventually
from tests.support.helpers import ServiceProcess, sandbox_connections, settings_env

pytestmark = pytest.mark.chaos
N = 300


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    folder = tmp_path_factory.mktemp("outage-stack")
    settings = Settings(
        stack_dir=folder / "stack",
        kafka_bootstrap="127.0.0.1:18092",
        kafka_controller_port=18093,
        redis_url="redis://127.0.0.1:16379/0",
        database_url="postgresql://herald@127.0.0.1:15432/herald",
        prometheus_port=18090,
        db_schema="outage",
        **FAST,  # type: ignore[arg-type]
    )
    try:  # a stack that started in part is stopped too
        assert up(settings) == 0, "the test's own stack did not start"
        migrate(settings.database_url, settings.db_schema)
        create_topics(settings.kafka_bootstrap, load_topic_specs())
        yield settings
    finally:
        down(settings)


@pytest.fixture(scope="module")
def services(
    own_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServiceProcess]]:
    logs = tmp_path_factory.mktemp("outage-logs")
    procs = [
        ServiceProcess(name, settings_env(own_stack), logs).start()
        for name in ("scheduler", "publisher", "results")
    ]
    yield procs
    for p in procs:
        p.stop()


@pytest.fixture
async def rt(own_stack: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(own_stack)
    await runtime.open()
    yield runtime
    await runtime.close()


@pytest.mark.parametrize("store", ["postgres", "redis", "kafka"])
async def test_services_ride_out_a_store_restart(
    store: str, own_stack: Settings, services: list[ServiceProcess], rt: Runtime
) -> None:
    (connection,) = await sandbox_connections(rt, 1, metadata={"latency_ms": 20})
    # Due times spread over 16 s, so jobs are being dispatched, published and recorded
    # before, during and after the outage (from +4 s to +12 s).
    start = now_utc()
    jobs = rt.jobs()
    ids = [
        (
            await jobs.schedule(
                ADMIN,
                {
                    "platform": "sandbox",
                    "connection_id": connection,
                    "media_asset_ids": ["https://cdn.example.com/x.jpg"],
                    "scheduled_at": (start + timedelta(seconds=1 + 15 * i / N)).isoformat(),
                },
            )
        ).body["id"]
        for i in range(N)
    ]
    await asyncio.sleep(max(0.0, 4 - (now_utc() - start).total_seconds()))
    assert await asyncio.to_thread(down_service, own_stack, store) == 0
    await asyncio.sleep(8)  # the store is away while jobs fall due
    assert await asyncio.to_thread(up_service, own_stack, store) == 0

    async def all_published() -> bool:
        try:
            row = await rt.db.fetchone(
                "SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND status = 'PUBLISHED'",
                (ids,),
            )
        except Exception:
            return False
        return bool(row and row["n"] == N)

    await eventually(all_published, timeout=240, interval=1.0)
    dead = [p.name for p in services if not p.alive()]
    assert not dead, [p.log()[-3000:] for p in services if not p.alive()]
    posts = Counter(
        str(r["job_id"])
        for r in await rt.db.fetch(
            "SELECT job_id FROM sandbox_posts WHERE job_id = ANY(%s)", (ids,)
        )
    )
    assert set(posts) == set(ids) and set(posts.values()) == {1}


async def test_consumers_read_again_after_committing_while_kafka_stopped(
    own_stack: Settings,
) -> None:
    """Records flow, and both kinds of consumer commit every few milliseconds, while Kafka
    shuts down and stays away past their session timeout; both read again once it is back.
    Seen in the whole pipeline: a metadata answer taken as Kafka shut down left a consumer
    knowing no broker, and librdkafka never went back to the bootstrap servers: the results
    service read nothing more, and in another run the publisher neither."""
    bootstrap = own_stack.kafka_bootstrap
    topic = f"commit-outage-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(create_topics, bootstrap, [TopicSpec(topic, 3, 3_600_000)])
    seen: dict[str, set[bytes]] = {"batch": set(), "concurrent": set()}

    async def handle_batch(messages: list[Message]) -> None:
        seen["batch"].update(bytes(m.value() or b"") for m in messages)

    async def handle_one(message: Message) -> bool:
        seen["concurrent"].add(bytes(message.value() or b""))
        return True

    group = uuid.uuid4().hex[:8]
    # Metadata asked for every 100 ms, so some answer comes while Kafka shuts down: one that
    # names no broker, after which a client knows none until it bootstraps again.
    often = {"topic.metadata.refresh.interval.ms": 100}
    consumers: list[BatchConsumer | ConcurrentConsumer] = [
        BatchConsumer(bootstrap, f"batch-{group}", [topic], handle_batch, **often),
        ConcurrentConsumer(
            bootstrap, f"concurrent-{group}", [topic], handle_one, commit_interval=0.01, **often
        ),
    ]
    stopping = asyncio.Event()
    running = [asyncio.create_task(c.run(stopping)) for c in consumers]
    producer = Producer(bootstrap)

    async def flow(until: asyncio.Event) -> None:  # a record every 5 ms, each its own commit
        n = 0
        while not until.is_set():
            await asyncio.to_thread(producer.send_batch, [(topic, str(n), b"%d" % n)])
            n += 1
            await asyncio.sleep(0.005)

    def reading(name: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            assert not any(t.done() for t in running), [t.exception() for t in running]
            return b"after" in seen[name] if name else bool(all(seen.values()))

        return check

    kafka_down = asyncio.Event()
    flowing = asyncio.create_task(flow(kafka_down))
    try:
        await eventually(reading(""), timeout=60)  # both read the flow
        await asyncio.to_thread(down_service, own_stack, "kafka")
        kafka_down.set()
        await asyncio.sleep(15)  # past the session timeout (10 s): both lose their partitions
        assert await asyncio.to_thread(up_service, own_stack, "kafka") == 0
        await flowing
        await asyncio.to_thread(producer.send_batch, [(topic, "k", b"after")])
        for name in seen:
            await eventually(reading(name), timeout=90, interval=0.5)
    finally:
        kafka_down.set()
        stopping.set()
        await asyncio.wait_for(asyncio.gather(flowing, *running, return_exceptions=True), 60)
        producer.close()
