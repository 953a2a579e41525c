"""A refused store login or TLS setting stops a process at start with one line naming the
setting, never its value; a store that does not answer is left to the usual retries."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from herald.shared.errors import ConfigError
from herald.shared.infra.access import verify_postgres, verify_redis
from herald.shared.infra.settings import Settings
from tests.support.helpers import settings_env

PASSWORD = "s3cret-redis-password"
PORT = 23379  # below the kernel's ephemeral range


@pytest.fixture(scope="module")
def guarded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of its own that asks for a password."""
    folder = tmp_path_factory.mktemp("guarded-redis")
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    argv = [binary, "--port", str(PORT), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
    proc = subprocess.Popen(
        [*argv, "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=PORT, password=PASSWORD).ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{PORT}/0"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_a_wrong_or_missing_redis_password_is_one_line_naming_the_setting(
    guarded_redis: str,
) -> None:
    wrong = guarded_redis.replace("redis://", "redis://:not-the-password@")
    for url in (wrong, guarded_redis):  # a wrong password, and none at all
        with pytest.raises(ConfigError) as caught:
            await verify_redis(url)
        line = str(caught.value)
        assert "Redis refused the login (HERALD_REDIS_URL)" in line
        assert "\n" not in line and "not-the-password" not in line
    await verify_redis(guarded_redis.replace("redis://", f"redis://:{PASSWORD}@"))


async def test_a_refused_postgres_login_is_one_line_naming_the_setting(
    base_settings: Settings,
) -> None:
    # The local stack trusts its loopback logins, so the refusals shown are those it makes:
    # a role that does not exist, a database that does not exist.
    url = base_settings.database_url
    user_at = url.split("//", 1)[1].split("@", 1)[0]
    for bad in (
        url.replace(f"//{user_at}@", "//no_such_role:pw-not-shown@"),
        url.rsplit("/", 1)[0] + "/no_such_database",
    ):
        with pytest.raises(ConfigError) as caught:
            await verify_postgres(bad)
        line = str(caught.value)
        assert "Postgres refused the login (HERALD_DATABASE_URL)" in line
        assert "\n" not in line and "pw-not-shown" not in line
    await verify_postgres(url)


async def test_stores_that_do_not_answer_are_an_outage_not_a_refusal() -> None:
    await verify_redis("redis://127.0.0.1:1/0")
    await verify_postgres("postgresql://herald@127.0.0.1:1/herald")
    # A host whose name holds "ssl" is still only away.
    await verify_redis("rediss://ssl-cache.invalid:6379/0")
    await verify_postgres("postgresql://herald@ssl-db.invalid/herald?connect_timeout=2")


def test_a_service_given_a_wrong_redis_password_stops_at_start_with_one_line(
    guarded_redis: str, base_settings: Settings
) -> None:
    env = settings_env(base_settings)
    env["HERALD_REDIS_URL"] = guarded_redis.replace("redis://", "redis://:wrong-password@")
    done = subprocess.run(
        [sys.executable, "-m", "herald", "results"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("herald: Redis refused the login (HERALD_REDIS_URL)"), last
    assert "wrong-password" not in done.stderr
