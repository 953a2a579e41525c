"""`herald scheduler`: command ingress, dispatcher, reconciler, outbox relay, the token
keeper (`shared/accounts/tokens.py`), and the gauges of shared state (queue, connections,
consumer lag and topic sizes)."""

from __future__ import annotations

import asyncio
import logging

from herald.services.scheduler import gauges
from herald.services.scheduler.dispatcher import Dispatcher
from herald.services.scheduler.ingress import CommandIngress
from herald.services.scheduler.reconciler import Reconciler
from herald.shared.accounts.tokens import TokenKeeper
from herald.shared.infra.process import Supervisor, repeat, run_loop, run_service
from herald.shared.infra.retry import Backoff, Retry, Stopped, sleep_or_stop
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.stores import outbox

log = logging.getLogger(__name__)


async def relay_outbox(rt: Runtime, stopping: asyncio.Event) -> None:
    """Relay status and dead-letter events from the outbox to Kafka."""
    retry = Retry(
        Backoff(first=0.1, cap=1.0),
        on=(Exception,),
        stopping=stopping,
        what="outbox relay failed; retrying",
        logger=log,
    )
    while not stopping.is_set():
        try:
            moved = await retry.call(lambda: outbox.relay_once(rt.db, rt.producer))
        except Stopped:
            return
        if not moved and await sleep_or_stop(stopping, 0.05):
            return


async def queue_gauges(rt: Runtime, stopping: asyncio.Event, interval: float = 2.0) -> None:
    """Delayed-queue depth, due backlog (Redis) and connections by status (Postgres)."""

    async def refresh() -> None:
        await gauges.refresh_queue(rt.queue)
        await gauges.refresh_connections(rt.db)

    await repeat(
        stopping, interval, refresh, failed="queue gauges unavailable", level=logging.DEBUG
    )


async def kafka_gauges(rt: Runtime, stopping: asyncio.Event, interval: float = 5.0) -> None:
    """Consumer lag per (group, topic, partition) and topic sizes, from the broker."""
    kafka = gauges.KafkaGauges(rt.settings.kafka_bootstrap, rt.names)
    await repeat(
        stopping,
        interval,
        lambda: asyncio.to_thread(kafka.refresh),
        failed="kafka gauges unavailable",
        level=logging.DEBUG,
    )


async def scheduler_main(rt: Runtime, sup: Supervisor) -> None:
    jobs = rt.jobs()
    ingress = CommandIngress(rt, jobs)
    sup.start("dispatcher", Dispatcher(rt).run(sup.stopping))
    sup.start(
        "reconciler",
        Reconciler(rt, interval=rt.settings.reconcile_interval_seconds).run(sup.stopping),
    )
    sup.start("ingress", ingress.consumer().run(sup.stopping))
    sup.start("outbox-relay", relay_outbox(rt, sup.stopping))
    sup.start("queue-gauges", queue_gauges(rt, sup.stopping))
    sup.start("kafka-gauges", kafka_gauges(rt, sup.stopping))
    keeper = TokenKeeper(rt.connections(), rt.platform_env())
    sup.start(
        "token-keeper",
        repeat(
            sup.stopping,
            rt.settings.token_check_seconds,
            keeper.refresh_due,
            failed="token refresh round failed",
        ),
    )


def run(settings: Settings) -> int:
    return run_loop(run_service("scheduler", settings, scheduler_main))
