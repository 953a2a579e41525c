"""Two publisher workers, one Instagram job: worker A's Postgres goes away (a paused proxy)
for longer than its claim's lease while A polls the container; worker B takes the claim over
and publishes. When Postgres comes back, A must find its claim gone and publish nothing:
exactly one post on the fake Graph server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from herald.services.publisher.main import serve
from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.names import REQUEST, RESULT
from herald.shared.infra.runtime import Runtime
from herald.shared.messages import codec
from tests.conftest import Namespace, eventually
from tests.fakes.graph_server import DEFAULT_ACCOUNT, DEFAULT_TOKEN, FakeGraph
from tests.integration.publisher_support import TopicReader, by_attempt, dispatch
from tests.support.tcp_proxy import PausableProxy

pytestmark = pytest.mark.integration
TIMINGS = {
    "lease_seconds": 2.0,
    "container_poll_seconds": 30.0,
    "call_timeout_seconds": 3.0,
    "stuck_after_seconds": 60.0,
}


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logging.getLogger("herald.services").addHandler(handler)
    yield handler
    logging.getLogger("herald.services").removeHandler(handler)


@pytest.fixture
async def proxy(ns: Namespace) -> AsyncIterator[PausableProxy]:
    url = urlsplit(ns.base.database_url)
    server = await PausableProxy(url.hostname or "127.0.0.1", url.port or 5432).start()
    yield server
    await server.stop()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def worker(rt: Runtime, fake: FakeGraph, name: str, stop: asyncio.Event) -> asyncio.Task[None]:
    instagram = InstagramPublisher(
        fake.base_url,
        throttle=Throttle(rt.redis, rt.names),
        poll_initial_seconds=0.01,
        poll_max_interval_seconds=0.05,
    )
    return asyncio.create_task(serve(rt, stop, registry={"instagram": instagram}, worker=name))


async def test_a_worker_back_from_a_postgres_pause_past_its_lease_posts_nothing(
    ns: Namespace, proxy: PausableProxy, lines: Lines
) -> None:
    direct = Runtime.build(ns.settings(**TIMINGS))
    paused = Runtime.build(
        ns.settings(**TIMINGS, database_url=through(ns.base.database_url, proxy.port))
    )
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    async with FakeGraph() as fake:
        await direct.open()
        await paused.open()
        results = TopicReader(direct.settings.kafka_bootstrap, direct.names.topic(RESULT))
        tasks = [worker(paused, fake, "publisher-A", stop_a)]
        try:
            conn = await direct.connections().create(
                ADMIN,
                {
                    "platform": "instagram",
                    "name": "ig",
                    "access_token": DEFAULT_TOKEN,
                    "metadata": {"instagramBusinessAccountId": DEFAULT_ACCOUNT},
                },
            )
            body = {
                "platform": "instagram",
                "connection_id": conn["id"],
                "caption": "only once",
                "media_asset_ids": ["https://cdn.example.com/a/photo.jpg"],
            }
            job = str((await direct.jobs().schedule(ADMIN, body)).body["id"])
            fake.container_processing(3600.0)  # A creates a container and polls it
            [request] = await dispatch(direct, [job])
            topic = direct.names.topic(REQUEST)
            raw = codec.encode(REQUEST, dict(request))
            direct.producer.send_batch([(topic, conn["id"], raw)])
            await eventually(lambda: _async(len(fake.calls("container_status")) >= 2), 60)
            [first] = fake.calls("create_container")

            proxy.pause()  # A's Postgres is away; A keeps polling the fake
            fake.container_processing(0.0)
            for cid in list(fake.containers):
                fake.ready(cid)  # A's container is ready: A wants to publish now

            async def lapsed() -> bool:
                row = await direct.db.fetchone(
                    "SELECT lease_until < now() AS lapsed FROM publish_claims WHERE job_id = %s",
                    (job,),
                )
                return bool(row and row["lapsed"])

            await eventually(lapsed, 30)
            # Worker B comes up; the request is delivered again (a rebalance, the reconciler)
            # on every partition, so B gets it whichever partitions it is given.
            tasks.append(worker(direct, fake, "publisher-B", stop_b))
            partitions = direct.producer.partition_count(topic)
            direct.producer.send_batch([(topic, conn["id"], raw, p) for p in range(partitions)])
            await eventually(lambda: _async(bool(fake.posts[DEFAULT_ACCOUNT])), 60)

            proxy.resume()  # A is back

            async def a_is_done() -> bool:
                lost = any("claim lost" in m for m in lines.messages)
                return lost or len(fake.posts[DEFAULT_ACCOUNT]) > 1

            await eventually(a_is_done, 60)
            await asyncio.sleep(1.0)  # anything A would still do, it does now
            assert len(fake.posts[DEFAULT_ACCOUNT]) == 1, "posted twice"
            assert len(fake.calls("media_publish")) == 1

            async def answered_by_b() -> list[dict[str, object]]:
                return by_attempt(await results.poll()).get((job, 1), [])

            answered = await eventually(answered_by_b, 30)
            assert {v["outcome"] for v in answered} == {"published"}
            assert {v["worker"] for v in answered} == {"publisher-B"}
            assert first.params.get("caption") == "only once"
        finally:
            proxy.resume()
            stop_a.set()
            stop_b.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
            results.close()
            await paused.close()
            await direct.close()


async def _async(value: bool) -> bool:
    return value
