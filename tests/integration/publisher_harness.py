"""The publisher in-process for integration tests: a spy around the real sandbox, the log
lines it wrote, and a harness that sends requests and reads results back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from herald.services.publisher.main import serve
from herald.services.publisher.platforms.sandbox import SandboxPublisher
from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.logging import JsonFormatter
from herald.shared.infra.names import PUBLISHER_GROUP, REQUEST, RESULT
from herald.shared.infra.runtime import Runtime
from herald.shared.platforms.contract import AttemptContext, PlatformPublisher
from tests.conftest import eventually
from tests.integration.publisher_support import TopicReader, committed_total, produce

WORKER = "publisher-test-1"
Hook = Callable[[PublishRequest, AttemptContext], Awaitable[None]]


@dataclass
class Spy:
    """Counts platform calls; delegates to the real sandbox unless told to misbehave.
    `before` runs before the sandbox's call, `after` once it answered."""

    inner: SandboxPublisher
    name: str = "sandbox"
    posts_without_container: bool = True
    calls: list[tuple[str, int, bool]] = field(default_factory=list)
    raise_with_token: bool = False
    echo_token: bool = False
    before: Hook | None = None
    after: Hook | None = None

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        self.calls.append((request.job_id, request.attempt, False))
        if self.before is not None:
            await self.before(request, ctx)
        if self.raise_with_token:
            raise RuntimeError(f"upstream said no to {connection.access_token}")
        if self.echo_token:
            return PublishOutcome(
                Outcome.RETRYABLE_ERROR,
                error_message=f"bad request for token={connection.access_token}",
                provider_response={"echo": {"access_token": connection.access_token}},
            )
        outcome = await self.inner.publish(request, connection, ctx)
        if self.after is not None:
            await self.after(request, ctx)
        return outcome

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        self.calls.append((request.job_id, request.attempt, True))
        return await self.inner.confirm(request, connection, ctx)

    async def close(self) -> None:
        await self.inner.close()


class Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("publisher"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Harness:
    rt: Runtime
    spy: Spy
    producer: Producer
    results: TopicReader
    logs: Logs

    @property
    def request_topic(self) -> str:
        return self.rt.names.topic(REQUEST)

    def send(self, values: list[dict[str, Any]]) -> None:
        produce(self.producer, self.request_topic, values)

    def send_raw(self, raw: bytes) -> None:
        self.producer.send_batch([(self.request_topic, "x", raw)])

    async def results_for(self, count: int) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            values = await self.results.poll()
            return values if len(values) >= count else None

        found: list[dict[str, Any]] = await eventually(enough, timeout=60)
        return found

    async def all_committed(self, produced: int) -> None:
        async def done() -> bool:
            total = await asyncio.to_thread(
                committed_total,
                self.rt.settings.kafka_bootstrap,
                self.rt.names.group(PUBLISHER_GROUP),
                self.request_topic,
            )
            return total >= produced

        await eventually(done, timeout=60)

    async def posts(self) -> list[dict[str, Any]]:
        return await self.rt.db.fetch("SELECT * FROM sandbox_posts ORDER BY id")


@asynccontextmanager
async def running(
    rt: Runtime,
    logs: Logs,
    registry: dict[str, PlatformPublisher],
    spy: Spy,
    *,
    worker: str = WORKER,
) -> AsyncIterator[Harness]:
    stopping = asyncio.Event()
    task = asyncio.create_task(serve(rt, stopping, registry=registry, worker=worker))
    producer = Producer(rt.settings.kafka_bootstrap)
    results = TopicReader(rt.settings.kafka_bootstrap, rt.names.topic(RESULT))
    try:
        yield Harness(rt, spy, producer, results, logs)
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=30)
        results.close()
        producer.close()
