"""The check every process makes of Redis and Postgres before it works: do they accept its
credentials and trust its TLS settings?

A wrong password or an untrusted certificate is not an outage to wait out: the services'
retries would repeat it forever. The process stops at start instead, with one line naming
the setting to fix (never its value: the URLs carry passwords). A store that does not answer
at all is left to the usual retries; Kafka's check is `kafka.access`.
"""

from __future__ import annotations

import psycopg
import redis.asyncio as aioredis
import redis.exceptions

from herald.shared.errors import ConfigError

_TIMEOUT = 5.0
# A server that answers a connection with FATAL refused it (a wrong password, an unknown
# role or database, no pg_hba entry), unless it says it is busy or in transition.
_PG_BUSY = ("too many", "starting up", "shutting down", "recovery")
# What OpenSSL and libpq say of a refused handshake (never a host name that happens to
# contain "ssl": an unreachable host is an outage, not a refusal).
_TLS = ("certificate verify failed", "[SSL", "SSL error", "SSL SYSCALL", "does not support SSL")


async def verify_stores(redis_url: str, database_url: str) -> None:
    """Return when both stores accepted a connection or did not answer; raise ConfigError
    when one refused the credentials or the TLS settings."""
    await verify_redis(redis_url)
    await verify_postgres(database_url)


async def verify_redis(url: str) -> None:
    client = aioredis.from_url(
        url, socket_connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT, single_connection_client=True
    )
    try:
        await client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise ConfigError(
            f"Redis refused the login (HERALD_REDIS_URL): {_first_line(exc)}"
        ) from None
    except redis.exceptions.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) or "NOPERM" in str(exc):
            line = _first_line(exc)
            raise ConfigError(f"Redis refused the login (HERALD_REDIS_URL): {line}") from None
    except (redis.exceptions.ConnectionError, OSError) as exc:
        if any(word in str(exc) for word in _TLS):
            raise ConfigError(f"Redis TLS failed (HERALD_REDIS_URL): {_first_line(exc)}") from None
        # Not answering: an outage, which the services ride out.
    except redis.exceptions.RedisError:
        pass
    finally:
        await client.aclose()


async def verify_postgres(url: str) -> None:
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=int(_TIMEOUT))
    except psycopg.OperationalError as exc:
        text = _first_line(exc)
        if "FATAL:" in text and not any(word in text for word in _PG_BUSY):
            raise ConfigError(f"Postgres refused the login (HERALD_DATABASE_URL): {text}") from None
        if any(marker in text for marker in _TLS):
            raise ConfigError(f"Postgres TLS failed (HERALD_DATABASE_URL): {text}") from None
        return  # not answering: an outage, which the services ride out
    await conn.close()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
