"""Redis from Debian's ``redis-server``, append-only, data in ``<stack>/redis``."""

from __future__ import annotations

import shutil
from pathlib import Path

from stack.argv import redis_argv
from stack.base import Service, StackError


def redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


class Redis(Service):
    name = "redis"
    env_var = "HERALD_REDIS_URL"

    def workdir(self) -> Path:
        # redis-server chdirs into --dir, so this is also how we recognise our process.
        return self.cfg.root / "redis"

    def missing_packages(self) -> list[str]:
        return [] if redis_binary() else ["redis-server"]

    def prepare(self) -> None:
        self.workdir().mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        binary = redis_binary()
        if binary is None:
            raise StackError("redis: no redis-server binary (install the redis-server package)")
        return redis_argv(binary, self.endpoint.port, self.workdir(), self.log_path)

    def ping(self) -> None:
        import redis

        client = redis.Redis.from_url(self._url(), socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()

    def version(self) -> str:
        import redis

        client = redis.Redis.from_url(self._url(), socket_connect_timeout=2, socket_timeout=2)
        try:
            info = client.info("server")
        finally:
            client.close()
        return str(info.get("redis_version", "?"))

    def _url(self) -> str:
        return self.cfg.redis_url
