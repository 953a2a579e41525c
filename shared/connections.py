"""Platform connections: the token encrypted at rest, never returned, decrypted only to publish."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from shared.crypto import TokenCipher
from shared.db.pool import Database, Row
from shared.domain.requests import Connection
from shared.errors import NotFound, ValidationFailed
from shared.events import iso
from shared.jobs.validation import PLATFORMS, has_nul
from shared.jobs.views import cursor_params, page
from shared.tenancy import DEFAULT_TENANT, Principal, ensure_tenant

STATUSES = ("active", "needs_reauth", "disabled")
_COLUMNS = "id, tenant_id, platform, name, metadata, status, created_at, updated_at"


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
    }


# Which configured Graph host an Instagram connection is published through (Facebook Login,
# the default, or Instagram Login); never a URL of the tenant's choosing.
INSTAGRAM_LOGINS = ("facebook", "instagram")


def _check_metadata(platform: str, metadata: Any, errors: dict[str, str]) -> dict[str, Any]:
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        errors["metadata"] = "must be an object"
        return {}
    if platform == "instagram":
        account = metadata.get("instagramBusinessAccountId")
        if not isinstance(account, str) or not account.strip():
            errors["metadata.instagramBusinessAccountId"] = "is required for instagram"
        if metadata.get("login", "facebook") not in INSTAGRAM_LOGINS:
            errors["metadata.login"] = f"must be one of {', '.join(INSTAGRAM_LOGINS)}"
    if platform == "sandbox":
        for key in ("retryable_rate", "permanent_rate", "ambiguous_rate"):
            value = metadata.get(key, 0)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                errors[f"metadata.{key}"] = "must be a number in [0, 1]"
        latency = metadata.get("latency_ms", 0)
        if not isinstance(latency, int | float) or latency < 0:
            errors["metadata.latency_ms"] = "must be a number >= 0"
    return metadata


class ConnectionStore:
    def __init__(self, db: Database, cipher: TokenCipher) -> None:
        self.db = db
        self.cipher = cipher

    async def create(self, principal: Principal, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValidationFailed("the body must be a JSON object", fields={"$": "not an object"})
        errors: dict[str, str] = {
            k: "must not contain NUL characters" for k, v in body.items() if has_nul(v)
        }
        platform = body.get("platform")
        if platform not in PLATFORMS:
            errors["platform"] = f"must be one of {', '.join(PLATFORMS)}"
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            errors["name"] = "must be a non-empty string of at most 200 characters"
        token = body.get("access_token")
        if platform == "instagram" and (not isinstance(token, str) or not token):
            errors["access_token"] = "is required for instagram"
        elif token is not None and not isinstance(token, str):
            errors["access_token"] = "must be a string"
        metadata = _check_metadata(str(platform), body.get("metadata"), errors)
        tenant_id = self._tenant_for(principal, body.get("tenant_id"), errors)
        if errors:
            raise ValidationFailed("the connection is invalid", fields=errors)
        await ensure_tenant(self.db, tenant_id)
        row = await self.db.fetchone(
            f"INSERT INTO connections (id, tenant_id, platform, name, metadata, token_ciphertext)"
            f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (
                str(uuid.uuid4()),
                tenant_id,
                platform,
                name,
                Jsonb(metadata),
                self.cipher.encrypt(token) if token else None,
            ),
        )
        assert row is not None
        return view(row)

    @staticmethod
    def _tenant_for(principal: Principal, asked: Any, errors: dict[str, str]) -> str:
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
        except ValueError as exc:
            raise NotFound(f"no connection {connection_id}") from exc
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM connections WHERE id = %s", (connection_id,)
        )
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
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM connections"
            " WHERE (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)"
            " AND (%(platform)s::text IS NULL OR platform = %(platform)s)"
            " AND (%(after_ts)s::timestamptz IS NULL"
            "      OR (created_at, id) > (%(after_ts)s, %(after_id)s::uuid))"
            " ORDER BY created_at, id LIMIT %(limit)s",
            {"tenant": principal.tenant_id, "platform": platform} | cursor_params(cursor, limit),
        )
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

    async def patch(self, principal: Principal, connection_id: str, body: Any) -> dict[str, Any]:
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
        if not isinstance(name, str) or not name.strip():
            errors["name"] = "must be a non-empty string"
        metadata = row["metadata"]
        if "metadata" in body:
            metadata = _check_metadata(row["platform"], body["metadata"], errors)
        status = body.get("status", row["status"])
        token = body.get("access_token")
        if token is not None and (not isinstance(token, str) or not token):
            errors["access_token"] = "must be a non-empty string"
        if status not in STATUSES:
            errors["status"] = f"must be one of {', '.join(STATUSES)}"
        if errors:
            raise ValidationFailed("the change is invalid", fields=errors)
        if token:  # a new token re-authorises the connection
            status = "active" if body.get("status") is None else status
        updated = await self.db.fetchone(
            f"UPDATE connections SET name = %s, metadata = %s, status = %s,"
            f" token_ciphertext = COALESCE(%s, token_ciphertext), updated_at = now()"
            f" WHERE id = %s RETURNING {_COLUMNS}",
            (
                name,
                Jsonb(metadata),
                status,
                self.cipher.encrypt(token) if token else None,
                connection_id,
            ),
        )
        assert updated is not None
        return view(updated)

    async def disable(self, principal: Principal, connection_id: str) -> dict[str, Any]:
        await self.get_row(principal, connection_id)
        row = await self.db.fetchone(
            f"UPDATE connections SET status = 'disabled', updated_at = now() WHERE id = %s"
            f" RETURNING {_COLUMNS}",
            (connection_id,),
        )
        assert row is not None
        return view(row)

    async def load_for_publish(self, connection_id: str) -> Connection | None:
        """The connection with its token decrypted in memory (for the publisher only)."""
        row = await self.db.fetchone(
            "SELECT id, tenant_id, platform, name, metadata, status, token_ciphertext"
            " FROM connections WHERE id = %s",
            (connection_id,),
        )
        if row is None:
            return None
        blob = row["token_ciphertext"]
        return Connection(
            id=str(row["id"]),
            tenant_id=row["tenant_id"],
            platform=row["platform"],
            name=row["name"],
            status=row["status"],
            metadata=row["metadata"] or {},
            access_token=self.cipher.decrypt(bytes(blob)) if blob else "",
        )

    async def mark_needs_reauth(self, connection_id: str) -> None:
        await self.db.execute(
            "UPDATE connections SET status = 'needs_reauth', updated_at = now()"
            " WHERE id = %s AND status = 'active'",
            (connection_id,),
        )
