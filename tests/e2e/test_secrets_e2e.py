"""Secrets as an operator meets them: services print their settings with every password
masked, refuse to start without a key outside the local stack, and `herald secrets rekey`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from herald.shared.infra.paths import ROOT
from tests.conftest import Namespace, eventually
from tests.support.helpers import ServiceProcess

PASSWORD = "pw-e2e-7f3kq"


def with_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or ''}:{PASSWORD}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_a_service_prints_its_settings_with_passwords_masked(
    ns: Namespace, tmp_path: Path
) -> None:
    env = ns.env(
        database_url=with_password(ns.base.database_url),
        redis_url=with_password(ns.base.redis_url),
    )
    service = ServiceProcess("results", env, tmp_path).start()
    try:

        async def started() -> bool:
            return '"msg":"metrics endpoint"' in service.log()

        await eventually(started, timeout=30)
    finally:
        service.stop()
    log = service.log()
    assert '"msg":"starting"' in log and ":***@" in log
    assert PASSWORD not in log


def test_a_service_without_a_key_outside_the_local_stack_refuses_to_start(
    ns: Namespace, tmp_path: Path
) -> None:
    env = ns.env(stack_dir=str(tmp_path / "not-a-stack"))
    env.pop("HERALD_SECRET_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "herald", "publisher"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"herald: HERALD_SECRET_KEY is not set (and {tmp_path}/not-a-stack/secret.key does not"
        " exist: that file is the local stack's only); give every process the same key"
    ]
    assert not (tmp_path / "not-a-stack").exists()
