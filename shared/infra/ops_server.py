"""The operations endpoints every process serves: /metrics, /healthz, /readyz."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)
Check = Callable[[], Awaitable[bool]]


class Health:
    """Liveness = every supervised loop still runs; readiness = every store answers."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def add_check(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def watch(self, name: str, task: asyncio.Task[None]) -> None:
        self.tasks[name] = task

    def alive(self) -> dict[str, bool]:
        return {name: not task.done() for name, task in self.tasks.items()}

    async def ready(self) -> dict[str, bool]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(self.checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    @staticmethod
    async def _run(check: Check) -> bool:
        try:
            async with asyncio.timeout(5):
                return await check()
        except Exception:
            return False


def add_routes(app: web.Application, health: Health) -> None:
    async def metrics(_: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        loops = health.alive()
        ok = all(loops.values())
        return web.json_response(
            {"status": "ok" if ok else "failing", "loops": loops}, status=200 if ok else 503
        )

    async def readyz(_: web.Request) -> web.Response:
        checks = await health.ready()
        ok = all(checks.values())
        return web.json_response(
            {"status": "ready" if ok else "unavailable", "checks": checks},
            status=200 if ok else 503,
        )

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


async def serve(health: Health, port: int, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """Start the ops server; port 0 picks a free port. Returns the runner and the port."""
    app = web.Application()
    add_routes(app, health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None)
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    log.info("ops endpoints listening", extra={"port": bound})
    return runner, bound
