"""The connection service: the one way to create, read, change, disable and rekey a platform
connection. The token is encrypted at rest (bound to the connection's id), never returned,
and decrypted only to publish; its statements live in `herald.shared.stores.connections`."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from herald.shared.domain.connection_rules import check_metadata, check_name
from herald.shared.domain.platforms import CONNECTION_STATUSES
from herald.shared.domain.requests import Connection
from herald.shared.domain.tenancy import DEFAULT_TENANT, Principal
from herald.shared.errors import NotFound, ValidationFailed
from herald.shared.infra.crypto import DecryptError, TokenCipher
from herald.shared.infra.db.pool import Database, Row
from herald.shared.jobs.service import JobService
from herald.shared.jobs.validation import has_nul
from herald.shared.jobs.views import cursor_params, page
from herald.shared.messages.codec import iso, now_utc
from herald.shared.platforms.plugin import Platform
from herald.shared.platforms.registry import platforms
from herald.shared.stores import connections
from herald.shared.stores.connections import TokenLife
from herald.shared.stores.tenants import ensure_tenant


def view(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "tenant_id": row["tenant_id"],
        "platform": row["platform"],
        "name": row["name"],
        "metadata": row["metadata"],
        "status": row["status"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        # The token's lifecycle, never the token: stored, expiry (null: unknown or none),
        # next refresh (null: never) and why the last refresh failed.
        "token": {
            "issued_at": iso(row["token_issued_at"]),
            "expires_at": iso(row["token_expires_at"]),
            "refresh_at": iso(row["token_refresh_at"]),
            "refresh_error": row["token_refresh_error"],
        },
    }


def token_life(
    plugin: Platform,
    metadata: dict[str, Any],
    token: str,
    expires_at: datetime | None = None,
    *,
    issued_at: datetime | None = None,
    rand: Callable[[], float] = random.random,
) -> TokenLife:
    """A token stored now (or at `issued_at`): its expiry and its next refresh, by its
    platform's rules."""
    issued = issued_at or now_utc()
    refresh = (
        plugin.token.refresh_at(issued, expires_at, rand())
        if plugin.refreshes(metadata, token)
        else None
    )
    return TokenLife(issued_at=issued, expires_at=expires_at, refresh_at=refresh)


