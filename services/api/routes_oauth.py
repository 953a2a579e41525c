"""`/publishing/connections/oauth/{platform}/...`: connecting an account by signing in on
the platform (`herald.shared.accounts.oauth`).

- `GET .../start` (an API key): 302 to the platform's consent page. Query: `name` for a new
  connection, or `connection_id` to re-authorise one; `tenant_id` (admin keys only);
  `instance_url` for a platform with an app per host (Mastodon: the instance to sign in on).
- `POST .../start` (an API key; the same fields in a JSON body, and `metadata`: a few
  strings for the platform's exchange, e.g. which Page to connect): `{"authorize_url"}`,
  for pages that hold the key themselves (the ops page) and then send the browser there.
- `GET .../callback` (no key: the browser comes back from the platform): checks the signed
  `state`, exchanges the code, stores the token encrypted, then 303 to the ops page with
  the connection's id (`/?connected=<id>`). The code and the token never appear in an answer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from herald.services.api.middleware import json_object, json_ok, principal
from herald.shared.accounts.oauth import OAuthFlow
from herald.shared.errors import ValidationFailed

BASE = "/publishing/connections/oauth/{platform}"
START_FIELDS = ("name", "connection_id", "tenant_id", "metadata", "instance_url")


def add_routes(app: web.Application, flow: OAuthFlow) -> None:
    async def start(request: web.Request, fields: dict[str, Any]) -> str:
        unknown = set(fields) - set(START_FIELDS)
        if unknown:
            raise ValidationFailed(
                "unknown fields", fields={k: "unknown field" for k in sorted(unknown)}
            )
        return await flow.start(
            principal(request),
            request.match_info["platform"],
            name=fields.get("name"),
            connection_id=fields.get("connection_id"),
            tenant_id=fields.get("tenant_id"),
            metadata=fields.get("metadata"),
            instance_url=fields.get("instance_url"),
        )

    async def start_redirect(request: web.Request) -> web.Response:
        url = await start(request, dict(request.query))
        raise web.HTTPFound(url)

    async def start_json(request: web.Request) -> web.Response:
        body = await json_object(request, allow_empty=True)
        return json_ok({"authorize_url": await start(request, body)})

    async def callback(request: web.Request) -> web.Response:
        view = await flow.finish(request.match_info["platform"], dict(request.query))
        raise web.HTTPSeeOther(f"/?connected={view['id']}")

    app.router.add_get(f"{BASE}/start", start_redirect, allow_head=False)
    app.router.add_post(f"{BASE}/start", start_json)
    app.router.add_get(f"{BASE}/callback", callback, allow_head=False)
