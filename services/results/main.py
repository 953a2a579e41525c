"""`herald results`: the `publish.result` consumer and the retention pruning loop."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from herald.services.results.consumer import ResultsConsumer
from herald.services.results.hold import HoldRule, ResultHold
from herald.shared.infra.db import locks
from herald.shared.infra.kafka.lag import PublishBacklog
from herald.shared.infra.process import (
    Supervisor,
    lower_cpu_priority,
    repeat,
    run_loop,
    run_service,
)
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.messages.codec import now_utc
from herald.shared.stores import attempts, dead_letters, idempotency_keys

log = logging.getLogger(__name__)

BATCH_SIZE = 500
PRUNE_INTERVAL_SECONDS = 3600.0
PRUNE_CHUNK = 5000
_PRUNE_LOCK = "herald-results-prune"

# What pruning drops, each statement touching at most PRUNE_CHUNK rows (no long locks).
_PRUNE = {
    "attempt_responses": attempts.prune_responses,
    "dead_letters": dead_letters.prune,
    "idempotency_keys": idempotency_keys.prune,
}


async def prune_once(rt: Runtime) -> dict[str, int]:
    """Drop provider responses and dead letters older than HERALD_RETENTION_DAYS, and
    idempotency keys older than max(24 h, retention). One copy prunes at a time."""
    now = now_utc()
    retention = timedelta(days=rt.settings.retention_days)
    cutoffs = {
        "attempt_responses": now - retention,
        "dead_letters": now - retention,
        "idempotency_keys": now - max(retention, timedelta(hours=24)),
    }
    counts = dict.fromkeys(_PRUNE, 0)
    async with locks.held(rt.db, _PRUNE_LOCK) as mine, rt.db.connection() as conn:
        if not mine:
            return counts
        for name, prune in _PRUNE.items():
            while True:
                dropped = await prune(conn, cutoffs[name], PRUNE_CHUNK)
                counts[name] += dropped
                if dropped < PRUNE_CHUNK:
                    break
    if any(counts.values()):
        log.info("pruned", extra=counts)
    return counts


async def prune_loop(
    rt: Runtime, stopping: asyncio.Event, interval: float = PRUNE_INTERVAL_SECONDS
) -> None:
    # A store away: try again next round.
    await repeat(
        stopping, interval, lambda: prune_once(rt), failed="pruning failed; retrying later"
    )


async def consume(rt: Runtime, stopping: asyncio.Event) -> None:
    backlog = PublishBacklog(rt.settings.kafka_bootstrap, rt.names)
    hold = ResultHold(HoldRule.from_settings(rt.settings), backlog, stopping)
    consumer = ResultsConsumer(rt, batch_size=BATCH_SIZE, hold=hold)
    try:
        await consumer.consumer().run(stopping)
    finally:
        await backlog.close()


async def results_main(rt: Runtime, sup: Supervisor) -> None:
    sup.start("results-consumer", consume(rt, sup.stopping))
    sup.start("pruning", prune_loop(rt, sup.stopping))


def run(settings: Settings) -> int:
    # Attempts, statuses and retries follow a post that is already live: where services
    # share CPUs (`herald run`, the benchmarks) the publish path goes first (decision 0009).
    lower_cpu_priority(settings.results_nice)
    return run_loop(run_service("results", settings, results_main))