class ConnectionService:
    """`jobs` releases the jobs a connection held when it gets a new token (None: a
    service that never changes tokens, e.g. a rekey)."""

    def __init__(self, db: Database, cipher: TokenCipher, jobs: JobService | None = None) -> None:
        self.db = db
        self.cipher = cipher
        self.jobs = jobs

    async def create(
        self, principal: Principal, body: Any, *, expires_at: datetime | None = None
    ) -> dict[str, Any]:
        """`expires_at`: the token's expiry when the platform told it (an OAuth exchange)."""
        if not isinstance(body, dict):
            raise ValidationFailed("the body must be a JSON object", fields={"$": "not an object"})
        errors: dict[str, str] = {
            k: "must not contain NUL characters" for k, v in body.items() if has_nul(v)
        }
        platform = body.get("platform")
        plugin = platforms().get(platform) if isinstance(platform, str) else None
        if plugin is None:
            errors["platform"] = f"must be one of {', '.join(platforms())}"
        name = body.get("name")
        check_name(name, errors)
        token = body.get("access_token")
        metadata = check_metadata(body.get("metadata"), errors)
        if plugin is not None:
            errors |= plugin.token_errors(token, required=plugin.account.token_required)
            if "metadata" not in errors:
                errors |= plugin.metadata_errors(metadata)
        tenant_id = self.tenant_for(principal, body.get("tenant_id"), errors)
        if errors:
            raise ValidationFailed("the connection is invalid", fields=errors)
        await ensure_tenant(self.db, tenant_id)
        connection_id = str(uuid.uuid4())
        row = await connections.insert(
            self.db,
            connection_id=connection_id,
            tenant_id=tenant_id,
            platform=str(platform),
            name=str(name),
            metadata=metadata,
            ciphertext=self.cipher.encrypt(token, connection_id) if token else None,
            life=token_life(plugin, metadata, token, expires_at) if token and plugin else None,
        )
        return view(row)

    @staticmethod
    def tenant_for(principal: Principal, asked: Any, errors: dict[str, str]) -> str:
        if not principal.is_admin:
            if asked is not None and asked != principal.tenant_id:
                errors["tenant_id"] = "only an admin key may name a tenant"
            return str(principal.tenant_id)
        if asked is None:
            return DEFAULT_TENANT
        if not isinstance(asked, str) or not asked:
            errors["tenant_id"] = "must be a non-empty string"
            return DEFAULT_TENANT
        return asked

    async def get_row(self, principal: Principal, connection_id: str) -> Row:
        try:
            uuid.UUID(connection_id)
        except ValueError as exc:  # not echoed: it may be anything, any size
            raise NotFound("no connection with that id (a connection id is a UUID)") from exc
        row = await connections.get(self.db, connection_id)
        if row is None or not principal.sees(row["tenant_id"]):
            raise NotFound(f"no connection {connection_id}")
        return row

    async def get(self, principal: Principal, connection_id: str) -> dict[str, Any]:
        return view(await self.get_row(principal, connection_id))

    async def list_connections(
        self,
        principal: Principal,
        *,
        platform: str | None = None,
        limit: int = 500,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page, oldest first: `{"items": [...], "next_cursor": ... | None}`."""
        filters = {"tenant": principal.tenant_id, "platform": platform}
        rows = await connections.page(self.db, filters | cursor_params(cursor, limit))
        return page(rows, limit, view)

    async def list_all(
        self, principal: Principal, *, platform: str | None = None
    ) -> list[dict[str, Any]]:
        """Every connection, page by page."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.list_connections(principal, platform=platform, cursor=cursor)
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    async def patch(
        self,
        principal: Principal,
        connection_id: str,
        body: Any,
        *,
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        row = await self.get_row(principal, connection_id)
        if not isinstance(body, dict):
            raise ValidationFailed("the body must be a JSON object", fields={"$": "not an object"})
        errors: dict[str, str] = {
            k: "must not contain NUL characters" for k, v in body.items() if has_nul(v)
        }
        unknown = set(body) - {"name", "metadata", "access_token", "status"}
        for key in unknown:
            errors[key] = "cannot be changed"
        name = body.get("name", row["name"])
        check_name(name, errors)
        plugin = platforms().require(row["platform"])
        metadata = row["metadata"]
        if "metadata" in body:
            metadata = check_metadata(body["metadata"], errors)
            if "metadata" not in errors:
                errors |= plugin.metadata_errors(metadata)
        token = body.get("access_token")
        errors |= plugin.token_errors(token, required=False)
        status = self._new_status(row["status"], body.get("status"), token, errors)
        if errors:
            raise ValidationFailed("the change is invalid", fields=errors)
        life = token_life(plugin, metadata, token, expires_at) if token else None
        if life is None and "metadata" in body:
            life = await self._life_kept(plugin, row, metadata)
        updated = await connections.update(
            self.db,
            connection_id,
            name=str(name),
            metadata=metadata,
            status=status,
            ciphertext=self.cipher.encrypt(token, connection_id) if token else None,
            life=life,
        )
        if token and updated["status"] == "active":
            await self.release_held(connection_id)
        return view(updated)

    async def _life_kept(
        self, plugin: Platform, row: Row, metadata: dict[str, Any]
    ) -> TokenLife | None:
        """The stored token's life under new metadata, when that changes whether it is
        refreshed (an Instagram connection told `login: instagram` after it was stored);
        None: unchanged."""
        blob = await connections.token(self.db, str(row["id"]))
        if not blob:
            return None
        try:
            token = self.cipher.decrypt(bytes(blob), row["id"])
        except DecryptError:
            return None
        life = token_life(
            plugin, metadata, token, row["token_expires_at"], issued_at=row["token_issued_at"]
        )
        return None if (life.refresh_at is None) == (row["token_refresh_at"] is None) else life

    async def release_held(self, connection_id: str) -> int:
        """The connection has a new token: its jobs held for one go now."""
        return await self.jobs.release_held(connection_id) if self.jobs is not None else 0

    @staticmethod
    def _new_status(current: str, asked: Any, token: Any, errors: dict[str, str]) -> str | None:
        """The status a PATCH writes (None: leave it, so a concurrent `needs_reauth` from the
        publisher is not undone). A new token re-authorises the connection; without one, a
        `needs_reauth` or `disabled` connection does not become `active`."""
        if asked is None:
            return "active" if token else None
        if asked not in CONNECTION_STATUSES:
            errors["status"] = f"must be one of {', '.join(CONNECTION_STATUSES)}"
        elif asked == "active" and current != "active" and not token:
            errors["status"] = f"a {current} connection becomes active only with a new access_token"
        return None if asked == "active" and not token else asked

    async def disable(self, principal: Principal, connection_id: str) -> dict[str, Any]:
        await self.get_row(principal, connection_id)
        return view(await connections.disable(self.db, connection_id))

    async def load_for_publish(self, connection_id: str) -> Connection | None:
        """The connection with its token decrypted in memory (for the publisher only)."""
        row = await connections.get(self.db, connection_id)
        if row is None:
            return None
        blob = await connections.token(self.db, connection_id)
        return Connection(
            id=str(row["id"]),
            tenant_id=row["tenant_id"],
            platform=row["platform"],
            name=row["name"],
            status=row["status"],
            metadata=row["metadata"] or {},
            access_token=self.cipher.decrypt(bytes(blob), row["id"]) if blob else "",
        )

    async def rekey(self, *, batch: int = 100) -> tuple[int, list[str]]:
        """Re-encrypt every token not yet under the newest key, `batch` rows per short
        transaction, while jobs keep publishing. Answers (tokens re-encrypted, ids of the
        connections whose token no key of the ring decrypts: left as they are)."""
        count = 0
        failed: list[str] = []
        after = uuid.UUID(int=0)
        while True:
            rows = await connections.tokens_after(self.db, after, batch)
            if not rows:
                return count, failed
            async with self.db.transaction() as conn:
                for row in rows:
                    try:
                        count += await self._rekey_one(conn, row["id"], row["token_ciphertext"])
                    except DecryptError:
                        failed.append(str(row["id"]))
            after = rows[-1]["id"]

    async def _rekey_one(self, conn: AsyncConnection[Row], connection_id: Any, blob: Any) -> int:
        """1 when this token was re-encrypted. The UPDATE applies only while the row still
        holds the ciphertext read: a token changed meanwhile (a new one from the API) is
        read again, so it is neither lost nor encrypted twice."""
        while blob is not None:
            new = self.cipher.rekeyed(bytes(blob), connection_id)
            if new is None:
                return 0
            if await connections.replace_token(conn, connection_id, blob, new):
                return 1
            blob = await connections.token(conn, connection_id)  # changed meanwhile: again
        return 0
