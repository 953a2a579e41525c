"""Middlewares: every error as a JSON body, then API-key authentication.

Order matters: the error middleware wraps auth, so a store that is away during the key
lookup answers 503 like any other route. Nothing here logs a header or a body: the API key
and connection tokens never reach a log line or a response.
"""

from __future__ import annotations

import logging
import re
from functools import partial
from typing import Any

import orjson
import psycopg
import redis.exceptions
from aiohttp import web
from aiohttp.typedefs import Handler

from herald.shared.domain.tenancy import Principal
from herald.shared.errors import DomainError, StoreUnavailable, ValidationFailed
from herald.shared.infra import redis_client
from herald.shared.infra.batching import Coalescer
from herald.shared.infra.db.pool import Database
from herald.shared.jobs.validation import has_nul
from herald.shared.stores.tenants import authenticate_many

log = logging.getLogger(__name__)

# A typed request key where aiohttp has them (3.12+ warns about plain string keys).
PRINCIPAL: Any = (
    web.RequestKey("principal", Principal) if hasattr(web, "RequestKey") else "herald.principal"
)
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/openapi.json"})
ASSET_PREFIX = "/static/"
RETRY_AFTER_SECONDS = 5
# Both mean "the store did not answer"; the adapters wrap most, these are the stragglers.
_STORE_ERRORS: tuple[type[Exception], ...] = (
    StoreUnavailable,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    *redis_client.AWAY,
)


class MalformedJson(DomainError):
    status = 400
    code = "malformed_json"


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    err: dict[str, Any] = {"code": code, "message": message}
    if fields:
        err["fields"] = fields
    return web.json_response({"error": err}, status=status, headers=headers, dumps=_dumps)


def _store_name(exc: BaseException) -> str:
    if isinstance(exc, StoreUnavailable):
        return exc.store
    return "redis" if isinstance(exc, redis.exceptions.RedisError) else "postgres"


_HTTP_CODES = {
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "this method is not allowed on this route"),
    413: ("body_too_large", "the request body is too large"),
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return web.json_response(exc.to_body(), status=exc.status)
    except _STORE_ERRORS as exc:
        store = _store_name(exc)
        log.warning("store unavailable", extra={"store": store, "path": request.path})
        return error_response(
            503,
            "store_unavailable",
            f"{store} is unavailable; retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(exc.status, code, message, headers=headers)
    except Exception:
        log.exception("unexpected error", extra={"path": request.path, "method": request.method})
        return error_response(500, "internal_error", "an unexpected error occurred")


# The OAuth callback: the browser comes back from the platform without an API key; the
# signed `state` says which tenant the sign-in is for.
OAUTH_CALLBACK = re.compile(r"/publishing/connections/oauth/[a-z][a-z0-9_]{0,31}/callback")


def is_open(path: str) -> bool:
    return (
        path in OPEN_PATHS
        or path.startswith(ASSET_PREFIX)
        or OAUTH_CALLBACK.fullmatch(path) is not None
    )


def auth_middleware(db: Database) -> Any:
    # The keys of concurrent requests are looked up together (one statement; an idle
    # server adds no wait): a round trip and a pooled connection per request were the
    # single scheduling route's largest cost after the write itself.
    keys = Coalescer(partial(authenticate_many, db), max_batch=500)

    @web.middleware
    async def authenticate_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Open paths, and unknown routes (404/405 whatever the key), need no key.
        if is_open(request.path) or request.match_info.http_exception is not None:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return _unauthorized("send Authorization: Bearer <api key>")
        principal = await keys.submit(key)
        if principal is None:
            return _unauthorized("the API key is unknown or revoked")
        request[PRINCIPAL] = principal
        return await handler(request)

    return authenticate_request


def _unauthorized(message: str) -> web.Response:
    return error_response(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


# ---- request helpers for the handlers -------------------------------------------------------


def principal(request: web.Request) -> Principal:
    found = request[PRINCIPAL]
    assert isinstance(found, Principal)
    return found


async def json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The body as a JSON object: 400 when it does not parse, 422 when it is not an object."""
    raw = await request.read()
    if not raw.strip() and allow_empty:
        return {}
    return parse_object(raw)


def parse_object(raw: bytes) -> dict[str, Any]:
    """`raw` as a JSON object: 400 when it is empty or does not parse, 422 when it is not an
    object."""
    if not raw.strip():
        raise MalformedJson("the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(
            f"the request body is not valid JSON ({exc.msg} at line {exc.lineno},"
            f" column {exc.colno})"
        ) from None
    if not isinstance(body, dict):
        raise _invalid("the body must be a JSON object", {"$": "must be a JSON object"})
    return body


def query(request: web.Request, name: str) -> str | None:
    """One query parameter; NUL characters are refused (422 naming it)."""
    value = request.query.get(name)
    if value is not None and has_nul(value):
        raise _invalid("text with NUL characters", {name: "must not contain NUL characters"})
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    value = query(request, name)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise _invalid("bad query parameter", {name: "must be true or false"})


def _invalid(message: str, fields: dict[str, str]) -> DomainError:
    return ValidationFailed(message, fields=fields)


def _dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def json_ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)
