"""`herald api`: the HTTP API on HERALD_BIND_ADDRESS:HERALD_API_PORT (the only process binding
it)."""

from __future__ import annotations

import logging

from aiohttp import web

from herald.services.api.app import create_app
from herald.shared.infra.process import Supervisor, run_loop, run_service
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings

log = logging.getLogger(__name__)


async def api_main(rt: Runtime, sup: Supervisor) -> None:
    app = create_app(rt, sup.health)
    # No access log: nothing about a request (headers included) reaches a log line.
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host = rt.settings.bind_address
    site = web.TCPSite(runner, host, rt.settings.api_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        log.error(
            "cannot bind the API port; set HERALD_API_PORT to a free port",
            extra={"host": host, "port": rt.settings.api_port, "error": str(exc)},
        )
        sup.failed = exc
        sup.stop()
        return
    sockets = getattr(site._server, "sockets", None)
    port = int(sockets[0].getsockname()[1]) if sockets else rt.settings.api_port
    log.info("api listening", extra={"address": f"http://{host}:{port}", "port": port})

    async def serve_until_stopped() -> None:
        try:
            await sup.stopping.wait()
        finally:
            await runner.cleanup()

    sup.start("http", serve_until_stopped())


def run(settings: Settings) -> int:
    # A request waits at most 3 s for a Postgres connection before answering 503.
    return run_loop(run_service("api", settings, api_main, db_acquire_timeout=3.0))
