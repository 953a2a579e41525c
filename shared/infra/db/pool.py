"""Async connection pool whose connections use the run's schema (`HERALD_DB_SCHEMA`)."""

from __future__ import annotations

import asyncio
import json
import logging
import select
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Loader
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from herald.shared.errors import StoreUnavailable

log = logging.getLogger(__name__)
Row = dict[str, Any]


def _loads(data: bytes | str) -> Any:
    """json/jsonb columns parsed by orjson (the stdlib parser was a tenth of the publisher's
    CPU time); integers beyond 64 bits, which orjson refuses, fall back to the stdlib."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


class _UUIDText(Loader):
    """uuid columns (text format) load as their canonical text: every caller wants the
    string (topic values, logs, API views), and building `uuid.UUID` objects only to call
    `str()` on them was 8 % of the scheduler's CPU time in a burst."""

    def load(self, data: Any) -> str:
        return bytes(data).decode()


# For every connection of this process:
set_json_loads(_loads)
psycopg.adapters.register_loader("uuid", _UUIDText)


def without_nul(value: Any) -> Any:
    """Postgres text and jsonb refuse NUL characters: a JSON-like value without them."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


# A transaction whose statements all touch rows by key: keep the planner off sequential scans
# and hash joins until it ends. Tables that grow fast outrun their statistics (autovacuum
# analyses them a minute later), and a planner that believes a table is tiny scans it whole:
# measured 12 ms instead of 3 ms to lock 250 keys of a 20,000-row table, and the cost grows
# with the table, not the batch.
BY_KEY = (
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true)"
)


def json_rows(rows: list[dict[str, Any]]) -> str:
    """Rows as one JSON parameter for `json_to_recordset`: one statement for a batch of
    rows (a statement per row cost 20,000 executions per 20,000 results; a text[] of JSON
    documents costs psycopg a regex escape per quote)."""
    try:
        return orjson.dumps(rows).decode()
    except TypeError:  # an integer beyond 64 bits (read back from a jsonb column): stdlib
        return json.dumps(rows, default=_isoformat)


def _isoformat(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def id_array(ids: Iterable[str]) -> str:
    """A Postgres array literal of ids that need no quoting (uuids, digits), for a parameter
    cast in SQL (`%s::uuid[]`): psycopg adapts a list element by element, which was 6 % of a
    publisher copy's CPU time. Callers pass ids already validated as such."""
    return "{" + ",".join(ids) + "}"


def _conninfo(url: str, schema: str) -> str:
    # search_path is fixed per connection, so SQL never names the schema.
    return psycopg.conninfo.make_conninfo(url, options=f"-c search_path={schema}")


def connect_sync(url: str, schema: str, *, autocommit: bool = True) -> psycopg.Connection[Row]:
    return psycopg.connect(
        _conninfo(url, schema), autocommit=autocommit, row_factory=dict_row, connect_timeout=5
    )


def _closed_by_server(conn: psycopg.AsyncConnection[Row]) -> bool:
    """Whether an idle connection has something to read: a server that closes a connection
    (a restart, a terminated backend, a crash) sends its last message or its end of stream,
    while a working idle connection receives nothing. No round trip."""
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True  # no socket to look at: let the real check decide
    return bool(readable)


class Database:
    """A small async pool; constructors do no I/O, `open()` connects."""

    def __init__(
        self,
        url: str,
        schema: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        acquire_timeout: float = 10.0,
    ) -> None:
        self.schema = schema
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            _conninfo(url, schema),
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": 5},
            check=self._check,
            timeout=acquire_timeout,
            reconnect_timeout=300,
        )

    async def _check(self, conn: psycopg.AsyncConnection[Row]) -> None:
        """Check, with a round trip, only a connection the server closed while it sat in the
        pool (the pool then replaces it); any other goes out as it is. A check per checkout
        was a round trip before every transaction: 8 % of a publisher copy's CPU time under
        load, and a millisecond of every lone job's transactions. A connection lost without
        a word (a network cut) fails its statement, callers retry, and the pool drops it."""
        if _closed_by_server(conn):
            await AsyncConnectionPool.check_connection(conn)

    async def open(self, *, wait: bool = False) -> None:
        await self._pool.open(wait=wait, timeout=10)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Row]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(
                "postgres", str(exc).splitlines()[0] if str(exc) else ""
            ) from exc
        except TimeoutError as exc:  # pool timeout while Postgres is away
            raise StoreUnavailable("postgres", "no connection available") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Row]]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetch(self, sql: str, params: Any = None) -> list[Row]:
        async with self.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    async def fetchone(self, sql: str, params: Any = None) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Any = None) -> int:
        async with self.connection() as conn:
            cur = await conn.execute(sql, params)
            return cur.rowcount

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(3):
                await self.fetch("SELECT 1")
            return True
        except Exception:
            return False
