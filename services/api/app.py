"""The aiohttp application: middlewares, every route, the ops page and the spec."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiohttp import web

from herald.services.api import (
    routes_connections,
    routes_dlq,
    routes_health,
    routes_jobs,
    routes_oauth,
)
from herald.services.api.middleware import auth_middleware, error_middleware
from herald.services.api.openapi import build_spec
from herald.shared.accounts.oauth import OAuthFlow
from herald.shared.infra import ops_server
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime

STATIC = Path(__file__).parent / "static"
# The page loads only its own files: no external asset, no inline script.
PAGE_HEADERS = {
    # Media previews load from https (the posts' own URLs); nothing else widens.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSETS = {
    "/": ("index.html", "text/html"),
    **{
        f"/static/{p.name}": (p.name, "text/javascript" if p.suffix == ".js" else "text/css")
        for p in sorted(STATIC.iterdir())
        if p.suffix in (".js", ".css")
    },
}


def _file_route(app: web.Application, path: str, name: str, content_type: str) -> None:
    body = (STATIC / name).read_bytes()  # read once; a request only copies bytes out

    async def serve(_: web.Request) -> web.Response:
        return web.Response(
            body=body, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS
        )

    app.router.add_get(path, serve, allow_head=False)


def create_app(rt: Runtime, health: Health) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware(rt.db)])
    jobs = rt.jobs()
    ops_server.add_routes(app, health)
    routes_jobs.add_routes(app, jobs)
    routes_connections.add_routes(app, rt.connections())
    routes_oauth.add_routes(
        app, OAuthFlow(rt.connections(), rt.platform_env(), rt.settings.secret_key_ring())
    )
    routes_dlq.add_routes(app, rt.db, jobs)
    prometheus = rt.settings.prometheus_url or f"http://127.0.0.1:{rt.settings.prometheus_port}"
    routes_health.add_routes(app, rt.db, prometheus)

    spec = orjson.dumps(build_spec())

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=spec, content_type="application/json")

    app.router.add_get("/openapi.json", openapi, allow_head=False)
    for path, (name, content_type) in ASSETS.items():
        _file_route(app, path, name, content_type)
    return app
