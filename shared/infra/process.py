"""Running a service process: logging, settings line, metrics, ops endpoints, supervised
loops, signal handling at the edge and an ordered, idempotent stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from herald.shared.infra import logging as herald_logging
from herald.shared.infra import metrics
from herald.shared.infra import redis_client as redis_store
from herald.shared.infra.access import verify_stores
from herald.shared.infra.kafka.access import verify_access
from herald.shared.infra.kafka.admin import ping as kafka_ping
from herald.shared.infra.ops_server import Health, serve
from herald.shared.infra.retry import Backoff, Retry, Stopped, sleep_or_stop
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings

log = logging.getLogger(__name__)


class Supervisor:
    """Named background loops; if one dies the whole service stops (non-zero exit)."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.stopping = asyncio.Event()
        self.failed: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=name)
        self.health.watch(name, task)
        self._tasks.append(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.stopping.is_set():
            return
        exc = task.exception()
        log.error(
            "loop ended unexpectedly",
            extra={"loop": task.get_name()},
            exc_info=exc if exc else None,
        )
        self.failed = exc or RuntimeError(f"loop {task.get_name()} returned")
        self.stopping.set()

    def stop(self) -> None:
        self.stopping.set()

    async def cancel_all(self, grace: float = 10.0) -> None:
        self.stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def repeat(
    stopping: asyncio.Event,
    interval: float,
    step: Callable[[], Awaitable[object]],
    *,
    failed: str,
    level: int = logging.WARNING,
) -> None:
    """Run `step` every `interval` seconds until the service stops. A failing step is logged
    (`failed`, at `level`) and retried with backoff from a second up to `interval`."""
    retry = Retry(
        Backoff(first=min(1.0, interval), cap=interval),
        on=(Exception,),
        stopping=stopping,
        what=failed,
        level=level,
    )
    while not stopping.is_set():
        try:
            await retry.call(step)
        except Stopped:
            return
        if await sleep_or_stop(stopping, interval):
            return


def standard_checks(health: Health, rt: Runtime) -> None:
    health.add_check("postgres", rt.db.ping)
    health.add_check("redis", lambda: redis_store.takes_writes(rt.redis, rt.names.key("ready")))
    health.add_check("kafka", lambda: kafka_ping(rt.settings.kafka_bootstrap))


ServiceMain = Callable[[Runtime, Supervisor], Awaitable[None]]


def settle_garbage_collector(first_generation: int = 20_000) -> None:
    """Keep the cyclic garbage collector out of the hot path once a service has started.

    Every object alive now (modules, compiled schemas, clients) lives as long as the process;
    `gc.freeze` takes them out of the collector's scans, and a larger first generation runs
    the collector less often. Measured before this, in `herald bench steady`: full
    collections of 27-157 ms every few seconds in every service, each one a stall of the
    event loop (and so of dispatch and publish latency).
    """
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(first_generation, second, third)


def lower_cpu_priority(niceness: int) -> int:
    """Run this process at `niceness` or lower priority (never raises it); answers the
    process's niceness afterwards. Only the operating system's CPU scheduler reads it: it
    matters where processes share CPUs and changes nothing elsewhere."""
    if not hasattr(os, "getpriority"):  # pragma: no cover - Windows
        return 0
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    return os.getpriority(os.PRIO_PROCESS, 0)


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run a service's coroutine on uvloop where it is installed (the asyncio loop otherwise).

    Measured in `herald bench burst` (20,000 jobs, 2 publishers): 3,219 -> 3,427 and 3,748
    jobs/s, 23.4 -> 20.3-22.8 CPU seconds for the whole pipeline (decision 0008).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop (Windows)
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def run_service(
    name: str,
    settings: Settings,
    main: ServiceMain,
    *,
    handle_signals: bool = True,
    db_acquire_timeout: float = 10.0,
) -> int:
    herald_logging.configure(name, settings.log_level)
    # No I/O yet; a missing secret key stops the service here, before it says anything.
    rt = Runtime.build(settings, db_acquire_timeout=db_acquire_timeout)
    log.info("starting", extra={"settings": settings.masked()})
    # A refused password or certificate stops the service here, with one line.
    await asyncio.to_thread(verify_access, settings.kafka_bootstrap)
    await verify_stores(settings.redis_url, settings.database_url)
    metrics.register_process(name, settings.replica)
    health = Health()
    standard_checks(health, rt)
    supervisor = Supervisor(health)
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, supervisor.stop)
    runner, port = await serve(health, settings.metrics_port, settings.bind_address)
    log.info("metrics endpoint", extra={"metrics_port": port, "service": name})
    try:
        await rt.open()
        await main(rt, supervisor)
        settle_garbage_collector()
        await supervisor.stopping.wait()
    finally:
        herald_logging.flush_all()
        log.info("stopping")
        await supervisor.cancel_all()
        await rt.close()
        await runner.cleanup()
    if supervisor.failed is not None:
        log.error("stopped after a failure", extra={"error": repr(supervisor.failed)})
        return 1
    log.info("stopped")
    return 0
