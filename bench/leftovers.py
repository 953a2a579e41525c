"""What killed bench runs leave on the stack, and `herald bench clean`, which removes it.

A run removes its own topics, schema and Redis keys when it ends; a run that is killed
(SIGKILL, a timeout) cannot. Their partitions then cost the broker CPU in every later run:
191 stale topics (about 2,000 partitions) more than doubled the broker's CPU in a burst and
slowed every figure. Every scenario warns when it finds such leftovers.

Only names the benchmarks make are matched: a scenario's `bench<8 hex>` namespace, the
building blocks' `bench-limits-<6 hex>` topics and Redis keys and `bench_attempts_<6 hex>`
tables, and `bench.publisher_throughput`'s `b<8 hex>` namespace. A run still going on the
same stack is removed as well, so clean only when none runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
import redis

from herald.shared.infra.kafka.admin import admin, delete_topics
from herald.shared.infra.settings import Settings

_PREFIX = r"^(?:bench[0-9a-f]{8}|bench-limits-[0-9a-f]{6}|b[0-9a-f]{8})"
_TOPIC = re.compile(_PREFIX + r"\.")
_REDIS_KEY = re.compile(_PREFIX.encode() + rb":")
_SCHEMA = r"^(?:bench|b)_[0-9a-f]{8}$"
_TABLE = r"^bench_attempts_[0-9a-f]{6}$"


@dataclass(frozen=True)
class Leftovers:
    topics: list[str]
    schemas: list[str]
    tables: list[str]  # qualified: schema.table
    redis_keys: list[bytes]

    def __bool__(self) -> bool:
        return bool(self.topics or self.schemas or self.tables or self.redis_keys)

    def summary(self) -> dict[str, int]:
        return {
            "topics": len(self.topics),
            "schemas": len(self.schemas),
            "tables": len(self.tables),
            "redis_keys": len(self.redis_keys),
        }


def find(settings: Settings) -> Leftovers:
    listed = admin(settings.kafka_bootstrap).list_topics(timeout=10).topics
    topics = sorted(t for t in listed if _TOPIC.match(t))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        schemas = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname ~ %s ORDER BY 1", (_SCHEMA,)
            ).fetchall()
        ]
        tables = [
            f"{r[0]}.{r[1]}"
            for r in conn.execute(
                "SELECT schemaname, tablename FROM pg_tables WHERE tablename ~ %s ORDER BY 1, 2",
                (_TABLE,),
            ).fetchall()
        ]
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = sorted(k for k in client.scan_iter(match="b*:*", count=1000) if _REDIS_KEY.match(k))
    finally:
        client.close()
    return Leftovers(topics, schemas, tables, keys)


def remove(settings: Settings, found: Leftovers) -> None:
    delete_topics(settings.kafka_bootstrap, found.topics)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for schema in found.schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        for table in found.tables:
            schema, name = table.split(".", 1)
            conn.execute(f'DROP TABLE IF EXISTS "{schema}"."{name}"')
    if found.redis_keys:
        client = redis.Redis.from_url(settings.redis_url)
        try:
            for start in range(0, len(found.redis_keys), 1000):
                client.delete(*found.redis_keys[start : start + 1000])
        finally:
            client.close()
