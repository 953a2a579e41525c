"""Upgrades without downtime: the new release's migrations run (the chart's pre-upgrade
Job) while the previous release's pods still run, so the previous release must work on the
new schema. This test builds the previous release from this repository's history (a fixed
commit, as a wheel from the wheel cache), migrates a schema with this checkout's code, then
runs the previous release's four services on it and publishes a post through them.

Migrations only add (expand, then contract in a later release): the previous release's
migration files are all here, unchanged, and the previous release finds nothing to apply.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.shared.infra.paths import MIGRATIONS_DIR
from herald.shared.infra.settings import Settings
from tests.conftest import Namespace
from tests.e2e.test_wheel import Installed, outside_env, wait_for
from tests.support.prometheus import free_port
from tests.support.wheels import build_wheel, install, release_source, wheel_cache

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
# The previous release: main when this test was written. Move it forward with each release.
PREVIOUS_RELEASE = "7a072033b4fcc20a501703222081d5af0931d553"
OLD_MIGRATIONS = Path("shared/infra/db/migrations")


def test_the_previous_release_publishes_on_the_new_schema(
    base_settings: Settings, tmp_path: Path
) -> None:
    source = release_source(PREVIOUS_RELEASE, tmp_path / "previous")
    old = sorted((source / OLD_MIGRATIONS).glob("*.sql"))
    assert old
    for migration in old:
        assert (MIGRATIONS_DIR / migration.name).read_bytes() == migration.read_bytes(), (
            f"{migration.name} changed since the previous release: migrations only add"
        )

    cache = wheel_cache()
    wheel = build_wheel(cache, tmp_path, source)
    install(cache, wheel, tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "logs").mkdir()

    ns = Namespace(base_settings)
    ns.setup()  # the new release's migrations and topics: the pre-upgrade Job
    api_port = free_port()
    env = outside_env(ns, tmp_path / "state", api_port)
    previous = Installed(tmp_path / "venv", work, env, tmp_path / "logs")
    try:
        assert "is up to date" in previous.run("migrate").stderr
        with previous.services():
            connection_id = previous.run(
                "connections", "add", "--platform", "sandbox", "--name", "upgrade"
            ).stdout.strip()
            job_id = previous.run(
                "schedule",
                "--platform",
                "sandbox",
                "--connection",
                connection_id,
                "--media",
                "https://cdn.example.com/upgrade.jpg",
            ).stdout.strip()

            def published() -> bool:
                previous.check_alive()
                return previous.json("jobs", "show", job_id, "--json")["status"] == "PUBLISHED"

            wait_for("the previous release publishes", published)
            posts = previous.json("sandbox", "posts", "--json")
            assert [p["job_id"] for p in posts] == [job_id]
    finally:
        ns.teardown()
