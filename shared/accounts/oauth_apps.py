"""The apps Herald registers itself, one per host, for a platform whose sign-in names its
host (`Platform.oauth_host`: a Mastodon instance). The first sign-in on a host registers
the app there (`Platform.register_app`, the callback its redirect URI: a new API address
registers anew) and stores it (`oauth_apps`, the client secret encrypted with the key ring,
bound to the row); every later sign-in there reuses it. When
the host answers that it no longer knows the app, the sign-in forgets it, and the next one
registers a new app. The secret is never logged or answered.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from herald.shared.errors import ValidationFailed
from herald.shared.infra.crypto import DecryptError, TokenCipher
from herald.shared.infra.db.pool import Database
from herald.shared.platforms.hosts import HostRefused, check_host
from herald.shared.platforms.plugin import OAuthApp, Platform, PlatformEnv
from herald.shared.stores import oauth_apps

log = logging.getLogger(__name__)
MAX_HOST_URL = 256
HOST_URL = re.compile(r"[\x21-\x7e]{1,256}")


async def public_host(url: Any) -> str:
    """An instance's address as `https://name[:port]` (lower case), when it is an https URL
    with no path that resolves to public addresses only (checked now, after DNS); else a
    422 naming `instance_url`."""

    def refused(reason: str) -> ValidationFailed:
        return ValidationFailed("the sign-in cannot start", fields={"instance_url": reason})

    if url is None:
        raise refused("is required for this platform: the https URL of the instance")
    if not isinstance(url, str) or not HOST_URL.fullmatch(url):
        raise refused(f"must be an https URL of at most {MAX_HOST_URL} characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise refused("is not a valid URL") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise refused("must be the instance's address alone, e.g. https://mastodon.social")
    try:
        await asyncio.to_thread(check_host, url)
    except HostRefused as exc:
        raise refused(str(exc)) from None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class HostApps:
    def __init__(self, db: Database, cipher: TokenCipher, env: PlatformEnv) -> None:
        self.db, self.cipher, self.env = db, cipher, env

    async def stored(self, plugin: Platform, host: str, redirect_uri: str) -> OAuthApp | None:
        row = await oauth_apps.get(self.db, plugin.name, host, redirect_uri)
        if row is None:
            return None
        secret = self.cipher.decrypt(bytes(row["client_secret_ciphertext"]), row["id"])
        return OAuthApp(str(row["client_id"]), secret)

    async def app(self, plugin: Platform, host: str, redirect_uri: str) -> OAuthApp:
        """The app on `host`: the stored one, or one registered there now."""
        found = await self.stored(plugin, host, redirect_uri)
        if found is not None:
            return found
        made = await plugin.register_app(self.env, host=host, redirect_uri=redirect_uri)
        app_id = str(uuid.uuid4())
        await oauth_apps.insert(
            self.db,
            app_id=app_id,
            platform=plugin.name,
            host=host,
            redirect_uri=redirect_uri,
            client_id=made.client_id,
            ciphertext=self.cipher.encrypt(made.client_secret, app_id),
        )
        log.info("oauth app registered", extra={"platform": plugin.name, "host": host})
        # Another sign-in's, if it stored one first.
        kept = await self.stored(plugin, host, redirect_uri)
        assert kept is not None
        return kept

    async def rekey(self) -> tuple[int, list[str]]:
        """Re-encrypt every app's client secret not yet under the newest key. Answers (secrets
        re-encrypted, ids of the apps whose secret no key of the ring decrypts: left as
        they are)."""
        count = 0
        failed: list[str] = []
        for row in await oauth_apps.secrets(self.db):
            blob = bytes(row["client_secret_ciphertext"])
            try:
                new = self.cipher.rekeyed(blob, row["id"])
            except DecryptError:
                failed.append(str(row["id"]))
                continue
            if new is not None:
                count += await oauth_apps.replace_secret(self.db, row["id"], blob, new)
        return count, failed

    async def forget(self, plugin: Platform, host: str, app: OAuthApp) -> None:
        await oauth_apps.forget(self.db, plugin.name, host, app.client_id)
        extra = {"platform": plugin.name, "host": host}
        log.warning("oauth app forgotten by its host", extra=extra)
