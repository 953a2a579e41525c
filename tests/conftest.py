"""Fixtures: the real stack from the HERALD_* URLs, an isolated namespace per test.

Every test that needs infrastructure gets its own topic prefix, Redis prefix and Postgres
schema (migrated, topics created) and short timings. When a store does not answer, the
test fails under CI=true (never skips) with a message naming `herald stack up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import redis

from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.kafka.admin import admin, create_topics, load_topic_specs
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings, mask_credentials

IN_CI = os.environ.get("CI", "").lower() == "true"

# Short timings: sub-second backoff, second-scale leases and timeouts.
FAST = {
    "backoff_base_seconds": 0.05,
    "backoff_max_seconds": 0.5,
    "lease_seconds": 3.0,
    "stuck_after_seconds": 20.0,
    "container_poll_seconds": 3.0,
    "call_timeout_seconds": 3.0,
    "reconcile_interval_seconds": 0.5,
}


# Every test under these folders needs the stack (or starts one, or runs services as
# processes): `pytest -m "not integration"` is the fast unit run.
FOLDER_MARKERS = {
    "integration": ("integration",),
    "e2e": ("e2e", "integration"),
    "chaos": ("chaos", "integration"),
    "browser": ("browser", "e2e", "integration"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(FOLDER_MARKERS.get(item.path.parent.name, ()))
        if "base_settings" in getattr(item, "fixturenames", ()):
            names.add("integration")  # a test elsewhere that asks for the stack
        for name in sorted(names - {m.name for m in item.iter_markers()}):
            item.add_marker(name)


def _stack_problem(settings: Settings) -> str | None:
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis at {mask_credentials(settings.redis_url)}: {exc}"
    try:
        psycopg.connect(settings.database_url, connect_timeout=3).close()
    except Exception as exc:
        return f"Postgres at {mask_credentials(settings.database_url)}: {exc}"
    try:
        admin(settings.kafka_bootstrap).list_topics(timeout=5)
    except Exception as exc:
        return f"Kafka at {settings.kafka_bootstrap}: {exc}"
    return None


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    settings = Settings()
    problem = _stack_problem(settings)
    if problem:
        message = f"the stack does not answer ({problem}); start it with `herald stack up`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    settings.ensure_local_secret_key()  # the tests run on the local stack and share its key
    return settings


def drop_redis_keys(url: str, prefix: str) -> int:
    """Delete the Redis keys under `prefix` (a run's keys, as if Redis had lost them)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        return len(keys)
    finally:
        client.close()


class Namespace:
    """One test's isolated prefixes and schema on the shared stack."""

    def __init__(self, base: Settings) -> None:
        run = uuid.uuid4().hex[:10]
        self.base = base
        self.topic_prefix = f"t{run}."
        self.redis_prefix = f"t{run}:"
        self.db_schema = f"t_{run}"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap": self.base.kafka_bootstrap,
            "redis_url": self.base.redis_url,
            "database_url": self.base.database_url,
            "stack_dir": self.base.stack_dir,
            "topic_prefix": self.topic_prefix,
            "redis_prefix": self.redis_prefix,
            "db_schema": self.db_schema,
            **FAST,
        }
        values.update(overrides)
        return Settings(**values)

    def env(self, **overrides: Any) -> dict[str, str]:
        """Environment for a service run as a subprocess in this namespace."""
        s = self.settings(**overrides)
        env = dict(os.environ)
        for key, value in s.model_dump(mode="json").items():
            if value is None or key in ("replica", "secret_key"):  # the key passes as it is
                continue
            env[f"HERALD_{key.upper()}"] = str(value)
        return env

    def setup(self) -> None:
        migrate(self.base.database_url, self.db_schema)
        create_topics(self.base.kafka_bootstrap, load_topic_specs(), self.topic_prefix)

    def drop_redis_keys(self) -> int:
        """Delete this namespace's Redis keys (and nobody else's); answers how many."""
        return drop_redis_keys(self.base.redis_url, self.redis_prefix)

    def teardown(self) -> None:
        with psycopg.connect(self.base.database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.db_schema}" CASCADE')
        self.drop_redis_keys()
        kafka = admin(self.base.kafka_bootstrap)
        topics = [
            t for t in kafka.list_topics(timeout=10).topics if t.startswith(self.topic_prefix)
        ]
        if topics:
            for future in kafka.delete_topics(topics, operation_timeout=30).values():
                with contextlib.suppress(Exception):  # already gone
                    future.result()


@pytest.fixture
def ns(base_settings: Settings) -> Iterator[Namespace]:
    namespace = Namespace(base_settings)
    namespace.setup()
    yield namespace
    namespace.teardown()


@pytest.fixture
def settings(ns: Namespace) -> Settings:
    return ns.settings()


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings)
    await runtime.open()
    yield runtime
    await runtime.close()


async def eventually(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll a predicate (async, or a plain function) until it returns a truthy value (or
    fail with its last value)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
