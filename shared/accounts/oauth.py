"""OAuth sign-in: connecting an account the way people do, for any platform whose plugin
has one (`Platform.oauth`).

1. `start`: a signed `state` binds the sign-in to the tenant (and to the connection being
   re-authorised, if any) for ten minutes; the answer is the platform's consent page
   (`Platform.consent_url`), with the redirect URI
   `<HERALD_OAUTH_REDIRECT_BASE_URL>/publishing/connections/oauth/<platform>/callback`.
2. `finish` (the callback, which the browser reaches without an API key): the `state` is
   checked (signature, expiry, platform), the code is exchanged for a long-lived token
   (`Platform.exchange_code`), and the token is stored encrypted through the connection
   service: a new connection, or the named one re-authorised (its held jobs released).

A platform with an app per host (`Platform.oauth_host`: a Mastodon instance) starts with
`instance_url`: checked to be public (after DNS) before any call, the app Herald keeps for
it registered there on the first sign-in (`oauth_apps.HostApps`), and the instance signed
into the state, so the code is redeemed only at the instance that issued it.

The state is `<payload>.<mac>`: the payload base64url JSON (tenant, platform, connection,
name, expiry, a nonce), the MAC an HMAC-SHA256 under a key derived from Herald's secret key
ring, so only this Herald makes states it accepts. It carries no secret. Codes and tokens
are never logged or returned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from herald.shared.accounts.connections import ConnectionService
from herald.shared.accounts.oauth_apps import HostApps, public_host
from herald.shared.domain.tenancy import Principal
from herald.shared.errors import DomainError, HeraldError, ValidationFailed
from herald.shared.jobs.validation import has_nul
from herald.shared.platforms.plugin import AppForgotten, AuthLost, OAuthApp, Platform, PlatformEnv
from herald.shared.platforms.registry import platforms

log = logging.getLogger(__name__)
STATE_SECONDS = 600
MAX_STATE = 2048
MAX_CODE = 2048
MAX_HINT_KEYS = 8


class OAuthRefused(DomainError):
    """The sign-in cannot go on: a bad or expired state, a refused code, a consent denied."""

    status = 400
    code = "oauth_refused"


class OAuthUnavailable(DomainError):
    """The sign-in is not configured (no app credentials or redirect base URL)."""

    status = 409
    code = "oauth_not_configured"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StateSigner:
    def __init__(self, key_ring: str) -> None:
        self._key = hashlib.sha256(b"herald-oauth-state\x00" + key_ring.encode()).digest()

    def sign(self, payload: dict[str, Any]) -> str:
        body = _b64(orjson.dumps(payload))
        return f"{body}.{self._mac(body)}"

    def read(self, state: Any, *, now: float | None = None) -> dict[str, Any]:
        """The payload of a state this Herald signed and that has not expired."""
        if not isinstance(state, str) or len(state) > MAX_STATE or state.count(".") != 1:
            raise OAuthRefused("the sign-in's state is missing or malformed; start again")
        body, mac = state.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise OAuthRefused("the sign-in's state was not made by this Herald; start again")
        payload: dict[str, Any] = orjson.loads(_unb64(body))
        if float(payload.get("exp", 0)) < (time.time() if now is None else now):
            raise OAuthRefused("the sign-in took too long (its state expired); start again")
        return payload

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())


class OAuthFlow:
    def __init__(self, service: ConnectionService, env: PlatformEnv, key_ring: str) -> None:
        self.service = service
        self.env = env
        self.signer = StateSigner(key_ring)
        self.apps = HostApps(service.db, service.cipher, env)

    def _plugin(self, name: Any) -> Platform:
        plugin = platforms().require(name)
        if not plugin.oauth:
            raise ValidationFailed(
                f"{plugin.name} has no OAuth sign-in; store a token instead",
                fields={"platform": "has no OAuth sign-in"},
            )
        # Only the platform's own app settings (none for an app per host), and where to return.
        settings = self.env.settings
        missing = [
            f"HERALD_{name.upper()}"
            for name in plugin.oauth_settings
            if not getattr(settings, name, None)
        ]
        if not self.redirect_base:
            missing.append("HERALD_OAUTH_REDIRECT_BASE_URL")
        if missing:
            raise OAuthUnavailable(f"{plugin.name} sign-in needs {', '.join(missing)} (unset)")
        return plugin

    @property
    def redirect_base(self) -> str:
        return str(self.env.settings.oauth_redirect_base_url or "").rstrip("/")

    def redirect_uri(self, platform: str) -> str:
        return f"{self.redirect_base}/publishing/connections/oauth/{quote(platform)}/callback"

    async def start(
        self,
        principal: Principal,
        platform: Any,
        *,
        name: Any = None,
        connection_id: Any = None,
        tenant_id: Any = None,
        metadata: Any = None,
        instance_url: Any = None,
    ) -> str:
        """The consent page's URL for a new connection (`name`) or a re-authorised one.
        `metadata` (a few short strings) goes to the plugin's exchange, e.g. which Page of
        the account to connect, and into the connection's metadata. `instance_url`: the
        host to sign in on, for a platform with an app per host (a re-authorised
        connection's by default)."""
        plugin = self._plugin(platform)
        hint = _hint(metadata)
        row = None
        if connection_id is not None:
            row = await self.service.get_row(principal, str(connection_id))
            if row["platform"] != plugin.name:
                raise ValidationFailed(
                    "that connection is on another platform",
                    fields={"connection_id": f"is a {row['platform']} connection"},
                )
            tenant, connection_id = row["tenant_id"], str(row["id"])
            if plugin.oauth_host and instance_url is None:
                instance_url = (row["metadata"] or {}).get(plugin.oauth_host)
        else:
            errors: dict[str, str] = {}
            tenant = self.service.tenant_for(principal, tenant_id, errors)
            if name is not None and (
                not isinstance(name, str) or not 0 < len(name) <= 200 or has_nul(name)
            ):
                errors["name"] = "must be 1 to 200 characters without NUL"
            if errors:
                raise ValidationFailed("the sign-in cannot start", fields=errors)
        if not plugin.oauth_host and instance_url is not None:
            raise ValidationFailed(
                "the sign-in cannot start",
                fields={"instance_url": f"{plugin.name} has one host; leave it out"},
            )
        redirect_uri = self.redirect_uri(plugin.name)
        host, extra = None, {}
        if plugin.oauth_host:
            host = await public_host(instance_url)
            if row is not None and host != _origin(row["metadata"], plugin.oauth_host):
                raise ValidationFailed(
                    "the sign-in cannot start",
                    fields={"instance_url": "is not the instance of this connection"},
                )
            extra = {"host": host, "app": await self._app(plugin, host, redirect_uri)}
        state = self.signer.sign(
            {
                "platform": plugin.name,
                "tenant": tenant,
                "connection": connection_id,
                "name": name,
                "hint": hint,
                "host": host,
                "exp": time.time() + STATE_SECONDS,
                "nonce": secrets.token_urlsafe(12),
            }
        )
        return plugin.consent_url(self.env, state=state, redirect_uri=redirect_uri, **extra)

    async def _app(self, plugin: Platform, host: str, redirect_uri: str) -> OAuthApp:
        try:
            return await self.apps.app(plugin, host, redirect_uri)
        except HeraldError:  # Postgres away: a 503, as anywhere
            raise
        except Exception as exc:  # refused, a timeout, a 5xx: its text is without secrets
            log.warning(
                "oauth app registration failed",
                extra={"platform": plugin.name, "host": host, "error": type(exc).__name__},
            )
            raise OAuthRefused(
                f"Herald could not register its app on {host}; try again later"
            ) from exc

    async def finish(self, platform: Any, query: dict[str, str]) -> dict[str, Any]:
        """The callback: the connection created or re-authorised (its view)."""
        plugin = self._plugin(platform)
        payload = self.signer.read(query.get("state"))
        if payload.get("platform") != plugin.name:
            raise OAuthRefused("the sign-in's state is for another platform; start again")
        if "error" in query:  # e.g. access_denied: the person said no (not echoed)
            raise OAuthRefused(f"the sign-in was not granted on {plugin.name}; start again")
        code = query.get("code")
        if not code or len(code) > MAX_CODE:
            raise OAuthRefused("the platform sent no code back; start again")
        principal = Principal(tenant_id=payload["tenant"], is_admin=False)
        connection_id = payload.get("connection")
        row = await self.service.get_row(principal, connection_id) if connection_id else None
        hint = {**((row["metadata"] or {}) if row is not None else {}), **payload.get("hint", {})}
        redirect_uri = self.redirect_uri(plugin.name)
        host, app, extra = payload.get("host"), None, {}
        if plugin.oauth_host:  # the instance the state names, and only that one
            found = isinstance(host, str)
            app = await self.apps.stored(plugin, str(host), redirect_uri) if found else None
            if app is None:
                raise OAuthRefused("the sign-in's app is gone; start again")
            hint[plugin.oauth_host] = host
            extra = {"host": host, "app": app}
        try:
            issued = await plugin.exchange_code(
                self.env, code=code, redirect_uri=redirect_uri, metadata=hint, **extra
            )
        except AppForgotten as exc:
            if app is None:
                raise OAuthRefused(f"{plugin.name} refused the sign-in: {exc}") from exc
            await self.apps.forget(plugin, str(host), app)
            raise OAuthRefused(
                f"{host} no longer knows Herald's app; start again (it is registered anew)"
            ) from exc
        except AuthLost as exc:  # its text is the plugin's, without secrets
            raise OAuthRefused(f"{plugin.name} refused the sign-in: {exc}") from exc
        except Exception as exc:  # a timeout, a 5xx: nothing stored; the person tries again
            log.warning(
                "oauth exchange failed",
                extra={"platform": plugin.name, "error": type(exc).__name__},
            )
            raise OAuthRefused(
                f"the sign-in could not be completed with {plugin.name}; start again"
            ) from exc
        if connection_id:
            body = {"access_token": issued.access_token, "metadata": {**hint, **issued.metadata}}
            return await self.service.patch(
                principal, connection_id, body, expires_at=issued.expires_at
            )
        body = {
            "platform": plugin.name,
            "name": payload.get("name") or f"{plugin.title or plugin.name} account",
            "access_token": issued.access_token,
            "metadata": {**hint, **issued.metadata},
        }
        return await self.service.create(principal, body, expires_at=issued.expires_at)


def _origin(metadata: Any, key: str) -> str | None:
    """A connection's host as `public_host` writes it (lower case, no trailing slash)."""
    url = (metadata or {}).get(key)
    if not isinstance(url, str):
        return None
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _hint(metadata: Any) -> dict[str, str]:
    """The metadata a sign-in starts with: at most 8 keys, short strings (it rides in the
    state, which travels in a URL)."""
    if metadata is None:
        return {}
    ok = (
        isinstance(metadata, dict)
        and len(metadata) <= MAX_HINT_KEYS
        and all(
            isinstance(k, str)
            and isinstance(v, str)
            and 0 < len(k) <= 64
            and len(v) <= 128
            and not has_nul(k + v)
            for k, v in metadata.items()
        )
    )
    if not ok:
        message = f"must be an object of at most {MAX_HINT_KEYS} short strings"
        raise ValidationFailed("the sign-in cannot start", fields={"metadata": message})
    return dict(metadata)
