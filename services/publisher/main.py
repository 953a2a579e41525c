"""`herald publisher`: consumes publish.request in group `herald-publisher`, up to
`HERALD_PUBLISHER_MAX_IN_FLIGHT` requests at once (and up to `HERALD_DISPATCH_WINDOW` more
read ahead, started one connection at a time in turn), and answers each on publish.result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping

from herald.services.publisher.claims import ClaimStore
from herald.services.publisher.flow import PublishWorker
from herald.services.publisher.leases import Timing
from herald.services.publisher.rate_limiter import RateLimiter
from herald.services.publisher.registry import Registry, build_registry
from herald.shared.infra.kafka.concurrent_consumer import ConcurrentConsumer
from herald.shared.infra.names import PUBLISHER_GROUP, REQUEST
from herald.shared.infra.process import Supervisor, run_loop, run_service
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.platforms.contract import PlatformPublisher

log = logging.getLogger(__name__)


def worker_id(settings: Settings) -> str:
    return f"publisher-{settings.replica}-{os.getpid()}"


async def serve(
    rt: Runtime,
    stopping: asyncio.Event,
    *,
    registry: Mapping[str, PlatformPublisher] | None = None,
    worker: str | None = None,
) -> None:
    """Run the publisher until `stopping` is set (then drain, commit and close)."""
    settings = rt.settings
    platforms = (
        registry if registry is not None else build_registry(settings, rt.db, rt.redis, rt.names)
    )
    name = worker or worker_id(settings)
    claims = ClaimStore(
        rt.db,
        rt.producer,
        rt.names,
        rt.cipher,
        worker=name,
        lease_seconds=settings.lease_seconds,
        platforms=platforms,
    )
    publish = PublishWorker(
        db=rt.db,
        names=rt.names,
        claims=claims,
        registry=platforms,
        limiter=RateLimiter(rt.redis, rt.names),
        timing=Timing(
            settings.container_poll_seconds, settings.call_timeout_seconds, settings.lease_seconds
        ),
        worker=name,
        stopping=stopping,
    )
    consumer = ConcurrentConsumer(
        settings.kafka_bootstrap,
        rt.names.group(PUBLISHER_GROUP),
        [rt.names.topic(REQUEST)],
        publish.handle,
        max_in_flight=settings.publisher_max_in_flight,
        # Up to 256 requests per `consume` (128 before decision 0013: bursts drained 4,823
        # against 5,495 jobs/s, medians of five alternating pairs). Take requests in groups
        # of at least a quarter of the slots (waiting up to 20 ms for them): every group
        # shares one claim, one platform batch and one emit transaction.
        batch_size=256,
        min_batch=settings.publisher_max_in_flight // 4,
        # Read as far ahead as the dispatcher sends (its window): every request sent and not
        # answered is then in some publisher's hands, where an account's request waits a
        # round of the accounts with requests waiting, not its partition's backlog.
        read_ahead=settings.dispatch_window,
    )
    log.info(
        "publisher started",
        extra={
            "worker": name,
            "platforms": sorted(platforms),
            "max_in_flight": settings.publisher_max_in_flight,
        },
    )
    leases = asyncio.create_task(publish.leases.renew(stopping), name="claim-leases")
    try:
        await consumer.run(stopping)
    finally:
        leases.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leases
        if registry is None and isinstance(platforms, Registry):
            await platforms.close()


async def publisher_main(rt: Runtime, sup: Supervisor) -> None:
    sup.start("publisher", serve(rt, sup.stopping))


def run(settings: Settings) -> int:
    return run_loop(run_service("publisher", settings, publisher_main))
