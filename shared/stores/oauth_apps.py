"""The `oauth_apps` table: the app Herald registered on one host of a platform with an app
per host (a Mastodon instance), its client secret encrypted (written and read here as
ciphertext; only the sign-in decrypts it)."""

from __future__ import annotations

from herald.shared.infra.db.pool import Database, Row

COLUMNS = "id, platform, host, redirect_uri, client_id, client_secret_ciphertext, registered_at"


async def get(db: Database, platform: str, host: str, redirect_uri: str) -> Row | None:
    return await db.fetchone(
        f"SELECT {COLUMNS} FROM oauth_apps WHERE platform = %s AND host = %s AND redirect_uri = %s",
        (platform, host, redirect_uri),
    )


async def insert(
    db: Database,
    *,
    app_id: str,
    platform: str,
    host: str,
    redirect_uri: str,
    client_id: str,
    ciphertext: bytes,
) -> None:
    """Store the host's app, unless another sign-in stored one first (which wins)."""
    await db.execute(
        "INSERT INTO oauth_apps"
        " (id, platform, host, redirect_uri, client_id, client_secret_ciphertext)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (platform, host, redirect_uri) DO NOTHING",
        (app_id, platform, host, redirect_uri, client_id, ciphertext),
    )


async def forget(db: Database, platform: str, host: str, client_id: str) -> int:
    """Drop the host's app, if it is still this one (the host no longer knows it)."""
    return await db.execute(
        "DELETE FROM oauth_apps WHERE platform = %s AND host = %s AND client_id = %s",
        (platform, host, client_id),
    )


async def secrets(db: Database) -> list[Row]:
    """Every app's id and client secret ciphertext (a rekey; one row per host, few)."""
    return await db.fetch("SELECT id, client_secret_ciphertext FROM oauth_apps ORDER BY id")


async def replace_secret(db: Database, app_id: str, old: bytes, new: bytes) -> bool:
    """The secret re-encrypted, only while the row still holds `old` (an app forgotten
    meanwhile stays forgotten)."""
    changed = await db.execute(
        "UPDATE oauth_apps SET client_secret_ciphertext = %s"
        " WHERE id = %s AND client_secret_ciphertext = %s",
        (new, app_id, old),
    )
    return changed > 0
