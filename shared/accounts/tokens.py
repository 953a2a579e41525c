"""The token keeper: refreshes each connection's token before it expires, through its
platform plugin (`Platform.refresh_token`), and never two copies at once for one token.

Each token write (a new connection, a pasted token, an OAuth sign-in, a refresh) stores
when the token is next refreshed (`token_refresh_at`): its platform's `refresh_before`
window ahead of its expiry, moved earlier at random so that tokens issued together spread
out (`TokenRules.refresh_at`). The scheduler runs `refresh_due` every minute or so. For
each due connection it takes the named lock `herald-token:<id>` (a Postgres advisory lock:
one holder across every scheduler copy), reads the row again, and refreshes only if it is
still due, still active and still holds the same token. The new token is stored encrypted
only while the row still holds the refreshed one (a token pasted meanwhile wins).

- The platform refuses for good (`AuthLost`: a revoked or expired token): the connection
  becomes `needs_reauth`, its jobs are held, and the alert fires.
- Any other failure (a timeout, a 5xx): tried again in 15 to 30 minutes; the reason is kept
  in `token_refresh_error` (scrubbed of the token).
- A stored token that does not decrypt (its key left `HERALD_SECRET_KEY`), or a plugin whose
  `refreshes` raises on it: the same, and the round goes on, so one such row never holds
  back every other connection's refresh.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from herald.shared.accounts.connections import ConnectionService, token_life
from herald.shared.domain.requests import Connection
from herald.shared.infra import metrics
from herald.shared.infra.crypto import DecryptError
from herald.shared.infra.db import locks
from herald.shared.messages.codec import now_utc
from herald.shared.platforms.plugin import AuthLost, PlatformEnv
from herald.shared.platforms.registry import platforms
from herald.shared.platforms.scrub import Scrubber
from herald.shared.stores import connections

log = logging.getLogger(__name__)
RETRY_AFTER = timedelta(minutes=15)  # a failed refresh is tried again 15 to 30 min later
TIMEOUT_SECONDS = 60.0  # one refresh, all its calls


class TokenKeeper:
    def __init__(
        self,
        service: ConnectionService,
        env: PlatformEnv,
        *,
        batch: int = 50,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.service = service
        self.db = service.db
        self.env = env
        self.batch = batch
        self.rand = rand

    async def refresh_due(self) -> int:
        """Refresh every due token (a batch at a time); how many were refreshed."""
        refreshed = 0
        while True:
            due = await connections.due_for_refresh(self.db, self.batch)
            results = [await self.refresh_one(str(row["id"])) for row in due]
            refreshed += sum(1 for r in results if r)
            if len(due) < self.batch or not any(r is not None for r in results):
                return refreshed

    async def refresh_one(self, connection_id: str) -> bool | None:
        """True: refreshed; False: tried, not refreshed; None: not due, or another copy holds
        the lock (the row is left as it is)."""
        async with locks.held(self.db, f"herald-token:{connection_id}") as mine:
            if not mine:
                return None
            row = await connections.refreshing(self.db, connection_id)
            now = now_utc()
            if (
                row is None
                or row["status"] != "active"
                or row["token_ciphertext"] is None
                or row["token_refresh_at"] is None
                or row["token_refresh_at"] > now
            ):
                return None  # refreshed, changed or disabled since it was found due
            blob = bytes(row["token_ciphertext"])
            plugin = platforms().get(row["platform"])
            metadata = row["metadata"] or {}
            try:
                token = self.service.cipher.decrypt(blob, connection_id)
            except DecryptError as exc:  # this row only: the round goes on to the others
                await self._later(connection_id, blob, row["platform"], f"{exc}", now)
                return False
            scrub = Scrubber(token)
            try:
                refreshes = plugin is not None and plugin.refreshes(metadata, token)
            except Exception as exc:  # a plugin's bug on this row: the round goes on
                reason = scrub.text(f"{type(exc).__name__}: {exc}")
                await self._later(connection_id, blob, row["platform"], reason, now)
                return False
            if plugin is None or not refreshes:
                await connections.refresh_later(self.db, connection_id, blob, None, None)
                return None
            connection = Connection(
                id=connection_id,
                tenant_id=row["tenant_id"],
                platform=row["platform"],
                name=row["name"],
                status=row["status"],
                metadata=metadata,
                access_token=token,
            )
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    issued = await plugin.refresh_token(self.env, connection)
            except AuthLost as exc:
                reason = scrub.text(str(exc))[:500] or "the platform refused the token"
                await connections.mark_needs_reauth(self.db, connection_id, blob)
                await connections.refresh_later(self.db, connection_id, blob, None, reason)
                metrics.TOKEN_REFRESHES.labels(plugin.name, "auth_lost").inc()
                log.warning(
                    "token refresh refused; the connection needs a new sign-in",
                    extra={"connection_id": connection_id, "platform": plugin.name},
                )
                return False
            except Exception as exc:
                reason = scrub.text(f"{type(exc).__name__}: {exc}")
                await self._later(connection_id, blob, plugin.name, reason, now)
                return False
            life = token_life(
                plugin, metadata, issued.access_token, issued.expires_at, rand=self.rand
            )
            new = self.service.cipher.encrypt(issued.access_token, connection_id)
            stored = await connections.store_refreshed(self.db, connection_id, blob, new, life)
            if stored:
                metrics.TOKEN_REFRESHES.labels(plugin.name, "refreshed").inc()
                log.info(
                    "token refreshed",
                    extra={
                        "connection_id": connection_id,
                        "platform": plugin.name,
                        "expires_at": life.expires_at.isoformat() if life.expires_at else None,
                    },
                )
            return stored

    async def _later(
        self, connection_id: str, blob: bytes, platform: str, reason: str, now: datetime
    ) -> None:
        """A refresh that failed for now: tried again 15 to 30 minutes later, its reason kept."""
        reason = reason[:500]
        later = now + RETRY_AFTER * (1 + self.rand())
        await connections.refresh_later(self.db, connection_id, blob, later, reason)
        metrics.TOKEN_REFRESHES.labels(platform, "failed").inc()
        log.warning(
            "token refresh failed; trying again later",
            extra={
                "connection_id": connection_id,
                "platform": platform,
                "error": reason,
                "next_at": later.isoformat(),
            },
        )
