"""`/publishing/connections...`: thin handlers over the connection store (never a token out),
and `/publishing/platforms`: what the platform registry holds."""

from __future__ import annotations

from aiohttp import web

from herald.services.api.middleware import json_object, json_ok, principal, query
from herald.shared.accounts.connections import ConnectionService
from herald.shared.jobs.views import parse_limit
from herald.shared.platforms.registry import platforms

MAX_CONNECTIONS_PAGE = 500


def add_routes(app: web.Application, connections: ConnectionService) -> None:
    async def create(request: web.Request) -> web.Response:
        body = await json_object(request)
        return json_ok(await connections.create(principal(request), body), status=201)

    async def list_connections(request: web.Request) -> web.Response:
        page = await connections.list_connections(
            principal(request),
            platform=query(request, "platform"),
            limit=parse_limit(
                query(request, "limit"),
                default=MAX_CONNECTIONS_PAGE,
                maximum=MAX_CONNECTIONS_PAGE,
            ),
            cursor=query(request, "cursor"),
        )
        return json_ok(page)

    async def get_connection(request: web.Request) -> web.Response:
        return json_ok(await connections.get(principal(request), request.match_info["id"]))

    async def patch(request: web.Request) -> web.Response:
        body = await json_object(request)
        return json_ok(await connections.patch(principal(request), request.match_info["id"], body))

    async def disable(request: web.Request) -> web.Response:
        return json_ok(await connections.disable(principal(request), request.match_info["id"]))

    async def list_platforms(request: web.Request) -> web.Response:
        principal(request)  # any key may read them
        return json_ok({"items": [p.describe() for p in platforms().values()]})

    app.router.add_get("/publishing/platforms", list_platforms, allow_head=False)
    app.router.add_post("/publishing/connections", create)
    app.router.add_get("/publishing/connections", list_connections, allow_head=False)
    app.router.add_get("/publishing/connections/{id}", get_connection, allow_head=False)
    app.router.add_patch("/publishing/connections/{id}", patch)
    app.router.add_delete("/publishing/connections/{id}", disable)
